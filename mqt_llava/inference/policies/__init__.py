"""Budget policies for `num_visual_tokens="auto"` (see `mqt_llava.inference.budget`).

- [`Escalation`]: answer at a small budget; answer again at the next one while the model's
  confidence in its answer is under a threshold.
- [`Router`]: a tiny network, trained on the model's own correctness across budgets, predicts
  the smallest sufficient budget from the image's tokens at a small budget and the question.
- [`LatencyTarget`]: the largest budget whose predicted prefill fits a time (per-machine cost
  model fitted to `mqt-llava bench`) or FLOP target.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .escalation import Escalation
from .latency import CostModel, LatencyTarget
from .router import Router

POLICIES = {"escalation": Escalation, "router": Router, "latency": LatencyTarget}


def default_policy() -> Escalation:
    """The policy `"auto"` uses when the model folder names none."""
    return Escalation()


def build_policy(spec: dict[str, Any], base: Path | None = None):
    """Rebuilds a policy from its `to_dict()` description.

    Args:
        spec: `{"policy": "escalation" | "router" | "latency", ...}`.
        base: Folder against which relative file names in the description are resolved.

    Raises:
        ValueError: An unknown policy or a malformed description.
    """
    if not isinstance(spec, dict) or spec.get("policy") not in POLICIES:
        name = spec.get("policy") if isinstance(spec, dict) else spec
        raise ValueError(
            f"unknown budget policy {name!r}; expected one of {', '.join(POLICIES)} "
            '(a JSON object like {"policy": "escalation", "threshold": 0.9})'
        )
    return POLICIES[spec["policy"]].from_dict(spec, base)


__all__ = [
    "POLICIES",
    "CostModel",
    "Escalation",
    "LatencyTarget",
    "Router",
    "build_policy",
    "default_policy",
]
