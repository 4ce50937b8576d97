"""The connector's own attention: where each of the m queries pools the patch features from.

With the release's position-only keys (`key_source="position"`, SPEC §1.2) the keys are
`LN_k(pos)`, so the attention map is a fixed function of the weights — the same for every image
(and any image may be omitted). With `key_source="content"` the keys include the features and the
map depends on the image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..model import MQTLlavaForConditionalGeneration, MQTLlavaProcessor, check_num_visual_tokens
from ..model.images import ImageInput
from .grad_cam import patch_grid, to_grid


def connector_attention(
    model: MQTLlavaForConditionalGeneration,
    budgets: int | Sequence[int],
    image: ImageInput | torch.Tensor | None = None,
    processor: MQTLlavaProcessor | None = None,
    head: int | None = None,
) -> dict[int, np.ndarray]:
    """Attention maps of the connector's queries over the patch grid.

    Args:
        model: The model.
        budgets: Budget(s) m, each in [1, M].
        image: An image (path, bytes, PIL, uint8 array; needs `processor`), or (3, H, W) /
            (1, 3, H, W) pixel values. Optional for position-only keys (the map does not depend
            on it); required for `key_source="content"`.
        processor: Preprocesses `image` when it is not already pixel values.
        head: A head index for that head's map; `None` averages over heads.

    Returns:
        budget -> (m, rows, cols) float32 array; each query's map sums to 1 over the grid.

    Raises:
        ValueError: For a bad budget or head, or a content-key model without an image.
    """
    budgets = [budgets] if isinstance(budgets, (int, np.integer)) else list(budgets)
    if not budgets:
        raise ValueError("budgets is empty: give at least one num_visual_tokens value.")
    budgets = [check_num_visual_tokens(m, model.config.num_queries) for m in budgets]
    heads = model.connector.attn.num_heads
    if head is not None and (isinstance(head, bool) or not 0 <= head < heads):
        raise ValueError(f"head must be None (mean over heads) or 0..{heads - 1}, got {head!r}.")
    features = _features(model, image, processor)  # (1, N, C)
    grid = patch_grid(model)
    maps = {}
    with torch.no_grad():  # a read-out of the weights; no gradients needed here
        for m in dict.fromkeys(budgets):
            _, weights = model.connector(features, m, need_weights=True)  # (1, heads, m, N)
            weights = weights[0].float()
            chosen = weights.mean(0) if head is None else weights[head]  # (m, N)
            maps[m] = to_grid(chosen, grid).cpu().numpy().astype(np.float32)
    return maps


def _features(model, image, processor) -> torch.Tensor:
    """(1, N, C) connector input: the image's features, or zeros when keys ignore the image."""
    dtype = model.connector.query.dtype
    if image is None:
        if model.config.key_source != "position":
            raise ValueError(
                "This model's connector uses content keys (key_source='content'): its attention "
                "depends on the image, so pass an image."
            )
        rows, cols = patch_grid(model)
        width = model.config.vision_config.hidden_size
        return torch.zeros(1, rows * cols, width, dtype=dtype, device=model.device)
    if isinstance(image, torch.Tensor):
        pixels = image[None] if image.dim() == 3 else image
        if pixels.dim() != 4 or pixels.shape[0] != 1 or pixels.shape[1] != 3:
            raise ValueError(
                f"pixel values must be (3, H, W) or (1, 3, H, W), got {tuple(image.shape)}."
            )
    else:
        if processor is None:
            raise ValueError("pass the processor to preprocess the image (or pixel values).")
        pixels = processor.preprocess_images([image])
    with torch.no_grad():
        features = model.get_vision_features(pixels.to(model.device))  # (1, N, C)
    return features.to(dtype)
