"""Latency target: the largest budget whose predicted prefill fits a time or FLOP target.

The time model is per machine: `mqt-llava bench --model DIR --out bench.json` measures the
prefill at several budgets, and [`CostModel.from_bench`] fits `ms = intercept + per_token *
context_tokens` to it (the vision tower is a constant; the LLM prefill grows with the context,
which is what the budget changes). A FLOP target uses the meta-device count instead.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..budget import BudgetPolicy, PrefillCost, RowContext


@dataclass
class CostModel:
    """Predicted prefill milliseconds: `intercept_ms + per_token_ms * context_tokens`."""

    intercept_ms: float
    per_token_ms: float
    source: str = ""

    def predict_ms(self, context_tokens: int) -> float:
        return self.intercept_ms + self.per_token_ms * context_tokens

    @classmethod
    def from_bench(cls, path: str | Path) -> CostModel:
        """Fits the model to the `rows` of a `mqt-llava bench --out FILE` result.

        Raises:
            FileNotFoundError: No such file.
            ValueError: The file is not a bench result with at least two budgets.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"cost model: {path} not found (write one with `mqt-llava bench --out FILE`)"
            )
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))["rows"]
            points = [(float(r["context_tokens"]), float(r["prefill_ms"])) for r in rows]
        except (ValueError, KeyError, TypeError):
            raise ValueError(
                f"cost model: {path} is not a `mqt-llava bench --out` result (rows with "
                "context_tokens and prefill_ms)"
            ) from None
        if len({x for x, _ in points}) < 2:
            raise ValueError(f"cost model: {path} needs rows at two or more budgets to fit a line")
        n = len(points)
        mean_x = sum(x for x, _ in points) / n
        mean_y = sum(y for _, y in points) / n
        sxx = sum((x - mean_x) ** 2 for x, _ in points)
        slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx
        return cls(mean_y - slope * mean_x, slope, str(path))


class LatencyTarget(BudgetPolicy):
    """The largest budget (of `ladder`, default every m in [1, M]) predicted to fit the target.

    Exactly one of `max_prefill_ms` (needs `cost_model`) and `max_prefill_gflops` is given.
    When even the smallest budget does not fit, the smallest budget is used.

    Raises:
        ValueError: Neither or both targets, a non-positive target, or a time target without a
            cost model.
    """

    name = "latency"

    def __init__(
        self,
        max_prefill_ms: float | None = None,
        max_prefill_gflops: float | None = None,
        cost_model: CostModel | None = None,
        ladder: Sequence[int] | None = None,
    ):
        if (max_prefill_ms is None) == (max_prefill_gflops is None):
            raise ValueError("give exactly one of max_prefill_ms and max_prefill_gflops.")
        target = max_prefill_ms if max_prefill_ms is not None else max_prefill_gflops
        if not target > 0:
            raise ValueError(f"the latency target must be positive, got {target}.")
        if max_prefill_ms is not None and cost_model is None:
            raise ValueError(
                "max_prefill_ms needs a cost model: `mqt-llava bench --model DIR --out bench.json`,"
                ' then {"policy": "latency", "max_prefill_ms": ..., "cost_model": "bench.json"}.'
            )
        self.max_prefill_ms, self.max_prefill_gflops = max_prefill_ms, max_prefill_gflops
        self.cost_model = cost_model
        self.ladder = sorted({int(m) for m in ladder}) if ladder else None
        self._flops: PrefillCost | None = None

    def fits(self, text_tokens: int, m: int, images: int, config) -> bool:
        if self.max_prefill_ms is not None:
            return self.cost_model.predict_ms(text_tokens + images * m) <= self.max_prefill_ms
        if self._flops is None:
            self._flops = PrefillCost(config)
        return self._flops.fixed_gflops(text_tokens, m, images) <= self.max_prefill_gflops

    def first(self, rows: Sequence[RowContext], model, processor) -> list[int]:
        config = model.config
        ladder = self.ladder or list(range(1, config.num_queries + 1))
        ladder = [m for m in ladder if m <= config.num_queries] or [1]
        chosen = []
        for row in rows:
            images = row.visual_tokens.shape[0] if row.visual_tokens is not None else 0
            fitting = [m for m in ladder if self.fits(row.text_tokens, m, images, config)]
            chosen.append(fitting[-1] if fitting else ladder[0])
        return chosen

    def to_dict(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"policy": self.name}
        if self.max_prefill_ms is not None:
            spec["max_prefill_ms"] = self.max_prefill_ms
            spec["cost_model"] = self.cost_model.source
        else:
            spec["max_prefill_gflops"] = self.max_prefill_gflops
        if self.ladder:
            spec["ladder"] = self.ladder
        return spec

    @classmethod
    def from_dict(cls, spec: dict[str, Any], base: Path | None = None) -> LatencyTarget:
        cost = spec.get("cost_model")
        if isinstance(cost, str):
            path = Path(cost)
            cost = CostModel.from_bench(path if path.is_absolute() or base is None else base / path)
        elif isinstance(cost, dict):
            cost = CostModel(float(cost["intercept_ms"]), float(cost["per_token_ms"]), "inline")
        return cls(
            spec.get("max_prefill_ms"), spec.get("max_prefill_gflops"), cost, spec.get("ladder")
        )
