"""Replaying policies offline on a table of per-budget answers (for calibration and frontiers).

With greedy decoding, a policy's attempt at budget m gives the answer the model gives at fixed m,
so one sweep at every budget (answer, correctness and confidence per question and budget) is
enough to evaluate any escalation threshold or router setting without generating again.
`mqt-llava eval --num-visual-tokens auto` checks the replay against the real thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class SweepTable:
    """Per question (N) and budget (K, increasing): correctness and confidences.

    Attributes:
        budgets: The K budgets.
        correct: (N, K) bool.
        first_token: (N, K) probability of the answer's first token.
        mean_prob: (N, K) geometric-mean token probability of the answer.
        fixed_gflops: (N, K) prefill GFLOPs of answering at fixed m (vision + connector(m) + LLM).
        llm_gflops: (N, K) LLM prefill GFLOPs at m.
        encode_gflops: (N,) vision + connector at M: paid once by every automatic policy.
    """

    budgets: list[int]
    correct: np.ndarray
    first_token: np.ndarray
    mean_prob: np.ndarray
    fixed_gflops: np.ndarray
    llm_gflops: np.ndarray
    encode_gflops: np.ndarray

    def column(self, m: int) -> int:
        if m not in self.budgets:
            raise ValueError(f"budget {m} was not swept; swept: {self.budgets}")
        return self.budgets.index(m)


@dataclass
class Point:
    """One operating point: accuracy (%), mean prefill GFLOPs (whole and LLM part), mean budget."""

    name: str
    accuracy: float
    gflops: float
    llm_gflops: float
    mean_budget: float
    mean_attempts: float = 1.0


def fixed_points(table: SweepTable) -> list[Point]:
    """Every swept budget as a fixed policy."""
    return [
        Point(
            f"fixed m={m}",
            100 * table.correct[:, k].mean(),
            table.fixed_gflops[:, k].mean(),
            table.llm_gflops[:, k].mean(),
            float(m),
        )
        for k, m in enumerate(table.budgets)
    ]


def _auto_point(
    name: str, table: SweepTable, final: np.ndarray, tried: np.ndarray, attempts: np.ndarray
) -> Point:
    rows = np.arange(len(final))
    llm = (table.llm_gflops * tried).sum(1)
    return Point(
        name,
        100 * table.correct[rows, final].mean(),
        (table.encode_gflops + llm).mean(),
        llm.mean(),
        float(np.asarray(table.budgets)[final].mean()),
        float(attempts.mean()),
    )


def escalation_point(
    table: SweepTable, ladder: Sequence[int], threshold: float, confidence: str = "first_token"
) -> Point:
    """Replays [`Escalation`](ladder, threshold, confidence) on the table."""
    scores = table.first_token if confidence == "first_token" else table.mean_prob
    cols = [table.column(m) for m in ladder]
    n = table.correct.shape[0]
    final = np.full(n, cols[0])
    tried = np.zeros_like(table.correct, dtype=bool)
    attempts = np.zeros(n)
    active = np.ones(n, dtype=bool)
    for i, k in enumerate(cols):
        tried[active, k] = True
        attempts[active] += 1
        final[active] = k
        if i + 1 < len(cols):
            active = active & (scores[:, k] < threshold)
    name = f"escalation {'/'.join(map(str, ladder))} {confidence}≥{threshold:g}"
    return _auto_point(name, table, final, tried, attempts)


def chosen_point(name: str, table: SweepTable, budgets: Sequence[int]) -> Point:
    """One attempt per question at the given budgets (a router's or a latency target's)."""
    final = np.array([table.column(m) for m in budgets])
    tried = np.zeros_like(table.correct, dtype=bool)
    tried[np.arange(len(final)), final] = True
    return _auto_point(name, table, final, tried, np.ones(len(final)))


def oracle_point(table: SweepTable) -> Point:
    """The smallest budget that answers right (the largest when none does), one attempt each."""
    anyright = table.correct.any(1)
    first_right = table.correct.argmax(1)
    final = np.where(anyright, first_right, len(table.budgets) - 1)
    point = chosen_point("oracle", table, [table.budgets[k] for k in final])
    return point


def pareto(points: Sequence[Point]) -> list[Point]:
    """The points not beaten in both accuracy and FLOPs, by increasing FLOPs."""
    front: list[Point] = []
    for p in sorted(points, key=lambda p: (p.gflops, -p.accuracy)):
        if not front or p.accuracy > front[-1].accuracy:
            front.append(p)
    return front


def interpolate_fixed(fixed: Sequence[Point], gflops: float) -> float:
    """The fixed-budget curve's accuracy at a FLOP level (linear between swept budgets)."""
    xs = [p.gflops for p in fixed]
    ys = [p.accuracy for p in fixed]
    return float(np.interp(gflops, xs, ys))
