"""Checks that a release checkpoint's tensors are exactly the ones its config describes.

Without them, a missing or misshapen language-model tensor converts with exit 0 and then loads
as random weights. Every tensor is compared, by name and shape, with a model built from the
converted config on the meta device (no memory); anything off is refused in one line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, PreTrainedConfig

from .query_transformer import MatryoshkaQueryTransformer
from .weights_io import TensorEntry

# Buffers that checkpoints of older transformers versions saved and today's models recompute.
IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)
CONNECTOR_KEYS = ("query", "proj", "pos_embed", "attn.in_proj_weight")


class CheckpointError(ValueError):
    """A checkpoint that cannot be converted faithfully (said in one line, before any write)."""


def _names(names: list[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return f"{shown} and {len(names) - limit} more" if len(names) > limit else shown


def check_tensors(
    expected: Mapping[str, tuple[int, ...]],
    actual: Mapping[str, TensorEntry],
    where: str,
    optional: tuple[str, ...] = (),
) -> None:
    """Refuses missing, unexpected, misshapen and non-floating tensors.

    Args:
        expected: Name -> shape, from the config.
        actual: Name -> tensor entry, from the checkpoint (same naming as `expected`).
        where: What the tensors are, for the message (e.g. "the language model").
        optional: Expected names that may be absent (e.g. a tied `lm_head.weight`).

    Raises:
        CheckpointError: On the first kind of problem found, naming the tensors.
    """
    actual = {k: v for k, v in actual.items() if not k.endswith(IGNORED_SUFFIXES)}
    missing = sorted(k for k in expected if k not in actual and k not in optional)
    if missing:
        raise CheckpointError(
            f"{where}: {len(missing)} tensor(s) that the config asks for are missing from the "
            f"checkpoint: {_names(missing)}."
        )
    unexpected = sorted(k for k in actual if k not in expected)
    if unexpected:
        raise CheckpointError(
            f"{where}: {len(unexpected)} tensor(s) in the checkpoint have no place in a model of "
            f"this config: {_names(unexpected)}."
        )
    wrong = [
        f"{k} is {list(v.shape)}, config says {list(expected[k])}"
        for k, v in sorted(actual.items())
        if tuple(v.shape) != tuple(expected[k])
    ]
    if wrong:
        raise CheckpointError(f"{where}: {len(wrong)} tensor(s) misshapen: {_names(wrong, 2)}.")
    integral = sorted(k for k, v in actual.items() if not v.dtype.is_floating_point)
    if integral:
        raise CheckpointError(
            f"{where}: {len(integral)} weight tensor(s) are not floating point: {_names(integral)}."
        )


def language_model_shapes(text_config: PreTrainedConfig) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every persistent tensor of the causal LM of `text_config`."""
    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(text_config)
    except (ValueError, TypeError, RuntimeError, ZeroDivisionError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"The release's config does not describe a language model: {message}"
        ) from None
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def connector_shapes(
    num_queries: int, vision_dim: int, output_dim: int, num_heads: int, feature_grid
) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor of the release's connector for these dimensions."""
    side = math.isqrt(num_queries)
    with torch.device("meta"):
        connector = MatryoshkaQueryTransformer(
            num_queries, (side, side), feature_grid, vision_dim, output_dim, num_heads
        )
    return {k: tuple(v.shape) for k, v in connector.state_dict().items()}


def check_connector(connector: Mapping[str, TensorEntry], num_heads: int, src: Path) -> tuple:
    """Reads M, C and D from the connector's tensors and checks them; returns `(m, c, d)`."""
    absent = [k for k in CONNECTOR_KEYS if k not in connector]
    if absent:
        raise CheckpointError(
            f"{src}: no 'model.query_abstractor.{absent[0]}' tensor; is this an MQT-LLaVA "
            "checkpoint (the connector is incomplete)?"
        )
    if len(connector["query"].shape) != 2 or len(connector["proj"].shape) != 2:
        raise CheckpointError(
            f"{src}: the connector's query and proj must be matrices, got shapes "
            f"{list(connector['query'].shape)} and {list(connector['proj'].shape)}."
        )
    m, c = connector["query"].shape
    if connector["proj"].shape[0] != c:
        raise CheckpointError(
            f"{src}: the connector's proj is {list(connector['proj'].shape)}; its first "
            f"dimension must be the query width C={c}."
        )
    if math.isqrt(m) ** 2 != m:
        raise CheckpointError(
            f"{src}: the connector has M={m} queries, not a square number (the release lays its "
            "queries on a square grid)."
        )
    check_num_heads(num_heads, c)
    return m, c, connector["proj"].shape[1]


def check_num_heads(num_heads: int, width: int) -> None:
    """`--num-heads` must be a positive divisor of the connector width C."""
    if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1:
        raise CheckpointError(f"--num-heads must be a positive integer, got {num_heads!r}.")
    if width % num_heads:
        raise CheckpointError(
            f"--num-heads {num_heads} does not divide the connector width C={width} "
            "(the release uses 16)."
        )
