"""The model sizes that exist, by name: one place for the shapes that FLOP counts, benchmarks and
tests build.

- `mqt-llava-7b`: the release (CLIP ViT-L/14-336, M = 256 queries with 16 heads, Vicuna-7B);
- `bench`: the ~140 M-parameter random model of `mqt-llava bench`, with roughly the 7B's
  proportions (576 patches at 336 px / patch 14, a 12-layer 768-wide Llama, M = 256);
- `bundled`: the ShapesVQA default model shipped in `mqt_llava/assets/default-model` (~3 M
  parameters, M = 64); its `config.json` is the preset, since the tokenizer fixes its ids;
- `tiny`: the test model (width 32 tower on 8 x 8 patches, width 48 Llama, M = 16), built in
  seconds on a CPU.

Only configurations live here (no weights): `MQTLlavaForConditionalGeneration(preset_config(name))`
is a random model of that size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .configuration import CLIP_L_336_VISION_KWARGS, MQTLlavaConfig

# Where an installed package keeps its bundled default model (written by the ShapesVQA recipe).
BUNDLED_MODEL_DIR = Path(__file__).resolve().parent.parent / "assets" / "default-model"

# Llama-2-7B / Vicuna-7B v1.5, the LLM of the release.
VICUNA_7B_TEXT_KWARGS: dict[str, Any] = {
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "vocab_size": 32000,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5,
}

# The benchmark model: a CLIP-like tower at 336 px / patch 14 (576 patches) whose FLOPs are ~6 %
# of the LLaVA prefill (4 % for CLIP-L + Vicuna-7B), so that the time ratios resemble the 7B's.
BENCH_VISION_KWARGS: dict[str, Any] = {
    "model_type": "clip_vision_model",
    "hidden_size": 256,
    "intermediate_size": 1024,
    "num_hidden_layers": 6,
    "num_attention_heads": 4,
    "image_size": 336,
    "patch_size": 14,
    "hidden_act": "quick_gelu",
}
BENCH_TEXT_KWARGS: dict[str, Any] = {
    "model_type": "llama",
    "hidden_size": 768,
    "intermediate_size": 2048,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "num_key_value_heads": 12,
    "vocab_size": 32000,
    "max_position_embeddings": 2048,
}

# The test model: 32 x 32 images, patch 4 -> an 8 x 8 feature grid (64 patches).
TINY_VISION_KWARGS: dict[str, Any] = {
    "model_type": "clip_vision_model",
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": 32,
    "patch_size": 4,
}
TINY_TEXT_KWARGS: dict[str, Any] = {
    "model_type": "llama",
    "hidden_size": 48,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 1000,
    "max_position_embeddings": 512,
}

PRESETS = ("mqt-llava-7b", "bench", "bundled", "tiny")


def preset_config(name: str, num_queries: int | None = None, **overrides: Any) -> MQTLlavaConfig:
    """The `MQTLlavaConfig` of a named size.

    Args:
        name: One of [`PRESETS`].
        num_queries: M (and the default budget); the preset's own when None. Not for `bundled`.
        **overrides: Other `MQTLlavaConfig` arguments (`num_heads`, `key_source`, ...), e.g.
            `preset_config("tiny", num_queries=64, key_source="content")`. Not for `bundled`.

    Raises:
        ValueError: For an unknown name, or overrides given for `bundled`.
        FileNotFoundError: For `bundled` when this install ships no default model.
    """
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; available presets: {', '.join(PRESETS)}.")
    if name == "bundled":
        if num_queries is not None or overrides:
            raise ValueError(
                "The bundled preset is the shipped model's config: it takes no overrides."
            )
        if not (BUNDLED_MODEL_DIR / "config.json").is_file():
            raise FileNotFoundError(f"No bundled default model at {BUNDLED_MODEL_DIR}.")
        return MQTLlavaConfig.from_pretrained(BUNDLED_MODEL_DIR)
    vision, text, queries, heads = {
        "mqt-llava-7b": (
            {"model_type": "clip_vision_model", **CLIP_L_336_VISION_KWARGS},
            VICUNA_7B_TEXT_KWARGS,
            256,
            16,
        ),
        "bench": (BENCH_VISION_KWARGS, BENCH_TEXT_KWARGS, 256, 4),
        "tiny": (TINY_VISION_KWARGS, TINY_TEXT_KWARGS, 16, 4),
    }[name]
    queries = num_queries if num_queries is not None else queries
    kwargs: dict[str, Any] = {
        "vision_config": dict(vision),
        "text_config": dict(text),
        "num_queries": queries,
        "num_heads": heads,
        "image_token_id": text["vocab_size"],  # the first id after the LM's vocabulary
        "num_visual_tokens": queries,
    }
    return MQTLlavaConfig(**{**kwargs, **overrides})
