"""Loading options users expect: dtype, device / `device_map="auto"`, 8-bit and 4-bit weights.

The CLI's `--dtype`, `--device`, `--load-8bit` and `--load-4bit` (as in the original LLaVA) map
onto `from_pretrained` arguments here. Quantization goes through `transformers`' bitsandbytes
integration; the vision tower, the connector and the LM head are never quantized (the original
code also leaves its projector and tower unquantized), and the connector is kept in float32.
"""

from __future__ import annotations

import argparse
import contextvars
import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

DTYPE_NAMES = {
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp16": "float16",
    "float16": "float16",
    "half": "float16",
    "fp32": "float32",
    "float32": "float32",
    "auto": "auto",
}
NOT_QUANTIZED = ["vision_tower", "connector", "lm_head"]


@dataclass(frozen=True)
class LoadOptions:
    """How to load a model. `None` fields keep the defaults (CUDA if present, bf16 there)."""

    dtype: str | None = None
    device: str | None = None
    load_in_8bit: bool = False
    load_in_4bit: bool = False
    revision: str | None = None


# Set by the CLI for the duration of one command, so that every subcommand's `load()` honours
# `--dtype` / `--load-4bit` without each command threading them through its own signature.
_CLI_OPTIONS: contextvars.ContextVar[LoadOptions | None] = contextvars.ContextVar(
    "mqt_llava_load_options", default=None
)


def current_options() -> LoadOptions:
    """The options of the running CLI command (all defaults outside one)."""
    return _CLI_OPTIONS.get() or LoadOptions()


@contextmanager
def cli_load_options(args: argparse.Namespace) -> Iterator[None]:
    """Makes a parsed command's loading flags the defaults of `mqt_llava.load` while it runs."""
    options = LoadOptions(
        dtype=getattr(args, "dtype", None),
        load_in_8bit=bool(getattr(args, "load_8bit", False)),
        load_in_4bit=bool(getattr(args, "load_4bit", False)),
        revision=getattr(args, "revision", None),
    )
    token = _CLI_OPTIONS.set(options)
    try:
        yield
    finally:
        _CLI_OPTIONS.reset(token)


def parse_dtype(name: Any):
    """`bf16`/`fp16`/`fp32` (or their torch names, a torch dtype, `auto`) -> a torch dtype / "auto".

    Raises:
        ValueError: For anything else.
    """
    import torch

    if name is None or isinstance(name, torch.dtype):
        return name
    key = DTYPE_NAMES.get(str(name).lower().removeprefix("torch."))
    if key is None:
        raise ValueError(f"dtype must be one of bf16, fp16, fp32 or auto, got {name!r}.")
    return key if key == "auto" else getattr(torch, key)


def model_kwargs(
    device: str | None = None,
    dtype: Any = None,
    load_in_8bit: bool = False,
    load_in_4bit: bool = False,
) -> tuple[dict[str, Any], Any]:
    """`from_pretrained` keyword arguments, and the device to move to afterwards (or None).

    Args:
        device: `cpu`, `cuda`, `cuda:1`, ..., or `auto` (`device_map="auto"`: accelerate places
            the layers over the GPUs, then CPU memory). Default: CUDA when available.
        dtype: See [`parse_dtype`]; default bfloat16 on CUDA, float32 on CPU.
        load_in_8bit: Weights of the language model's linear layers in 8 bits (bitsandbytes).
        load_in_4bit: ... in 4 bits (NF4, double quantization, compute in `dtype`).

    Raises:
        ValueError: One line for an option this machine or install cannot run.
    """
    import torch

    dtype = parse_dtype(dtype)
    if load_in_8bit and load_in_4bit:
        raise ValueError("Pass --load-8bit or --load-4bit, not both.")
    cuda = torch.cuda.is_available()
    if device is not None and device != "auto":
        try:
            kind = torch.device(device).type
        except (RuntimeError, TypeError):
            raise ValueError(
                f"--device must be cpu, cuda, cuda:N or auto, got {device!r}."
            ) from None
        if kind == "cuda" and not cuda:
            raise ValueError(
                f"--device {device}: this machine has no CUDA GPU (torch {torch.__version__}); "
                "use --device cpu."
            )
    quantized = load_in_8bit or load_in_4bit
    if quantized:
        check_quantization("--load-8bit" if load_in_8bit else "--load-4bit", device)
    if device == "auto" and importlib.util.find_spec("accelerate") is None:
        raise ValueError("--device auto needs accelerate: pip install accelerate.")
    target = device or ("cuda" if cuda else "cpu")
    on_gpu = (target == "auto" and cuda) or target.startswith("cuda")
    if dtype is None:
        dtype = torch.bfloat16 if on_gpu else torch.float32
    kwargs: dict[str, Any] = {"dtype": dtype}
    move_to = None
    if quantized:
        from transformers import BitsAndBytesConfig

        compute = dtype if isinstance(dtype, torch.dtype) else torch.bfloat16
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_8bit=load_in_8bit,
            load_in_4bit=load_in_4bit,
            bnb_4bit_compute_dtype=compute,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            llm_int8_skip_modules=NOT_QUANTIZED,
        )
        kwargs["device_map"] = (
            "auto" if device == "auto" else {"": device or ("cuda" if cuda else "cpu")}
        )
    elif device == "auto":
        kwargs["device_map"] = "auto"
    else:
        move_to = (
            torch.device(device) if device is not None else torch.device("cuda" if cuda else "cpu")
        )
    return kwargs, move_to


def check_quantization(flag: str, device: str | None) -> None:
    """Refuses 8-/4-bit loading, in one line, where this install or machine cannot run it.

    bitsandbytes runs on NVIDIA GPUs and, from its multi-backend releases (0.49+), on CPUs.
    """
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ValueError(
            f"{flag} needs bitsandbytes: pip install 'mqt-llava[quant]' (or bitsandbytes)."
        )
    import bitsandbytes
    import torch

    supported = set(getattr(bitsandbytes, "supported_torch_devices", ()) or ())
    wanted = "cuda" if device in (None, "auto") and torch.cuda.is_available() else None
    wanted = wanted or (torch.device(device).type if device not in (None, "auto") else "cpu")
    if wanted not in supported:
        where = "an NVIDIA GPU" if "cuda" in supported or not supported else "a supported device"
        raise ValueError(
            f"{flag}: bitsandbytes {bitsandbytes.__version__} cannot run on {wanted} here "
            f"(it supports {', '.join(sorted(supported)) or 'no device of this machine'}); "
            f"it needs {where}. Load without {flag}, e.g. with --dtype bf16."
        )


def merge(options: LoadOptions, **explicit: Any) -> LoadOptions:
    """`options` with the explicitly given (non-None / True) values on top."""
    given = {k: v for k, v in explicit.items() if v is not None and v is not False}
    return replace(options, **given)


def bitsandbytes_available() -> bool:
    return importlib.util.find_spec("bitsandbytes") is not None
