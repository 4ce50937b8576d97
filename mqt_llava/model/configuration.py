"""Configuration of MQT-LLaVA and the one place where a visual-token budget is validated."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, Literal

import torch
from huggingface_hub.dataclasses import strict
from transformers import CONFIG_MAPPING, AutoConfig, PreTrainedConfig

try:  # transformers >= 5.20 builds sub-configs from declared defaults
    from transformers.configuration_utils import SubConfigSpec
except ImportError:  # transformers 5.16-5.19 (vLLM's pin): built in __post_init__ instead
    SubConfigSpec = None

# CLIP ViT-L/14-336, the vision tower of the released checkpoint.
CLIP_L_336_VISION_KWARGS: dict[str, Any] = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 336,
    "patch_size": 14,
    "projection_dim": 768,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
}


@strict
class MQTLlavaConfig(PreTrainedConfig):
    r"""Configuration of [`MQTLlavaForConditionalGeneration`].

    A vision backbone, a Matryoshka Query Transformer connector and a causal language model. The
    defaults describe the released MQT-LLaVA-7B (CLIP ViT-L/14-336, 256 queries, Llama/Vicuna-7B).

    Args:
        vision_config: Config of any Hugging Face vision backbone (`CLIPVisionConfig`,
            `SiglipVisionConfig`, ...), or a dict with its `model_type`.
        text_config: Config of any causal LM (`LlamaConfig`, `Qwen2Config`, ...), or a dict.
        num_queries: M, the number of learned queries, i.e. the largest budget.
        query_grid: `(rows, cols)` of the 2-D grid on which the queries' sin-cos positions are laid
            out; `rows * cols == num_queries`. Defaults to the square grid.
        num_heads: Heads of the connector's cross-attention (16 in the release).
        vision_feature_layer: Hidden-state index of the vision tower fed to the connector (-2 in
            the release: the second-to-last encoder layer, no post-layernorm).
        vision_feature_select_strategy: `"default"` drops the first token (CLIP's or DINOv2's
            CLS) and any register tokens after it (`vision_config.num_register_tokens`), `"full"`
            keeps all tokens (backbones without CLS, such as SigLIP).
        image_token_id: Id of the `<image>` placeholder. It may lie outside the LM's vocabulary:
            placeholder positions are never embedded by the LM.
        num_visual_tokens: Default budget m (an integer in [1, num_queries]) used when a call passes
            none. Never random: randomness in m belongs to the training sampler only.
        key_source: `"position"` (the release): attention keys are the interpolated positions only,
            so the attention map is the same for every image. `"content"`: keys are image features
            plus positions, an extension for new training runs.
        connector_layer_norm_eps: Epsilon of the connector's three LayerNorms (1e-6 in the release).
        tie_word_embeddings: Mirrors the text config's flag.
    """

    model_type = "mqt_llava"
    if SubConfigSpec is not None:
        sub_configs_defaults = {
            "vision_config": SubConfigSpec(
                config_class=AutoConfig,
                model_type="clip_vision_model",
                init_kwargs=CLIP_L_336_VISION_KWARGS,
            ),
            "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama"),
        }
    else:
        sub_configs = {"vision_config": AutoConfig, "text_config": AutoConfig}

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    num_queries: int = 256
    query_grid: list[int] | tuple[int, int] | None = None
    num_heads: int = 16
    vision_feature_layer: int = -2
    vision_feature_select_strategy: Literal["default", "full"] = "default"
    image_token_id: int = 32000
    num_visual_tokens: int = 256
    key_source: Literal["position", "content"] = "position"
    connector_layer_norm_eps: float = 1e-6
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        if SubConfigSpec is None:
            self.vision_config = _sub_config(
                self.vision_config, "clip_vision_model", CLIP_L_336_VISION_KWARGS
            )
            self.text_config = _sub_config(self.text_config, "llama", {})
        super().__post_init__(**kwargs)
        if self.query_grid is None:
            side = math.isqrt(self.num_queries)
            if side * side != self.num_queries:
                raise ValueError(
                    f"num_queries={self.num_queries} is not a perfect square: pass "
                    "query_grid=(rows, cols) with rows * cols == num_queries."
                )
            self.query_grid = [side, side]
        self.query_grid = [int(v) for v in self.query_grid]
        if not self.tie_word_embeddings and getattr(self.text_config, "tie_word_embeddings", False):
            self.tie_word_embeddings = True

    def validate_architecture(self) -> None:
        """Checks that the connector's dimensions fit together (called by `@strict`)."""
        rows, cols = self.query_grid
        if rows * cols != self.num_queries:
            raise ValueError(
                f"query_grid {rows}x{cols} does not hold num_queries={self.num_queries}."
            )
        width = self.vision_config.hidden_size
        if width % self.num_heads:
            raise ValueError(
                f"The vision width {width} must be divisible by num_heads={self.num_heads}."
            )
        if width % 4:
            raise ValueError(
                f"The 2-D sin-cos table needs a vision width divisible by 4, got {width}."
            )
        check_num_visual_tokens(
            self.num_visual_tokens, self.num_queries, name="config.num_visual_tokens"
        )

    @property
    def feature_grid(self) -> tuple[int, int]:
        """`(rows, cols)` of the vision tower's patch grid, i.e. of the connector's keys."""
        side = self.vision_config.image_size // self.vision_config.patch_size
        return side, side


def _sub_config(value: Any, model_type: str, defaults: dict[str, Any]) -> PreTrainedConfig:
    """A sub-config from a dict or `None` (the default), for transformers < 5.20."""
    if isinstance(value, PreTrainedConfig):
        return value
    if value is None:
        return CONFIG_MAPPING[model_type](**defaults)
    value = dict(value)
    return CONFIG_MAPPING[value.pop("model_type", model_type)](**value)


def check_num_visual_tokens(value: Any, max_tokens: int, name: str = "num_visual_tokens") -> int:
    """Validates one budget: an integer m with 1 <= m <= max_tokens.

    Args:
        value: The candidate budget. Python and NumPy integers and 0-d integer tensors are accepted;
            bools, floats (even 16.0), strings and everything else are refused.
        max_tokens: M, the number of queries of the connector.
        name: How the value is called in the error message.

    Returns:
        The budget as a Python `int`.

    Raises:
        ValueError: If `value` is not an integer in [1, max_tokens].
    """
    if isinstance(value, torch.Tensor) and value.ndim == 0 and not value.is_floating_point():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(
            f"{name} must be an integer between 1 and {max_tokens}, got {value!r} "
            f"({type(value).__name__})."
        )
    if not 1 <= int(value) <= max_tokens:
        raise ValueError(f"{name} must be an integer between 1 and {max_tokens}, got {int(value)}.")
    return int(value)


def resolve_num_visual_tokens(
    value: Any, num_images: int, max_tokens: int, default: int
) -> list[int]:
    """Turns a budget argument into one validated budget per image.

    Args:
        value: `None` (use `default`), one integer for every image, or a sequence / 1-D tensor
            with one integer per image (a batch may mix budgets).
        num_images: Number of images in the batch.
        max_tokens: M, the number of queries of the connector.
        default: The config's default budget.

    Returns:
        A list of `num_images` budgets.

    Raises:
        ValueError: For an invalid budget or a sequence whose length is not `num_images`.
    """
    if value is None:
        value = default
    if isinstance(value, torch.Tensor) and value.ndim == 1:
        value = value.tolist()
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        if len(value) != num_images:
            raise ValueError(
                f"num_visual_tokens has {len(value)} entries but there are {num_images} images: "
                "pass one integer for all images or one per image."
            )
        return [check_num_visual_tokens(v, max_tokens) for v in value]
    return [check_num_visual_tokens(value, max_tokens)] * num_images
