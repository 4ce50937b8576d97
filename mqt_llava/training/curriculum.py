"""A curriculum: phases at the start of training with their own records and budget policy.

```yaml
curriculum:
  - {until_step: 600, train_json: colour-and-shape.json, budget: "fixed:M"}
training: {max_steps: 1500, ...}
```

Optimizer steps `0 .. until_step - 1` draw their samples from the phase's records (and their m
from its budget policy); later steps from `data.train_json` (and `budget.policy`). Both are pure
functions of (seed, step), so every rank agrees and a resumed run sees the same batches. The
sampler yields exactly `max_steps` optimizer steps' worth of indices (each pool reshuffled,
seeded, when it runs out), so a curriculum needs `training.max_steps`.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from .sampler import BudgetSampler


class PhasedBudgets:
    """The budget of a step: the policy of the phase the step is in, else the main one."""

    def __init__(self, main: BudgetSampler, phases: Sequence[tuple[int, BudgetSampler]]):
        self.main = main
        self.phases = list(phases)  # (until_step, sampler), ascending
        self.per_forward = main.per_forward

    def __call__(self, step: int, micro_batch: int = 0, rank: int = 0) -> int:
        for until, sampler in self.phases:
            if step < until:
                return sampler(step, micro_batch, rank)
        return self.main(step, micro_batch, rank)


def _cycle(pool: Sequence[int], count: int, generator: torch.Generator) -> list[int]:
    """`count` indices from `pool`: seeded permutations of it, one after the other."""
    out: list[int] = []
    while len(out) < count:
        out += [pool[i] for i in torch.randperm(len(pool), generator=generator).tolist()]
    return out[:count]


class CurriculumSampler(Sampler[int]):
    """Indices into `ConcatDataset([main, *phase datasets])` for `max_steps` optimizer steps.

    Args:
        main_size: Records in the main dataset (indices `0 .. main_size - 1`).
        phases: Per phase, its last step + 1 and the indices of its records.
        max_steps: Optimizer steps of the run.
        samples_per_step: Per-device batch x ranks x accumulation steps.
        seed: The data seed.
        main_order: Orders the main pool per pass (e.g. grouped by modality); `None`: shuffled.
        per_step: Draw each step's samples afresh, `random.Random(seed).sample(pool, n)` step
            after step (records may recur before a pass is complete), as the ShapesVQA loop of
            `mqt_llava.experiments` does; otherwise pools are walked in seeded passes.
    """

    def __init__(
        self,
        main_size: int,
        phases: Sequence[tuple[int, Sequence[int]]],
        max_steps: int,
        samples_per_step: int,
        seed: int,
        main_order: Sampler[int] | None = None,
        per_step: bool = False,
    ):
        self.main_size = main_size
        self.phases = [(until, list(pool)) for until, pool in phases]
        self.max_steps = max_steps
        self.samples_per_step = samples_per_step
        self.seed = seed
        self.main_order = main_order
        self.per_step = per_step

    def __len__(self) -> int:
        return self.max_steps * self.samples_per_step

    def set_epoch(self, epoch: int) -> None:
        """The whole run is one pass; nothing changes between epochs."""

    def __iter__(self) -> Iterator[int]:
        if self.per_step:
            yield from self._per_step()
            return
        generator = torch.Generator().manual_seed(self.seed)
        out: list[int] = []
        start = 0
        for until, pool in self.phases:
            until = min(until, self.max_steps)
            out += _cycle(pool, (until - start) * self.samples_per_step, generator)
            start = max(start, until)
        passes = 0
        while len(out) < len(self):
            if self.main_order is not None:
                self.main_order.set_epoch(passes)
                out += list(self.main_order)
            else:
                out += torch.randperm(self.main_size, generator=generator).tolist()
            passes += 1
        yield from out[: len(self)]

    def _per_step(self) -> list[int]:
        order = random.Random(self.seed)
        main = list(range(self.main_size))
        out: list[int] = []
        for step in range(self.max_steps):
            pool = next((p for until, p in self.phases if step < until), main)
            if len(pool) < self.samples_per_step:
                raise ValueError(
                    f"data.sampling=per-step draws {self.samples_per_step} samples per step from "
                    f"a pool of {len(pool)} records: lower the batch size or add records."
                )
            out += order.sample(pool, self.samples_per_step)
        return out
