"""The `mqt-llava` command: one entry point, each subcommand a plain typed function.

Library errors (bad budgets, missing files, unreadable images, ...) are printed as one line,
`mqt-llava: error: ...`, with exit status 2 — never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from . import cli_args

# Kept under its old name: other command modules import it from here.
_budget_list = cli_args.budget_list


AUTO = "auto"


# -- subcommands ----------------------------------------------------------------------------------


def convert(
    src: str,
    dst: Path,
    vision_tower: str | None,
    num_heads: int,
    num_visual_tokens: int | None,
    overwrite: bool = False,
    revision: str | None = None,
) -> None:
    """Convert an original MQT-LLaVA checkpoint (or a stage-1 query_abstractor.bin)."""
    from .hub.card import write_model_card
    from .hub.resolve import download_tower, source_folder
    from .model.convert import convert_checkpoint

    folder, source = source_folder(src, revision)  # a local path, or a hub id downloaded once
    report = convert_checkpoint(
        folder,
        dst,
        vision_tower,
        num_heads,
        num_visual_tokens,
        overwrite,
        source=source,
        fetch_tower=download_tower,
        write_card=write_model_card,
    )
    print(report.summary())


def ask(
    question: str,
    image: Path,
    model: Path | None,
    num_visual_tokens: list[int | str] | None,
    max_new_tokens: int,
    temperature: float,
    device: str | None,
    budget_policy: Path | None = None,
) -> None:
    """Answer a question about an image at one or several visual-token budgets."""
    from .inference import load
    from .model import check_num_visual_tokens
    from .model.images import load_image

    picture = load_image(image)  # bad files fail here, before the model loads
    vlm = load(model, device=device)
    budgets = num_visual_tokens or [vlm.model.config.num_visual_tokens]
    if AUTO in budgets:  # a budget chosen per request: mqt_llava.inference.budget
        from .inference.auto import print_answers

        return print_answers(vlm, picture, question, budgets, max_new_tokens, budget_policy)
    budgets = [check_num_visual_tokens(m, vlm.max_visual_tokens) for m in budgets]
    if len(budgets) == 1:
        print(f"[{budgets[0]} visual tokens] ", end="", flush=True)
        start = time.perf_counter()
        for piece in vlm.stream(picture, question, budgets[0], max_new_tokens, temperature):
            print(piece, end="", flush=True)
        print(f"\n({time.perf_counter() - start:.2f} s)")
        return
    print(f"{'tokens':>6}  {'seconds':>7}  answer")
    for answer in vlm.ask_budgets(picture, question, budgets, max_new_tokens, temperature):
        print(f"{answer.num_visual_tokens:>6}  {answer.seconds:>7.2f}  {answer.text}")


def data_shapes(
    out: Path, n: int, seed: int, image_size: int, questions_per_scene: int, overwrite: bool
) -> None:
    """Generate the ShapesVQA dataset (LLaVA JSON, train/val/test, stage-1 captions)."""
    from .data.shapes import generate_shapes_dataset

    summary = generate_shapes_dataset(
        out,
        n=n,
        seed=seed,
        image_size=image_size,
        questions_per_scene=questions_per_scene,
        overwrite=overwrite,
    )
    print(_shapes_summary(out, summary))


def _shapes_summary(out: Path, summary: dict) -> str:
    """A few lines: how many scenes and questions each split has, and where the files went."""
    lines = [f"wrote ShapesVQA to {out}"]
    for name, split in summary.get("splits", {}).items():
        lines.append(
            f"  {name:<5}  {split['scenes']:>6} scenes  {split['questions']:>6} questions  "
            f"{out / f'{name}.json'}"
        )
    lines.append(f"  images in {out / 'images'}, stage-1 captions in {out / 'captions.json'}")
    lines.append(f"  counts per question type and answer: {out / 'dataset_info.json'}")
    return "\n".join(lines)


def score(benchmark: str, answers: Path, annotations: Path, questions: Path | None) -> None:
    """Score an answer file with a benchmark's official metric; prints the metrics as JSON."""
    from .evaluation.score import score as score_fn

    print(json.dumps(score_fn(benchmark, answers, annotations, questions), indent=2))


# -- parser ---------------------------------------------------------------------------------------


def _first_line(fn: Callable) -> str:
    return (fn.__doc__ or "").strip().splitlines()[0]


# Layers that add their own subcommands: each module defines `register(subparsers)`, adding
# parsers whose `run` default takes the parsed arguments. Modules must import nothing heavy at
# import time (torch, transformers) so that `--help` and the light commands stay fast.
COMMAND_MODULES = (
    "mqt_llava.training.commands",  # train
    "mqt_llava.evaluation.commands",  # eval, report
    "mqt_llava.serving.commands",  # serve, chat, ui
    "mqt_llava.perf.commands",  # flops, bench
    "mqt_llava.visualization.commands",  # gradcam
    "mqt_llava.experiments.commands",  # experiment
    "mqt_llava.pretrained.commands",  # backbones
)


def build_parser() -> argparse.ArgumentParser:
    parser = cli_args.ArgumentParser(
        prog="mqt-llava",
        description="Vision-language models with an elastic visual-token budget.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_core_commands(sub)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if not (name == err.name or name.startswith(f"{err.name}.")):
                raise  # a real import error inside an existing module
            continue
        module.register(sub)
    return parser


def _add_core_commands(sub) -> None:
    from .hub.cli_args import add_model_arguments

    p = sub.add_parser("convert", help=_first_line(convert), description=_first_line(convert))
    p.add_argument(
        "src", help="release checkpoint folder, query_abstractor.bin, or hub id (owner/name)"
    )
    p.add_argument("dst", type=Path, help="output folder (new or empty)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty DST")
    p.add_argument("--revision", help="hub branch, tag or commit when SRC is a hub id")
    p.add_argument("--vision-tower", help="CLIP tower path or hub id (default: mm_vision_tower)")
    p.add_argument("--num-heads", type=int, default=16, help="connector heads (16 in the release)")
    p.add_argument("--num-visual-tokens", type=int, help="default budget to write (default: M)")
    p.set_defaults(
        run=lambda a: convert(
            a.src, a.dst, a.vision_tower, a.num_heads, a.num_visual_tokens, a.overwrite, a.revision
        )
    )

    p = sub.add_parser("ask", help=_first_line(ask), description=_first_line(ask))
    p.add_argument("question")
    p.add_argument("--image", type=Path, required=True)
    add_model_arguments(p)  # --model PATH_OR_HUB_ID, --revision, --dtype, --load-8bit/4bit
    p.add_argument(
        "--num-visual-tokens",
        type=cli_args.budgets_or_auto,
        help="budget(s), e.g. 16 or 2,16,256; auto: chosen per question by --budget-policy",
    )
    p.add_argument("--max-new-tokens", type=cli_args.positive_int, default=32)
    p.add_argument("--temperature", type=cli_args.nonnegative_float, default=0.0, help="0 = greedy")
    p.add_argument(
        "--device", type=cli_args.device, help="cpu, cuda, cuda:1, ... (default: cuda if available)"
    )
    cli_args.add_threads_argument(p)
    p.add_argument(
        "--budget-policy",
        type=Path,
        help="policy JSON for auto (default: the model's budget_policy.json, else escalation)",
    )
    p.set_defaults(
        run=lambda a: ask(
            a.question,
            a.image,
            a.model,
            a.num_visual_tokens,
            a.max_new_tokens,
            a.temperature,
            a.device,
            a.budget_policy,
        )
    )

    data = sub.add_parser("data", help="Generate datasets.").add_subparsers(
        dest="dataset", required=True, metavar="DATASET"
    )
    p = data.add_parser(
        "shapes", help=_first_line(data_shapes), description=_first_line(data_shapes)
    )
    p.add_argument("--out", type=cli_args.new_output_dir, required=True)
    p.add_argument("--n", type=cli_args.positive_int, default=20000, help="train questions")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=cli_args.positive_int, default=64)
    p.add_argument(
        "--questions-per-scene",
        type=cli_args.positive_int,
        default=3,
        help="questions asked about each scene, of distinct types (at most 7)",
    )
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(
        run=lambda a: data_shapes(
            a.out, a.n, a.seed, a.image_size, a.questions_per_scene, a.overwrite
        )
    )

    p = sub.add_parser("score", help=_first_line(score), description=_first_line(score))
    p.add_argument("benchmark")
    p.add_argument("--answers", type=Path, required=True)
    p.add_argument("--annotations", type=Path, required=True)
    p.add_argument("--questions", type=Path)
    p.set_defaults(run=lambda a: score(a.benchmark, a.answers, a.annotations, a.questions))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help (0) or a usage error (2), already printed as one line
        return stop.code if isinstance(stop.code, int) else 2
    if args.command in ("convert", "ask"):  # the model commands; the others stay torch-free
        cli_args.quiet_transformers()
    from .hub.loading import cli_load_options

    try:
        if "threads" in args and args.command != "bench":  # bench times its own thread counts
            model, device = getattr(args, "model", None), getattr(args, "device", None)
            cli_args.apply_threads(args.threads, model, device)
        with cli_load_options(args):  # --dtype / --load-4bit / ... reach every load()
            status = args.run(args)  # an int from commands whose checks can fail (bench)
    except (ValueError, OSError) as err:  # FileNotFoundError, FileExistsError, PermissionError...
        print(f"mqt-llava: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    sys.exit(main())
