"""The evaluation subcommands: ``mqt-llava eval``, ``report`` and ``submit``.

Imported for ``--help``: nothing heavy (torch, transformers, matplotlib) at module level.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mqt_llava import cli_args
from mqt_llava.evaluation.readers import BENCHMARKS
from mqt_llava.hub.cli_args import add_model_arguments

_budgets = cli_args.budget_list  # ``2,16,64,256``, range-checked later against the model's M


def eval_command(args: argparse.Namespace) -> None:
    """Answer a benchmark at several visual-token budgets and score the answers."""
    from mqt_llava.evaluation.runner import evaluate

    cli_args.quiet_transformers()
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
        budget_policy=args.budget_policy,
    )
    print(f"{metrics['title']}: {metrics['num_questions']} questions → {args.out}")
    print(f"{'tokens':>6}  {metrics['headline']}")
    for row in metrics["results"]:
        if row["score"] is not None:
            value = f"{row['score']:.2f}"
        else:
            value = f"not scored: {row.get('error') or 'no annotations found (--annotations)'}"
        if "mean_prefill_gflops" in row:  # auto: the budget chosen per question
            value += f"  (mean m {row['mean_num_visual_tokens']:.2f}, {row['mean_attempts']:.2f}"
            value += f" attempts, {row['mean_prefill_gflops']:.4f} prefill GFLOPs)"
        print(f"{row['num_visual_tokens']:>6}  {value}")
    _print_shortcut_baselines(metrics["results"])


def _print_shortcut_baselines(results: list[dict]) -> None:
    """The LLaVA-JSON scorer's baselines: per budget and category, the accuracy next to the
    majority-answer and text-only (no image) accuracies, and a flag where it is no better."""
    scored = [r for r in results if r.get("metrics") and "text_only_baseline" in r["metrics"]]
    if not scored:
        return
    print(
        "\nshortcut baselines (no image): majority answer; most frequent answer per question text"
    )
    heads = ("n", "acc", "major.", "text", "agree")
    print(
        f"{'tokens':>6}  {'category':<20} {heads[0]:>6} " + " ".join(f"{h:>7}" for h in heads[1:])
    )
    for row in scored:
        m = row["metrics"]
        groups = [("all", m), *sorted(m.get("per_category", {}).items())]
        for name, g in groups:
            flag = "  FLAG: no better than text only" if g["shortcut_flag"] else ""
            text = f"{g['text_only_baseline']['accuracy']:>7.2f}"
            print(
                f"{row['num_visual_tokens']:>6}  {name:<20.20} {g['n']:>6} {g['accuracy']:>7.2f} "
                f"{g['majority_baseline']['accuracy']:>7.2f} {text} "
                f"{g['agreement_with_text_only']:>7.2f}{flag}"
            )


def report_command(args: argparse.Namespace) -> None:
    """Tabulate eval runs (benchmark x budget); plot accuracy against budget and prefill TFLOPs."""
    from mqt_llava.evaluation.report import write_report

    flops = json.loads(args.flops.read_text(encoding="utf-8")) if args.flops else None
    paths = write_report(
        args.runs, args.out, flops=flops, prompt_tokens=args.prompt_tokens, title=args.title
    )
    print((args.out / "results.md").read_text(encoding="utf-8"))
    print("\n".join(f"wrote {path}" for path in paths))


def submit_command(args: argparse.Namespace) -> None:
    """Write an evaluation server's submission file, as LLaVA-1.5's convert scripts do."""
    from mqt_llava.evaluation.submission import submit

    result = submit(args.benchmark, args.answers, args.out, args.questions)
    note = f" ({result.note})" if result.note else ""
    print(f"wrote {args.out}: {result.records} records{note}")


def register(subparsers) -> None:
    """Adds ``eval``, ``report`` and ``submit`` to the ``mqt-llava`` parser."""
    doc = eval_command.__doc__.strip()
    p = subparsers.add_parser("eval", help=doc, description=doc)
    add_model_arguments(p)  # --model PATH_OR_HUB_ID, --revision, --dtype, --load-8bit/4bit
    p.add_argument("--benchmark", required=True, metavar="NAME", help=", ".join(sorted(BENCHMARKS)))
    p.add_argument(
        "--data",
        type=Path,
        required=True,
        help="benchmark folder, laid out as LLaVA-1.5's playground/data/eval/<benchmark>",
    )
    p.add_argument(
        "--num-visual-tokens",
        type=cli_args.budgets_or_auto,
        required=True,
        metavar="M1,M2,...",
        help="budgets, e.g. 2,16,64,256 (encoded once at the largest, sliced for the others); "
        "auto: chosen per question by --budget-policy",
    )
    p.add_argument("--budget-policy", type=Path, help="policy JSON for auto (default: the model's)")
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

    doc = submit_command.__doc__.strip()
    p = subparsers.add_parser(
        "submit", help=doc, description=doc + " See docs/evaluation.md for each benchmark."
    )
    p.add_argument("benchmark", help="vqav2, vizwiz, mmbench, seed, mmvet or gqa")
    p.add_argument("--answers", type=Path, required=True, help="answer file (JSONL)")
    p.add_argument("--out", type=Path, required=True, help="the file to write")
    p.add_argument(
        "--questions",
        type=Path,
        help="vqav2: llava_vqav2_mscoco_test2015.jsonl; vizwiz: llava_test.jsonl; "
        "mmbench: the MMBench TSV; seed: SEED-Bench.json; not needed for mmvet and gqa",
    )
    p.set_defaults(run=submit_command)
