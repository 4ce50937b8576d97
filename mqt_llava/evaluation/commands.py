"""The evaluation subcommands: ``mqt-llava eval`` and ``mqt-llava report``.

Imported for ``--help``: nothing heavy (torch, transformers, matplotlib) at module level.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

from mqt_llava import cli_args
from mqt_llava.evaluation.readers import BENCHMARKS

_budgets = cli_args.budget_list  # ``2,16,64,256``, range-checked later against the model's M


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)


def eval_command(args: argparse.Namespace) -> None:
    """Answer a benchmark at several visual-token budgets and score the answers."""
    from mqt_llava.evaluation.runner import evaluate

    _quiet_transformers()
    metrics = evaluate(
        args.model,
        args.benchmark,
        args.data,
        args.num_visual_tokens,
        args.out,
        batch_size=args.batch_size,
        limit=args.limit,
        max_new_tokens=args.max_new_tokens,
        questions=args.questions,
        image_folder=args.image_folder,
        annotations=args.annotations,
        device=args.device,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    print(f"{metrics['title']}: {metrics['num_questions']} questions → {args.out}")
    print(f"{'tokens':>6}  {metrics['headline']}")
    for row in metrics["results"]:
        if row["score"] is not None:
            value = f"{row['score']:.2f}"
        else:
            value = f"not scored: {row.get('error') or 'no annotations found (--annotations)'}"
        print(f"{row['num_visual_tokens']:>6}  {value}")


def report_command(args: argparse.Namespace) -> None:
    """Tabulate eval runs (benchmark x budget); plot accuracy against budget and prefill TFLOPs."""
    from mqt_llava.evaluation.report import write_report

    flops = json.loads(args.flops.read_text(encoding="utf-8")) if args.flops else None
    paths = write_report(
        args.runs, args.out, flops=flops, prompt_tokens=args.prompt_tokens, title=args.title
    )
    print((args.out / "results.md").read_text(encoding="utf-8"))
    print("\n".join(f"wrote {path}" for path in paths))


def register(subparsers) -> None:
    """Adds ``eval`` and ``report`` to the ``mqt-llava`` parser."""
    doc = eval_command.__doc__.strip()
    p = subparsers.add_parser("eval", help=doc, description=doc)
    p.add_argument("--model", type=Path, help="model folder (default: the bundled model)")
    p.add_argument("--benchmark", required=True, metavar="NAME", help=", ".join(sorted(BENCHMARKS)))
    p.add_argument(
        "--data",
        type=Path,
        required=True,
        help="benchmark folder, laid out as LLaVA-1.5's playground/data/eval/<benchmark>",
    )
    p.add_argument(
        "--num-visual-tokens",
        type=_budgets,
        required=True,
        metavar="M1,M2,...",
        help="budgets, e.g. 2,16,64,256 (encoded once at the largest, sliced for the others)",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder (resumed if present)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--limit", type=int, help="only the first N questions")
    p.add_argument(
        "--max-new-tokens",
        type=cli_args.positive_int,
        help="default: the release's for the benchmark",
    )
    p.add_argument("--questions", type=Path, help="question file instead of the default one")
    p.add_argument("--image-folder", type=Path, help="image folder instead of the default one")
    p.add_argument("--annotations", type=Path, help="official annotations for the scorer")
    p.add_argument(
        "--device", type=cli_args.device, help="cpu, cuda, cuda:1, ... (default: cuda if available)"
    )
    cli_args.add_threads_argument(p)
    p.add_argument("--overwrite", action="store_true", help="start over instead of resuming")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=eval_command)

    doc = report_command.__doc__.strip()
    p = subparsers.add_parser("report", help=doc, description=doc)
    p.add_argument("runs", type=Path, nargs="+", help="output folders of `mqt-llava eval`")
    p.add_argument("--out", type=Path, required=True, help="folder for results.md and the PNG")
    p.add_argument(
        "--flops",
        type=Path,
        help="prefill TFLOPs per budget: the JSON of `mqt-llava flops --json` or "
        '{"<m>": tflops}; default: counted from the runs\' model config when possible',
    )
    p.add_argument(
        "--prompt-tokens",
        type=cli_args.nonnegative_int,
        default=60,
        help="text tokens for FLOP counts",
    )
    p.add_argument("--title", default="MQT-LLaVA: accuracy against visual-token budget")
    p.set_defaults(run=report_command)
