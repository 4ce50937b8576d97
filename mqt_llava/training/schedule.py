"""The learning-rate schedule of the ShapesVQA loops, as a Trainer option.

`lr_schedule: warmup-first-step-cosine` in a recipe: a linear warm-up whose first step already
runs at `lr / warmup` (the Trainer's `cosine` starts at 0, so its first step does not train),
then the same cosine decay to 0. The warm-up lasts `max(1, round(ratio * steps))` steps.
"""

from __future__ import annotations

import math

import torch

LR_SCHEDULES = ("warmup-first-step-cosine",)


def cosine_schedule(
    optimizer: torch.optim.Optimizer, steps: int, warmup_ratio: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over `warmup_ratio * steps` steps (from lr / warmup), then cosine to 0."""
    warmup = max(1, round(warmup_ratio * steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
