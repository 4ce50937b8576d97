"""The one padding helper: sides, lengths, empty rows, tensors and the processor's strategies."""

from __future__ import annotations

import pytest
import torch

from mqt_llava.model.padding import pad_batch, pad_sequences, padded_length


def test_right_and_left_padding() -> None:
    ids, mask = pad_batch([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    ids, mask = pad_batch([[5, 6, 7], [8]], pad_id=0, side="left")
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert ids.dtype == mask.dtype == torch.long


def test_explicit_length_tensors_and_empty_rows() -> None:
    rows = [torch.tensor([1, 2]), torch.tensor([], dtype=torch.long)]
    assert pad_sequences(rows, -100, length=4).tolist() == [[1, 2, -100, -100], [-100] * 4]
    ids, mask = pad_batch([[3], []], pad_id=9, side="left", length=3)
    assert ids.tolist() == [[9, 9, 3], [9, 9, 9]] and mask.tolist() == [[0, 0, 1], [0, 0, 0]]


def test_a_bad_side_is_refused() -> None:
    with pytest.raises(ValueError, match="padding_side must be 'left' or 'right', got 'top'"):
        pad_batch([[1]], 0, side="top")


@pytest.mark.parametrize(
    ("padding", "max_length", "multiple", "expected"),
    [
        (True, None, None, 5),
        ("longest", None, 4, 8),
        ("max_length", 7, None, 7),
        ("max_length", 3, None, 5),  # a longer row keeps its length
        (False, None, None, None),
        ("do_not_pad", 9, 4, None),
    ],
)
def test_padded_length(padding, max_length, multiple, expected) -> None:
    assert padded_length([2, 5], padding, max_length, multiple) == expected


def test_padded_length_refusals() -> None:
    with pytest.raises(ValueError, match="needs max_length"):
        padded_length([1], "max_length", None, None)
    with pytest.raises(ValueError, match="padding must be"):
        padded_length([1], "shortest", None, None)
