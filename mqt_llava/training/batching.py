"""Length-grouped batching by modality (the release's `group_by_modality_length`).

Batches hold records of one modality (all with images, or all text-only) and of similar
length, so little compute goes to padding and text-only batches skip the vision tower. A
"megabatch" is what one optimizer step consumes across all ranks; it is sorted by length and
split into per-rank chunks of equal size and similar total length.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


def _even_chunks(indices: list[int], lengths: Sequence[int], chunks: int) -> list[list[int]]:
    """Splits indices (longest first) into `chunks` lists of equal size, balancing lengths."""
    if len(indices) % chunks:
        return [indices[i::chunks] for i in range(chunks)]
    per_chunk = len(indices) // chunks
    out: list[list[int]] = [[] for _ in range(chunks)]
    totals = [0] * chunks
    for index in indices:
        open_chunks = [c for c in range(chunks) if len(out[c]) < per_chunk]
        target = min(open_chunks, key=lambda c: totals[c])
        out[target].append(index)
        totals[target] += lengths[index]
    return out


def length_grouped_indices(
    lengths: Sequence[int], batch_size: int, world_size: int, generator: torch.Generator
) -> list[int]:
    """One modality: shuffle, cut into megabatches, sort each by length, split per rank."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    size = batch_size * world_size
    result = []
    for start in range(0, len(order), size):
        mega = sorted(order[start : start + size], key=lambda i: lengths[i], reverse=True)
        for chunk in _even_chunks(mega, lengths, world_size):
            result.extend(chunk)
    return result


def modality_length_grouped_indices(
    lengths: Sequence[int], batch_size: int, world_size: int, generator: torch.Generator
) -> list[int]:
    """The release's ordering: same-modality megabatches shuffled, the two leftovers last.

    Args:
        lengths: Per record, a positive length for records with images, negative for text-only.
        batch_size: Per-device batch size.
        world_size: Ranks times gradient-accumulation steps (the batches of one optimizer step).
        generator: Seeded generator (unlike the release, every shuffle uses it).

    Returns:
        A permutation of `range(len(lengths))`.
    """
    if any(length == 0 for length in lengths):
        raise ValueError("Modality lengths must be non-zero (positive: image, negative: text).")
    if all(length > 0 for length in lengths) or all(length < 0 for length in lengths):
        return length_grouped_indices([abs(x) for x in lengths], batch_size, world_size, generator)
    size = batch_size * world_size
    megabatches: list[list[int]] = []
    leftovers: list[int] = []
    for sign in (1, -1):
        subset = [i for i, length in enumerate(lengths) if length * sign > 0]
        sub_lengths = [abs(lengths[i]) for i in subset]
        grouped = length_grouped_indices(sub_lengths, batch_size, world_size, generator)
        ordered = [subset[i] for i in grouped]
        chunks = [ordered[i : i + size] for i in range(0, len(ordered), size)]
        megabatches.extend(chunks[:-1])
        leftovers.extend(chunks[-1])
    order = torch.randperm(len(megabatches), generator=generator).tolist()
    result = [i for k in order for i in megabatches[k]]
    return result + sorted(leftovers)


class ModalityLengthGroupedSampler(Sampler[int]):
    """Sampler yielding [`modality_length_grouped_indices`], reshuffled per epoch from `seed`.

    The order depends only on (seed, epoch), so a resumed run sees the same batches.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, world_size: int, seed: int = 0):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.world_size = world_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        yield from modality_length_grouped_indices(
            self.lengths, self.batch_size, self.world_size, generator
        )
