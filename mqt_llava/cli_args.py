"""Argument types and checks shared by every `mqt-llava` subcommand.

Each function here is an argparse `type=` (or a check run right after parsing), so that a wrong
value is refused as one line, `mqt-llava: error: ...`, with exit status 2, before any model
loads. Nothing heavy is imported at module level: `--device` imports torch only when given.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import NoReturn

THREADS_ENV = "MQT_LLAVA_THREADS"
# Below this much weight data (bytes), a model runs fastest on one CPU thread: its matmuls are
# too small to amortise thread synchronisation, and on a loaded machine extra threads only wait.
SMALL_MODEL_BYTES = 512 * 2**20


class ArgumentParser(argparse.ArgumentParser):
    """An `ArgumentParser` whose errors are one line on stderr and exit status 2 (no usage)."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        where = f"{command}: " if command else ""
        print(f"mqt-llava: error: {where}{message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def _fail(message: str) -> NoReturn:
    raise argparse.ArgumentTypeError(message)


def _int(text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        _fail(f"expected {what}, got {text!r}")


def positive_int(text: str) -> int:
    """An integer >= 1."""
    value = _int(text, "a positive integer")
    if value < 1:
        _fail(f"expected a positive integer, got {text!r}")
    return value


def nonnegative_int(text: str) -> int:
    """An integer >= 0."""
    value = _int(text, "an integer >= 0")
    if value < 0:
        _fail(f"expected an integer >= 0, got {text!r}")
    return value


def nonnegative_float(text: str) -> float:
    """A finite number >= 0 (e.g. a temperature)."""
    try:
        value = float(text)
    except ValueError:
        _fail(f"expected a number >= 0, got {text!r}")
    if not math.isfinite(value) or value < 0:
        _fail(f"expected a finite number >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (e.g. a timeout in seconds)."""
    value = nonnegative_float(text)
    if value == 0:
        _fail(f"expected a number > 0, got {text!r}")
    return value


def budget_list(text: str) -> list[int]:
    """`2,16,256`: distinct positive integers separated by commas (checked against M later)."""
    return _budgets(text, allow_auto=False)


def budgets_or_auto(text: str) -> list[int | str]:
    """Like [`budget_list`], also accepting `auto` (a budget chosen per question by a policy)."""
    return _budgets(text, allow_auto=True)


def _budgets(text: str, allow_auto: bool) -> list:
    parts = text.split(",")
    example = "expected distinct positive integers separated by commas (e.g. 2,16,256)"
    if allow_auto:
        example = (
            "expected distinct positive integers or auto, separated by commas (e.g. 2,16,auto)"
        )
    if any(not part.strip() for part in parts):
        _fail(f"{example}, got {text!r} (an empty item)")
    values: list = []
    for part in parts:
        if allow_auto and part.strip().lower() == "auto":
            values.append("auto")
            continue
        try:
            values.append(int(part.strip()))
        except ValueError:
            _fail(f"{example}, got {text!r}")
    if any(v != "auto" and v < 1 for v in values):
        _fail(f"{example}, got {text!r} (budgets start at 1)")
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        _fail(f"{example}, got {text!r} ({', '.join(map(str, repeated))} repeated)")
    return values


def port(text: str) -> int:
    """A TCP port, 0-65535 (0: any free port)."""
    value = _int(text, "a port number between 0 and 65535")
    if not 0 <= value <= 65535:
        _fail(f"expected a port number between 0 and 65535, got {text!r}")
    return value


def threads(text: str) -> int | str:
    """`--threads N` (N >= 1) or `auto`."""
    if text.strip().lower() == "auto":
        return "auto"
    value = _int(text, "a positive number of threads or 'auto'")
    if value < 1:
        _fail(f"expected a positive number of threads or 'auto', got {text!r}")
    return value


def device(text: str) -> str:
    """A torch device this machine has: `cpu`, `cuda`, `cuda:N`, `mps`, or `auto`.

    `auto` spreads the model over the devices found (`device_map="auto"`, see `hub.loading`).
    """
    import torch

    if text.strip() == "auto":
        return "auto"
    try:
        parsed = torch.device(text.strip())
    except (RuntimeError, ValueError):
        _fail(f"expected cpu, cuda, cuda:N, mps or auto, got {text!r}")
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is a CPU-only build" if torch.version.cuda is None else "none found"
            _fail(f"{text!r} asks for a CUDA GPU, but {why}; use --device cpu")
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            _fail(f"{text!r}: only {count} CUDA device(s), numbered from 0")
    elif parsed.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            _fail(f"{text!r}: MPS is not available on this machine; use --device cpu")
    elif parsed.type != "cpu":
        _fail(f"expected cpu, cuda, cuda:N, mps or auto, got {text!r}")
    return str(parsed)


def new_output_dir(text: str) -> Path:
    """A folder to write into: it may exist as a folder, but must not be a file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        _fail(f"{text} exists and is not a folder")
    return path


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """Adds `--threads N|auto` (default: $MQT_LLAVA_THREADS, else auto)."""
    parser.add_argument(
        "--threads",
        type=threads,
        default=None,
        help=f"CPU threads for torch: N or auto (default: ${THREADS_ENV}, else auto = 1 thread "
        "for models under 512 MB of weights, torch's own default for larger ones)",
    )


def resolve_threads(
    requested: int | str | None, model_dir: Path | None = None, device: str | None = None
) -> int | None:
    """The torch thread count to use, or `None` to keep torch's default.

    Args:
        requested: `--threads` (an int or "auto"), or `None` to read `$MQT_LLAVA_THREADS`.
        model_dir: The model folder whose weight size decides `auto` (the bundled model when
            `None`).
        device: The `--device`; `auto` keeps torch's default on GPUs.

    Raises:
        ValueError: `$MQT_LLAVA_THREADS` is set to something other than a positive integer or
            `auto`.
    """
    if requested is None:
        env = os.environ.get(THREADS_ENV, "").strip()
        try:
            requested = threads(env) if env else "auto"
        except argparse.ArgumentTypeError as err:
            raise ValueError(f"${THREADS_ENV}: {err}") from None
    if requested != "auto":
        return int(requested)
    if device is not None and not device.startswith("cpu"):
        return None
    return 1 if _weight_bytes(model_dir) < SMALL_MODEL_BYTES else None


def _weight_bytes(model_dir: Path | None) -> int:
    if model_dir is None:
        from .model.presets import BUNDLED_MODEL_DIR

        model_dir = BUNDLED_MODEL_DIR
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return 0  # a hub id or a missing folder: loading will say so
    return sum(f.stat().st_size for f in model_dir.glob("*.safetensors")) + sum(
        f.stat().st_size for f in model_dir.glob("*.bin")
    )


def apply_threads(
    requested: int | str | None, model_dir: Path | None = None, device: str | None = None
) -> int:
    """Sets torch's intra-op thread count from `--threads` / `$MQT_LLAVA_THREADS`; returns it."""
    import torch

    count = resolve_threads(requested, model_dir, device)
    if count is not None:
        torch.set_num_threads(count)
    return torch.get_num_threads()


def quiet_transformers() -> None:
    """The model commands' console: `transformers`' own logging and progress bars off, and its
    deprecation notices (FutureWarnings raised inside `transformers`) hidden.

    Only `transformers`' FutureWarnings are filtered: those of torch, of other libraries and of
    this package still show.
    """
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers(\.|$)")
