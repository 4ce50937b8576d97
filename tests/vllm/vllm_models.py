"""Tiny random MQT-LLaVA folders whose language model has a head size vLLM's CPU attention runs.

vLLM's CPU attention supports head sizes 32, 64, 80, ... only, so these differ from
`tests/tiny_models.py` (head size 12) in the text config. Weights are random with a large
initialiser range, so that greedy tokens are not decided by near-ties between logits.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tiny_models import FIXTURE
from transformers import AutoTokenizer, CLIPImageProcessorPil

from mqt_llava.model import MQTLlavaConfig, MQTLlavaForConditionalGeneration, MQTLlavaProcessor

SKIP_REASON = "vllm is not installed: the vLLM tests run in .venv-vllm (`make vllm-test`)"


def vllm_installed() -> bool:
    """Whether the real vllm is importable (this folder, on `sys.path`, is a namespace `vllm`)."""
    spec = importlib.util.find_spec("vllm")
    return spec is not None and spec.origin is not None


TEXT_BASE = dict(
    model_type="llama",
    intermediate_size=128,
    num_hidden_layers=2,
    vocab_size=1000,
    max_position_embeddings=1024,
    initializer_range=0.2,
)

# name -> (vision config, text config, connector kwargs, image side)
SPECS: dict[str, tuple[dict, dict, dict, int]] = {
    # M = 16 queries on an 8x8 patch grid; text head size 32, GQA.
    "head32": (
        dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
             image_size=32, patch_size=4),
        dict(hidden_size=64, num_attention_heads=2, num_key_value_heads=1, head_dim=32),
        dict(num_queries=16, num_heads=4, vision_feature_layer=-2),
        32,
    ),
    # The release's connector: CLIP-L/14-336 width 1024 and grid 24x24, 256 queries on 16x16,
    # 16 heads, second-to-last layer; a tiny tower (2 layers) and a head-size-64 LM.
    "release_connector": (
        dict(hidden_size=1024, intermediate_size=1024, num_hidden_layers=2,
             num_attention_heads=16, image_size=336, patch_size=14, hidden_act="quick_gelu"),
        dict(hidden_size=128, num_attention_heads=2, num_key_value_heads=2, head_dim=64),
        dict(num_queries=256, num_heads=16, vision_feature_layer=-2),
        336,
    ),
    # Head size 16, like the converted parity fixture: refused by vLLM's CPU attention.
    "head16": (
        dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
             image_size=32, patch_size=4),
        dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=4, head_dim=16),
        dict(num_queries=16, num_heads=4, vision_feature_layer=-1),
        32,
    ),
}  # fmt: skip


def build_model(name: str) -> tuple[MQTLlavaForConditionalGeneration, MQTLlavaProcessor]:
    """A random MQT-LLaVA of one of `SPECS` and its processor (the parity fixture's tokenizer)."""
    vision, text, connector, side = SPECS[name]
    tokenizer = AutoTokenizer.from_pretrained(FIXTURE / "checkpoint")
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": side}, crop_size={"height": side, "width": side}
    )
    num_queries = connector["num_queries"]
    processor = MQTLlavaProcessor(
        image_processor, tokenizer, num_queries=num_queries, num_visual_tokens=num_queries
    )
    config = MQTLlavaConfig(
        vision_config=dict(model_type="clip_vision_model", **vision),
        text_config={**TEXT_BASE, **text},
        image_token_id=processor.image_token_id,  # 1000: outside the LM's vocabulary
        num_visual_tokens=num_queries,
        **connector,
    )
    torch.manual_seed(0)
    model = MQTLlavaForConditionalGeneration(config).eval()
    return model, processor


def save_model(name: str, out: Path) -> Path:
    """Writes the model folder as `train` / `convert` would: weights, config, processor."""
    model, processor = build_model(name)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def offline_requests(
    processor: MQTLlavaProcessor,
    questions: list[str],
    image: Callable[[int], Any],
    cases: list[tuple[int, int]],
) -> list[dict[str, Any]]:
    """vLLM offline prompts for `(question index, budget)` cases: image `image(index)`, budget
    through `mm_processor_kwargs`, the prompt in the model's own template."""
    return [
        {
            "prompt": processor.build_prompt(questions[i]),
            "multi_modal_data": {"image": image(i)},
            "mm_processor_kwargs": {"num_visual_tokens": m},
        }
        for i, m in cases
    ]
