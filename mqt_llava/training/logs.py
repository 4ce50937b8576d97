"""Step logs as JSON lines: the loss curve of a run, readable without parsing progress bars.

Every time the Trainer logs (every `logging_steps`; every step in the bundled recipes), the main
process appends one line to `output_dir/<log_file>`::

    {"step": 3, "epoch": 0.75, "loss": 6.65, "learning_rate": 0.003, "grad_norm": 1.2,
     "num_visual_tokens": 4, "tokens_per_second": 812.3, ...}

A resumed run appends to the same file; [`read_log`] keeps the last line of each step, so the
steps that a resume repeats appear once.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from transformers import TrainerCallback


class JsonLinesLogger(TrainerCallback):
    """Appends the Trainer's logs to a JSON-lines file (main process only).

    Args:
        path: The file; its folder is created on the first write.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_log(self, args, state, control, logs: dict[str, Any] | None = None, **kwargs):
        if not logs or not state.is_world_process_zero:
            return
        entry = {"step": state.global_step, **{k: _plain(v) for k, v in logs.items()}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")


def _plain(value: Any) -> Any:
    """JSON-safe: numbers stay numbers (NaN/inf as strings), other objects as their str."""
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The entries of a JSON-lines log, one per (step, kind), later lines winning.

    Training-step entries (with `loss`) and the end-of-training summary (`train_runtime`) of the
    same step are kept apart; a resumed run's repeated steps replace the earlier ones.
    """
    entries: dict[tuple[int, str], dict[str, Any]] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        kind = "loss" if "loss" in entry else "summary" if "train_runtime" in entry else "other"
        entries[(int(entry["step"]), kind)] = entry
    return [entries[key] for key in sorted(entries)]


def read_losses(path: str | Path) -> list[float]:
    """The per-step training losses of a JSON-lines log, in step order."""
    return [entry["loss"] for entry in read_log(path) if "loss" in entry]
