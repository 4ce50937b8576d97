"""Batching LLaVA samples and expanding each image placeholder to a visual-token budget."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..model.padding import pad_batch, pad_sequences
from .conversation import IGNORE_INDEX


def expand_image_placeholders(
    batch: dict[str, torch.Tensor], num_visual_tokens: int, image_token_id: int, pad_token_id: int
) -> dict[str, torch.Tensor]:
    """Repeats every image placeholder m times, in one vectorised pass over the batch.

    Rows are re-packed to the right (the release pads on the right); padding positions are
    dropped and re-created, so rows with more images simply come out longer.

    Args:
        batch: `input_ids`, `attention_mask`, optional `labels`, each (B, L), with ONE
            `image_token_id` per image; other keys are passed through.
        num_visual_tokens: m, the budget of every image in the batch.
        image_token_id: The placeholder id.
        pad_token_id: Id written in padding positions.

    Returns:
        A new dict with (B, L') `input_ids`, `attention_mask` (and `labels`, `IGNORE_INDEX` at
        placeholders and padding), and `num_visual_tokens` = m when the batch has images.
    """
    ids, mask = batch["input_ids"], batch["attention_mask"].bool()
    rows, length = ids.shape
    is_image = (ids == image_token_id) & mask
    repeats = torch.where(is_image, num_visual_tokens, 1) * mask  # (B, L); padding -> 0 copies
    new_lengths = repeats.sum(dim=1)  # (B,)
    width = int(new_lengths.max()) if rows else 0
    flat_repeats = repeats.flatten()
    row_of = torch.arange(rows, device=ids.device).repeat_interleave(length)  # (B*L,)
    row_of = row_of.repeat_interleave(flat_repeats)  # (T,) the row of every output token
    starts = torch.cumsum(new_lengths, 0) - new_lengths  # (B,) flat offset of each row
    column = torch.arange(row_of.numel(), device=ids.device) - starts[row_of]  # (T,)

    def pack(values: torch.Tensor, fill: int) -> torch.Tensor:
        out = torch.full((rows, width), fill, dtype=values.dtype, device=values.device)
        out[row_of, column] = values.flatten().repeat_interleave(flat_repeats)
        return out

    expanded = dict(batch)
    expanded["input_ids"] = pack(ids, pad_token_id)
    expanded["attention_mask"] = pack(batch["attention_mask"], 0)
    if "labels" in batch:
        labels = batch["labels"].masked_fill(is_image, IGNORE_INDEX)
        expanded["labels"] = pack(labels, IGNORE_INDEX)
    if bool(is_image.any()):
        expanded["num_visual_tokens"] = num_visual_tokens
    return expanded


class LlavaCollator:
    """Pads samples of [`LlavaJsonDataset`] on the right and stacks their images.

    By default the placeholders stay unexpanded (one per image): the trainer expands them to the
    step's budget, which it alone knows. Give `num_visual_tokens` to expand here instead
    (evaluation, benchmarks, fixed-budget runs).

    Args:
        pad_token_id: The tokenizer's pad id.
        image_token_id: The processor's `image_token_id`.
        num_visual_tokens: Expand every image to this budget in the collator; `None` = leave it.

    Returns (when called):
        `input_ids`, `attention_mask`, `labels` (B, L); `pixel_values` (I, 3, H, W) when any
        sample has images; `num_skipped` (0-d long tensor) — bad records replaced while loading
        this batch; `num_visual_tokens` when expanded.
    """

    def __init__(
        self, pad_token_id: int, image_token_id: int, num_visual_tokens: int | None = None
    ):
        self.pad_token_id = pad_token_id
        self.image_token_id = image_token_id
        self.num_visual_tokens = num_visual_tokens

    def __call__(self, samples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not samples:
            raise ValueError("Cannot collate an empty list of samples.")
        input_ids, attention_mask = pad_batch([s["input_ids"] for s in samples], self.pad_token_id)
        labels = pad_sequences([s["labels"] for s in samples], IGNORE_INDEX)
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
        pixels = [s["pixel_values"] for s in samples if s.get("pixel_values") is not None]
        if pixels:
            batch["pixel_values"] = torch.cat(pixels, dim=0)
        batch["num_skipped"] = torch.tensor(sum(s.get("num_skipped", 0) for s in samples))
        if self.num_visual_tokens is not None:
            batch = expand_image_placeholders(
                batch, self.num_visual_tokens, self.image_token_id, self.pad_token_id
            )
        return batch
