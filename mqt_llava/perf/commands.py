"""`mqt-llava flops` and `mqt-llava bench`: FLOPs per budget and measured latency.

Imported for `--help`: nothing heavy (torch, transformers) at import time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .. import cli_args
from .acceptance import BenchThresholds

_budget_list = cli_args.budget_list  # range-checked later against the model's M

# `mqt_llava.model.presets.PRESETS`, spelled out so that `--help` imports no torch
# (tests/model/test_presets.py checks that the two agree).
PRESET_NAMES = ("mqt-llava-7b", "bench", "bundled", "tiny")


def _config(preset: str | None, model: Path | None):
    """The config of `--model DIR`, else of `--preset` (default: the 7B release)."""
    from ..model.presets import preset_config
    from .flops import load_config

    return load_config(model) if model is not None else preset_config(preset or "mqt-llava-7b")


def flops(
    preset: str | None,
    model: Path | None,
    prompt_tokens: int,
    budgets: list[int] | None,
    as_json: bool,
) -> None:
    """Prefill FLOPs per visual-token budget and for LLaVA-1.5, counted on the meta device."""
    cli_args.quiet_transformers()
    from .flops import flops_report, format_report

    report = flops_report(_config(preset, model), budgets, prompt_tokens)
    print(json.dumps(report, indent=2) if as_json else format_report(report))


def bench(
    model: Path | None,
    budgets: list[int] | None,
    prompt_tokens: int,
    new_tokens: int,
    repeats: int,
    warmup: int,
    threads: int,
    seed: int,
    as_json: bool,
    out: Path | None,
    thresholds: BenchThresholds | None = None,
) -> int:
    """Prefill latency and decode speed per budget, against transformers' LLaVA, interleaved."""
    cli_args.quiet_transformers()
    from ..model.presets import preset_config
    from . import acceptance
    from .flops import load_config
    from .latency import run_latency
    from .report import format_latency

    result = run_latency(
        load_config(model) if model is not None else preset_config("bench"),
        budgets,
        prompt_tokens,
        new_tokens,
        repeats,
        warmup,
        threads,
        seed,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    if out is not None:
        out.write_text(json.dumps(result, indent=2) + "\n")
    verdicts = acceptance.checks(result, thresholds)
    print(json.dumps(result, indent=2) if as_json else format_latency(result, verdicts))
    failed = [name for name, passed, _ in verdicts if not passed]
    if failed:
        print(f"mqt-llava: bench: {len(failed)} check(s) failed: {'; '.join(failed)}",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


def register(subparsers) -> None:
    """Adds `flops` and `bench` to the `mqt-llava` command."""
    p = subparsers.add_parser(
        "flops", help=(flops.__doc__ or "").splitlines()[0], description=flops.__doc__
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--preset",
        choices=PRESET_NAMES,
        help="a named size from mqt_llava.model.presets (default: mqt-llava-7b)",
    )
    source.add_argument("--model", type=Path, help="a saved model folder (reads config.json)")
    p.add_argument("--prompt-tokens", type=_nonnegative, default=60, help="text tokens (def. 60)")
    p.add_argument("--budgets", type=_budget_list, help="budgets, e.g. 1,16,256 (default: all)")
    p.add_argument("--json", action="store_true", dest="as_json", help="print JSON")
    p.set_defaults(run=lambda a: flops(a.preset, a.model, a.prompt_tokens, a.budgets, a.as_json))

    p = subparsers.add_parser(
        "bench", help=(bench.__doc__ or "").splitlines()[0], description=bench.__doc__
    )
    p.add_argument(
        "--model",
        type=Path,
        help="time this folder's architecture (its config.json, random weights; default: a "
        "~140M-parameter configuration that runs on a CPU in minutes)",
    )
    p.add_argument("--budgets", type=_budget_list, help="budgets, e.g. 16,256 (default: all)")
    p.add_argument("--prompt-tokens", type=_positive, default=60)
    p.add_argument("--new-tokens", type=_positive, default=16, help="decoded tokens per sample")
    p.add_argument("--repeats", type=_positive, default=5, help="timed repetitions")
    p.add_argument("--warmup", type=_nonnegative, default=1, help="untimed repetitions first")
    p.add_argument(
        "--threads",
        type=_positive,
        default=None,
        help="torch threads (default: $MQT_LLAVA_THREADS if a number, else 1: CPU time)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", dest="as_json", help="print JSON")
    p.add_argument("--out", type=Path, help="also write the JSON result here")
    limits = BenchThresholds()
    p.add_argument(
        "--max-time-over-flop",
        type=_factor,
        default=limits.time_over_flop,
        help="the time ratio may differ from the FLOP ratio by this factor (default: "
        f"{limits.time_over_flop:g}; mqt_llava/perf/acceptance.py)",
    )
    p.add_argument(
        "--max-connector-share",
        type=cli_args.positive_float,
        default=limits.connector_share,
        help=f"largest connector share of the prefill time (default: {limits.connector_share:g})",
    )
    p.add_argument(
        "--max-decode-deviation",
        type=cli_args.positive_float,
        default=limits.decode_deviation,
        help="largest relative difference of a decode step from the bare LLM's (default: "
        f"{limits.decode_deviation:g})",
    )
    p.set_defaults(
        run=lambda a: bench(
            a.model,
            a.budgets,
            a.prompt_tokens,
            a.new_tokens,
            a.repeats,
            a.warmup,
            a.threads or _env_threads(),
            a.seed,
            a.as_json,
            a.out,
            BenchThresholds(
                time_over_flop=a.max_time_over_flop,
                connector_share=a.max_connector_share,
                decode_deviation=a.max_decode_deviation,
            ),
        )
    )


def _env_threads() -> int:
    value = os.environ.get("MQT_LLAVA_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else 1


def _factor(text: str) -> float:
    value = cli_args.positive_float(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a factor >= 1, got {text!r}")
    return value


def _positive(text: str) -> int:
    return _integer(text, 1)


def _nonnegative(text: str) -> int:
    return _integer(text, 0)


def _integer(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low:
        raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
    return value
