"""Length-grouped batching by modality (the release's group_by_modality_length)."""

from __future__ import annotations

import torch

from mqt_llava.training.batching import (
    ModalityLengthGroupedSampler,
    modality_length_grouped_indices,
)


def _lengths() -> list[int]:
    g = torch.Generator().manual_seed(0)
    image = torch.randint(5, 200, (37,), generator=g).tolist()
    text = (-torch.randint(5, 200, (23,), generator=g)).tolist()
    return image + text


def test_each_full_megabatch_holds_one_modality_and_the_order_is_a_permutation():
    lengths = _lengths()
    batch, world = 4, 2
    order = modality_length_grouped_indices(lengths, batch, world, torch.Generator().manual_seed(1))
    assert sorted(order) == list(range(len(lengths)))
    size = batch * world
    full = len(order) - (37 % size + 23 % size)  # the two leftovers form the last megabatch
    for start in range(0, full, size):
        signs = {lengths[i] > 0 for i in order[start : start + size]}
        assert len(signs) == 1
    # within a per-rank batch, lengths are close: each is a slice of a length-sorted megabatch
    first = order[:size]
    assert max(abs(lengths[i]) for i in first[batch:]) <= max(abs(lengths[i]) for i in first)


def test_order_depends_on_seed_and_epoch_only():
    lengths = _lengths()
    a = ModalityLengthGroupedSampler(lengths, 4, 2, seed=3)
    b = ModalityLengthGroupedSampler(lengths, 4, 2, seed=3)
    assert list(a) == list(b)
    epoch0 = list(a)
    a.set_epoch(1)
    assert list(a) != epoch0
    assert list(ModalityLengthGroupedSampler(lengths, 4, 2, seed=4)) != epoch0


def test_single_modality_data_is_just_length_grouped():
    lengths = [3, 9, 4, 8, 1, 7, 2, 6]
    order = modality_length_grouped_indices(lengths, 2, 2, torch.Generator().manual_seed(0))
    assert sorted(order) == list(range(8))
