"""Command-line arguments that name and load a model (no heavy imports: `--help` stays fast)."""

from __future__ import annotations

import argparse

DTYPE_CHOICES = ("bf16", "fp16", "fp32", "auto")


def model_reference(text: str) -> str:
    """`--model`: a local folder or a hub id (`owner/name`), resolved when the model loads."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a model folder or a hub id, got ''")
    return text


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds `--revision`, `--dtype`, `--load-8bit` and `--load-4bit` to a model command."""
    parser.add_argument("--revision", help="hub branch, tag or commit of --model")
    parser.add_argument(
        "--dtype", choices=DTYPE_CHOICES, help="weights dtype (default: bf16 on CUDA, else fp32)"
    )
    bits = parser.add_mutually_exclusive_group()
    bits.add_argument(
        "--load-8bit",
        action="store_true",
        help="8-bit LM weights (bitsandbytes; NVIDIA GPU, or CPU from bitsandbytes 0.50)",
    )
    bits.add_argument(
        "--load-4bit",
        action="store_true",
        help="4-bit LM weights (bitsandbytes; NVIDIA GPU, or CPU from bitsandbytes 0.50)",
    )


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """`--model PATH_OR_HUB_ID` plus [`add_load_arguments`]."""
    parser.add_argument(
        "--model",
        type=model_reference,
        help="model folder or hub id, e.g. gordonhu/MQT-LLaVA-7b (default: the bundled model)",
    )
    add_load_arguments(parser)
