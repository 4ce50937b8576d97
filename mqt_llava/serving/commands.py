"""`mqt-llava serve`, `mqt-llava chat` and `mqt-llava ui`.

Imported for `--help`: torch, transformers, FastAPI and Gradio are imported inside the run
functions.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .. import cli_args


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _hosts(text: str) -> frozenset[str]:
    return frozenset(h.strip().lower() for h in text.split(",") if h.strip())


def run_serve(args: argparse.Namespace) -> None:
    cli_args.quiet_transformers()
    import dataclasses

    from .image_sources import ImagePolicy
    from .protocol import Limits
    from .server import ServerSettings, serve

    if args.image_dir is not None and not args.image_dir.is_dir():
        raise FileNotFoundError(f"--image-dir {args.image_dir} is not a folder.")
    limits = Limits(
        max_request_bytes=args.max_request_bytes,
        max_image_bytes=args.max_image_bytes,
        max_image_pixels=args.max_image_pixels,
        max_images=args.max_images,
        max_tokens=args.max_tokens_limit,
        default_max_tokens=min(args.default_max_tokens, args.max_tokens_limit),
    )
    policy = ImagePolicy(allowed_hosts=args.allowed_image_hosts, image_dir=args.image_dir)
    settings = ServerSettings(
        model_name="", limits=limits, images=policy, request_timeout=args.request_timeout
    )
    if args.allowed_hosts is not None:  # "*": any Host header
        hosts = None if "*" in args.allowed_hosts else args.allowed_hosts
        settings = dataclasses.replace(settings, allowed_hosts=hosts)
    serve(
        args.model, args.host, args.port, args.api_key, args.model_name, settings,
        args.max_queue, args.max_batch, args.device,
    )  # fmt: skip


def run_chat(args: argparse.Namespace) -> None:
    cli_args.quiet_transformers()
    from .chat import chat

    chat(args.model, args.image, args.num_visual_tokens, args.max_new_tokens, args.temperature,
         args.device)  # fmt: skip


def run_ui(args: argparse.Namespace) -> None:
    cli_args.quiet_transformers()
    from .ui import ui

    ui(args.model, args.host, args.port, args.max_new_tokens, args.device)


def register(subparsers) -> None:
    """Adds `serve`, `chat` and `ui` to the `mqt-llava` command."""
    p = subparsers.add_parser(
        "serve",
        help="Serve a model with an OpenAI-compatible API (chat completions with images).",
        description="Serve a model with an OpenAI-compatible API: POST /v1/chat/completions "
        "(text and image_url parts, streaming, extra field num_visual_tokens), GET /v1/models, "
        "GET /health. Binds to loopback unless --host says otherwise.",
    )
    _model_args(p)
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback)")
    p.add_argument("--port", type=cli_args.port, default=8000)
    p.add_argument(
        "--api-key",
        default=os.environ.get("MQT_LLAVA_API_KEY"),
        help="require 'Authorization: Bearer KEY' (default: $MQT_LLAVA_API_KEY, else no key)",
    )
    p.add_argument("--model-name", help="model id clients pass (default: the folder's name)")
    p.add_argument(
        "--allowed-image-hosts",
        type=_hosts,
        default=frozenset(),
        help="comma-separated hosts whose http(s) image URLs may be fetched (default: none)",
    )
    p.add_argument(
        "--allowed-hosts",
        type=_hosts,
        help="comma-separated Host header names accepted, '*' for any (default: loopback names, "
        "plus --host when it is one address; any when --host is 0.0.0.0 or ::)",
    )
    p.add_argument(
        "--image-dir", type=Path, help="folder that local image paths may point into (default: off)"
    )
    p.add_argument("--max-queue", type=_positive, default=64, help="waiting requests before 429")
    p.add_argument("--max-batch", type=_positive, default=8, help="requests generated together")
    p.add_argument("--max-request-bytes", type=_positive, default=20 * 2**20)
    p.add_argument("--max-image-bytes", type=_positive, default=10 * 2**20)
    p.add_argument(
        "--max-image-pixels",
        type=_positive,
        default=4096 * 4096,
        help="width x height read from the header, checked before decoding",
    )
    p.add_argument("--max-images", type=_positive, default=4, help="images per request")
    p.add_argument("--max-tokens-limit", type=_positive, default=1024, help="largest max_tokens")
    p.add_argument("--default-max-tokens", type=_positive, default=256)
    p.add_argument(
        "--request-timeout",
        type=cli_args.positive_float,
        default=600.0,
        help="seconds an answer may take (a stream: between pieces) before a 503",
    )
    p.set_defaults(run=run_serve)

    p = subparsers.add_parser(
        "chat",
        help="Chat with a model about an image in the terminal (streaming, multi-turn).",
        description="Multi-turn chat in the terminal. Commands: /image PATH (switch image, "
        "new conversation), /tokens N (switch budget), /reset, /quit.",
    )
    _model_args(p)
    p.add_argument("--image", type=Path, help="the image to talk about (or /image later)")
    p.add_argument("--num-visual-tokens", type=_positive, help="budget (default: the model's)")
    p.add_argument(
        "--max-new-tokens",
        type=_positive,
        default=256,
        help="answer length limit, clamped to the room left in the model's context (default 256)",
    )
    p.add_argument("--temperature", type=cli_args.nonnegative_float, default=0.0, help="0 = greedy")
    p.set_defaults(run=run_chat)

    p = subparsers.add_parser(
        "ui",
        help="A web demo: ask about an image and compare two budgets side by side.",
        description="A Gradio web demo: upload an image, ask, and compare the answers and "
        "latencies at two visual-token budgets.",
    )
    _model_args(p)
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback)")
    p.add_argument("--port", type=cli_args.port, default=7860)
    p.add_argument("--max-new-tokens", type=_positive, default=64)
    p.set_defaults(run=run_ui)


def _model_args(p: argparse.ArgumentParser) -> None:
    from ..hub.cli_args import add_model_arguments

    add_model_arguments(p)  # --model PATH_OR_HUB_ID, --revision, --dtype, --load-8bit/4bit
    p.add_argument(
        "--device", type=cli_args.device, help="cpu, cuda, cuda:1, ... (default: cuda if available)"
    )
    cli_args.add_threads_argument(p)
