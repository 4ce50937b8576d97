"""The shared-prefix loss: the prompt that every row of a batch starts with runs once.

In the `llava_v1` template every sample starts with the same system prompt (33 tokens of ≈ 140 in
the ShapesVQA stage 2). With the recipe option `shared_prefix_loss: true`, the trainer runs that
prefix once, as a batch of one, repeats its key/value cache for every row and runs the rest of
the batch on top. The prefix carries no labels, so the loss and the gradients are those of the
whole batch (equal to float rounding, tested), for less compute.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache


def shared_prefix_length(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, stop_id: int
) -> int:
    """Length of the token prefix that every row shares, ending before the first `stop_id`.

    Args:
        input_ids: (B, L) right-padded ids.
        attention_mask: (B, L) 1 on real tokens.
        stop_id: The image placeholder id: the prefix ends before the first image.

    Returns:
        The number of leading columns in which all rows hold the same real token.
    """
    same = (input_ids == input_ids[:1]).all(dim=0) & attention_mask.bool().all(dim=0)
    same &= input_ids[0] != stop_id
    differs = (~same).nonzero()
    return int(differs[0]) if len(differs) else input_ids.shape[1]


def with_prefix_cache(
    language_model: torch.nn.Module, inputs: dict[str, Any], prefix: int
) -> dict[str, Any]:
    """The batch with its first `prefix` columns replaced by a key/value cache computed once.

    Args:
        language_model: The causal LM (its `.model` is the decoder that fills the cache).
        inputs: `input_ids`, `attention_mask`, `labels` (B, L) and any image inputs.
        prefix: Shared columns (from [`shared_prefix_length`]); the prefix holds no labels.

    Returns:
        New inputs: `input_ids` / `labels` from column `prefix` on, the full `attention_mask`
        (the cached prefix is attended to), `position_ids` from `prefix` and the `cache`.
    """
    input_ids, labels = inputs["input_ids"], inputs.get("labels")
    if labels is not None and bool((labels[:, :prefix] != -100).any()):
        raise ValueError("shared_prefix_loss: the shared prefix holds labels; it must not.")
    rows, length = input_ids.shape
    cache = DynamicCache(config=language_model.config)
    language_model.model(input_ids=input_ids[:1, :prefix], cache=cache, use_cache=True)
    cache.batch_repeat_interleave(rows)  # (1, ...) -> (B, ...), still in the autograd graph
    out = dict(inputs)
    out["input_ids"] = input_ids[:, prefix:]
    if labels is not None:
        out["labels"] = labels[:, prefix:]
    positions = torch.arange(prefix, length, device=input_ids.device)
    out["position_ids"] = positions[None].expand(rows, -1)
    out["cache"] = cache
    return out
