"""Tiny random MQT-LLaVA models of several backbone pairs, for tests that run in seconds.

The CLIP + Llama pair is the `tiny` preset of `mqt_llava.model.presets`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer, CLIPImageProcessorPil, SiglipImageProcessorPil

from mqt_llava.model import MQTLlavaConfig, MQTLlavaForConditionalGeneration, MQTLlavaProcessor
from mqt_llava.model.presets import TINY_TEXT_KWARGS, TINY_VISION_KWARGS

FIXTURE = Path(__file__).parent / "data" / "original-tiny"


TINY_VISION = {
    "clip": dict(TINY_VISION_KWARGS),
    "siglip": dict(
        model_type="siglip_vision_model",
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        patch_size=4,
    ),
}
TINY_TEXT = {
    "llama": dict(TINY_TEXT_KWARGS),
    "qwen2": dict(
        model_type="qwen2",
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=1000,
        max_position_embeddings=512,
        tie_word_embeddings=True,
    ),
}


def build_tiny(
    vision: str = "clip", text: str = "llama", key_source: str = "position", num_queries: int = 16
) -> tuple[MQTLlavaForConditionalGeneration, MQTLlavaProcessor]:
    """A tiny random MQT-LLaVA (feature grid 8x8 = 64 patches, M = 16 queries) and its processor."""
    tokenizer = AutoTokenizer.from_pretrained(FIXTURE / "checkpoint")
    if vision == "clip":
        image_processor = CLIPImageProcessorPil(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        )
    else:
        image_processor = SiglipImageProcessorPil(size={"height": 32, "width": 32})
    processor = MQTLlavaProcessor(
        image_processor, tokenizer, num_queries=num_queries, num_visual_tokens=num_queries
    )
    config = MQTLlavaConfig(
        vision_config=TINY_VISION[vision],
        text_config=TINY_TEXT[text],
        num_queries=num_queries,
        num_heads=4,
        vision_feature_select_strategy="default" if vision == "clip" else "full",
        image_token_id=processor.image_token_id,
        num_visual_tokens=num_queries,
        key_source=key_source,
    )
    torch.manual_seed(0)
    model = MQTLlavaForConditionalGeneration(config).eval()
    return model, processor
