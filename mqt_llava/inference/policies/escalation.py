"""Escalation: a small budget first, a larger one only when the model is unsure of its answer."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..budget import Attempt, BudgetPolicy, RowContext

CONFIDENCES = ("first_token", "mean_prob")


class Escalation(BudgetPolicy):
    """Answers at `ladder[0]`; while confidence < `threshold`, answers again at the next rung.

    Args:
        ladder: Increasing budgets tried in turn (the last one's answer is always kept).
        threshold: Confidence in [0, 1] at or above which an answer is kept.
        confidence: `"first_token"`: the probability of the answer's first token;
            `"mean_prob"`: the geometric mean of its tokens' probabilities (exp of the mean
            log-probability).

    Raises:
        ValueError: An empty or non-increasing ladder, a threshold outside [0, 1], or an
            unknown confidence.
    """

    name = "escalation"

    def __init__(
        self,
        ladder: Sequence[int] = (8, 16, 64),
        threshold: float = 0.9,
        confidence: str = "first_token",
    ):
        ladder = [int(m) for m in ladder]
        if not ladder or any(b <= a for a, b in itertools.pairwise(ladder)) or ladder[0] < 1:
            raise ValueError(f"ladder must be increasing budgets >= 1, got {ladder}.")
        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}.")
        if confidence not in CONFIDENCES:
            raise ValueError(
                f"confidence must be one of {', '.join(CONFIDENCES)}, got {confidence!r}."
            )
        self.ladder, self.threshold, self.confidence = ladder, float(threshold), confidence

    def score(self, attempt: Attempt) -> float:
        """The attempt's confidence, in [0, 1]."""
        if self.confidence == "first_token":
            return attempt.first_token_prob
        return math.exp(attempt.mean_logprob)

    def first(self, rows: Sequence[RowContext], model, processor) -> list[int]:
        big_m = model.config.num_queries
        if self.ladder[-1] > big_m:
            raise ValueError(f"escalation ladder {self.ladder} exceeds the model's M = {big_m}.")
        return [self.ladder[0]] * len(rows)

    def next(self, m: int, attempt: Attempt) -> int | None:
        if self.score(attempt) >= self.threshold:
            return None
        larger = [b for b in self.ladder if b > m]
        return larger[0] if larger else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.name,
            "ladder": self.ladder,
            "threshold": self.threshold,
            "confidence": self.confidence,
        }

    @classmethod
    def from_dict(cls, spec: dict[str, Any], base: Path | None = None) -> Escalation:
        keys = {"ladder", "threshold", "confidence"}
        return cls(**{k: v for k, v in spec.items() if k in keys})
