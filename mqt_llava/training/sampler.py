"""The budget sampler: the one place where randomness chooses the number of visual tokens m.

m is a pure function of (seed, optimizer step): every rank and every micro-batch of a step
compute the same m without communicating, and a resumed run draws exactly the m it would have
drawn. `per_forward=True` reproduces the release instead, which drew a new m on every forward pass
(each micro-batch, each rank); it is still a pure function, of (seed, step, micro-batch, rank).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..model.configuration import check_num_visual_tokens

POLICIES = ("fixed:N", "fixed:M", "uniform-even", "uniform", "log-uniform", "choice:a,b,c")


@dataclass(frozen=True)
class BudgetSampler:
    """Draws the visual-token budget of each training step.

    Policies (M = the connector's number of queries):
        - `fixed:N`: always N (`fixed:M` = M; stage 1 of the release).
        - `uniform-even`: uniform over {2, 4, ..., M} (stage 2 of the release / the paper).
        - `uniform`: uniform over {1, ..., M}.
        - `log-uniform`: m = floor(exp(u)), u uniform in [0, ln(M + 1)); small budgets are drawn
          as often as large ones per octave.
        - `choice:a,b,c`: uniform over the listed budgets.

    Args:
        policy: One of the policies above.
        max_tokens: M.
        seed: The run's seed.
        per_forward: Draw per forward pass (release behaviour) instead of per optimizer step.
    """

    policy: str
    max_tokens: int
    seed: int = 0
    per_forward: bool = False

    def __post_init__(self):
        self.support  # noqa: B018  (validates the policy once, at construction)

    @property
    def support(self) -> list[int]:
        """The budgets the policy can draw, ascending."""
        name, _, arg = self.policy.partition(":")
        big_m = self.max_tokens
        if name == "fixed" and arg:
            value = big_m if arg.strip() == "M" else _int(arg, self.policy)
            return [check_num_visual_tokens(value, big_m, name=f"budget policy {self.policy!r}")]
        if name == "choice" and arg:
            values = {_int(v, self.policy) for v in arg.split(",") if v.strip()}
            checked = [
                check_num_visual_tokens(v, big_m, name=f"budget in {self.policy!r}") for v in values
            ]
            return sorted(checked)
        if self.policy == "uniform-even":
            if big_m < 2:
                raise ValueError(f"uniform-even needs M >= 2, the model has M={big_m}.")
            return list(range(2, big_m + 1, 2))
        if self.policy in ("uniform", "log-uniform"):
            return list(range(1, big_m + 1))
        raise ValueError(f"Unknown budget policy {self.policy!r}; accepted: {', '.join(POLICIES)}.")

    def __call__(self, step: int, micro_batch: int = 0, rank: int = 0) -> int:
        """The budget m of optimizer step `step` (0-based).

        Args:
            step: Optimizer steps completed before this one (the Trainer's `global_step`).
            micro_batch: Index of the forward pass within the step; used only with `per_forward`.
            rank: Process index; used only with `per_forward`.
        """
        support = self.support
        if len(support) == 1:
            return support[0]
        key = [self.seed, step, micro_batch, rank] if self.per_forward else [self.seed, step]
        rng = np.random.default_rng(key)  # a fresh generator keyed by the step: no global state
        if self.policy == "log-uniform":
            value = math.floor(math.exp(rng.uniform(0.0, math.log(self.max_tokens + 1))))
            return min(max(value, 1), self.max_tokens)
        return int(support[int(rng.integers(len(support)))])


def _int(text: str, policy: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(
            f"Budget policy {policy!r}: {text!r} is not an integer; accepted: "
            f"{', '.join(POLICIES)}."
        ) from None
