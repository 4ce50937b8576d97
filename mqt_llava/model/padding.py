"""Padding token-id lists into batch tensors: the one helper the processor, the collator, the
generation helpers and the server share.

Training pads on the right (the release does); generation pads on the left, so that every row's
answer starts at the same position.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Tokens = Sequence[int] | torch.Tensor


def padded_length(
    lengths: Sequence[int], padding: bool | str, max_length: int | None, multiple: int | None
) -> int | None:
    """The padded length of a batch under a `transformers` padding strategy.

    Args:
        lengths: Each row's length in tokens.
        padding: `True`/`"longest"`, `"max_length"`, or `False`/`"do_not_pad"`.
        max_length: The length `"max_length"` pads to (longer rows keep their length).
        multiple: Round the length up to a multiple of this (`pad_to_multiple_of`).

    Returns:
        The length, or `None` for no padding.
    """
    if padding in (False, "do_not_pad"):
        return None
    if padding in (True, "longest"):
        length = max(lengths)
    elif padding == "max_length":
        if max_length is None:
            raise ValueError("padding='max_length' needs max_length.")
        length = max(max_length, *lengths)
    else:
        raise ValueError(
            "padding must be True, 'longest', 'max_length', False or 'do_not_pad', "
            f"got {padding!r}."
        )
    if multiple:
        length = -(-length // multiple) * multiple
    return length


def pad_sequences(
    sequences: Sequence[Tokens], value: int, side: str = "right", length: int | None = None
) -> torch.Tensor:
    """Pads 1-D sequences of ids (lists or tensors) into one (B, L) long tensor.

    Args:
        sequences: B sequences, possibly empty.
        value: What fills the padding (a pad id, or `IGNORE_INDEX` for labels).
        side: `"right"` (training) or `"left"` (generation).
        length: L; `None` = the longest sequence's length. Must not be shorter than it.

    Returns:
        (B, L) `torch.long`.
    """
    if side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {side!r}.")
    length = max(len(seq) for seq in sequences) if length is None else length
    out = torch.full((len(sequences), length), value, dtype=torch.long)
    for row, seq in enumerate(sequences):
        if len(seq):
            span = slice(length - len(seq), length) if side == "left" else slice(0, len(seq))
            out[row, span] = torch.as_tensor(seq, dtype=torch.long)
    return out


def pad_batch(
    sequences: Sequence[Tokens], pad_id: int, side: str = "right", length: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pads token ids into (B, L) `input_ids` and the matching `attention_mask` (1 = token).

    Args: as [`pad_sequences`], with `pad_id` the tokenizer's pad id.

    Returns:
        `input_ids` and `attention_mask`, both (B, L) `torch.long`.
    """
    input_ids = pad_sequences(sequences, pad_id, side, length)
    mask = pad_sequences([[1] * len(seq) for seq in sequences], 0, side, input_ids.shape[1])
    return input_ids, mask
