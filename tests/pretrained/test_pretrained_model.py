"""The MQT-LLaVA composed of the cached DINOv2 and SmolLM2 through the generic backbone path."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from transformers import AutoTokenizer, Dinov2WithRegistersConfig, LlamaConfig

from mqt_llava.inference import load
from mqt_llava.model import MQTLlavaConfig, MQTLlavaForConditionalGeneration
from mqt_llava.pretrained import build_pretrained_model
from mqt_llava.pretrained.assemble import SMOLLM2_DIR

EXAMPLE = "mqt_llava/assets/examples/example_large_and_small.png"


@pytest.fixture(scope="module")
def composed(backbones):
    return build_pretrained_model(backbones, num_queries=16)


def test_features_are_dinov2s_second_to_last_layer_without_cls(composed):
    model, processor = composed
    pixels = processor(images=[Image.open(EXAMPLE)], text="<image>")["pixel_values"]
    with torch.inference_mode():
        features = model.get_vision_features(pixels)
        hidden = model.vision_tower(pixels, output_hidden_states=True).hidden_states
    assert model.config.feature_grid == (16, 16)
    assert features.shape == (1, 256, 384)
    torch.testing.assert_close(features, hidden[-2][:, 1:])


def test_processor_uses_smollm2_chat_template_and_keeps_every_text_token(composed, backbones):
    _, processor = composed
    prompt = processor.build_prompt("What colour is the square?")
    assert prompt.startswith("<|im_start|>system\n") and "<image>\nWhat colour" in prompt
    ids = processor(images=[Image.open(EXAMPLE)], text=prompt, num_visual_tokens=4)["input_ids"]
    plain = AutoTokenizer.from_pretrained(backbones / SMOLLM2_DIR)
    before, after = prompt.split("<image>")
    expected = plain(before).input_ids + [processor.image_token_id] * 4 + plain(after).input_ids
    assert ids[0].tolist() == expected  # the "\n" after <image> and the leading <|im_start|> stay
    assert processor.image_token_id == 49152  # added after SmolLM2's 49152 tokens


def test_composed_model_generates_at_any_budget_and_keeps_smollm2s_language(composed):
    model, processor = composed
    prompt = processor.build_prompt("What is the capital of France?", num_images=0)
    inputs = processor(text=prompt)
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=10, do_sample=False)
    assert "Paris" in processor.decode(out[0, inputs["input_ids"].shape[1] :])
    image = Image.open(EXAMPLE)
    for m in (1, 16):
        inputs = processor(images=[image], text=processor.build_prompt("Hi"), num_visual_tokens=m)
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=2, do_sample=False)
        assert out.shape[1] == inputs["input_ids"].shape[1] + 2


@pytest.mark.slow
def test_composed_model_round_trips_through_the_pipeline(composed, tmp_path):
    model, processor = composed
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    vlm = load(tmp_path, device="cpu")
    assert vlm.processor.build_prompt("Hi") == processor.build_prompt("Hi")
    inputs = processor(images=[Image.open(EXAMPLE)], text=processor.build_prompt("Hi"))
    with torch.inference_mode():
        a = model(**inputs).logits
        b = vlm.model(**inputs).logits
    torch.testing.assert_close(a, b)


def test_register_tokens_are_dropped_with_cls():
    # A DINOv2-with-registers tower (random, tiny): 1 CLS + 4 registers + a 2x2 patch grid.
    vision = Dinov2WithRegistersConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        image_size=28,
        patch_size=14,
        num_register_tokens=4,
    )
    text = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=100,
    )
    config = MQTLlavaConfig(
        vision_config=vision.to_dict(),
        text_config=text.to_dict(),
        num_queries=4,
        num_heads=4,
        image_token_id=99,
        num_visual_tokens=4,
    )
    model = MQTLlavaForConditionalGeneration(config).eval()
    pixels = torch.randn(2, 3, 28, 28)
    with torch.inference_mode():
        features = model.get_vision_features(pixels)
        hidden = model.vision_tower(pixels, output_hidden_states=True).hidden_states[-2]
        tokens = model.get_image_features(pixels, 4)
    assert hidden.shape[1] == 1 + 4 + 4 and features.shape == (2, 4, 32)
    torch.testing.assert_close(features, hidden[:, 5:])
    assert tokens.shape == (2, 4, 32)
