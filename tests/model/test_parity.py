"""Parity with the original MQT-LLaVA code on the tiny fixture, after `convert_checkpoint`.

References were computed by the release's own code (see tests/data/original-tiny/README in the
shared fixtures); tolerances are the fixture's: |x - ref| <= 1e-4 + 1e-4 |ref|, tokens exact.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText, AutoProcessor

IMAGE_ID = -200  # the release's in-prompt image marker


def assert_close(actual: torch.Tensor, expected: torch.Tensor, tol: float = 1e-4) -> None:
    diff = (actual.float() - expected.float()).abs()
    bound = tol + tol * expected.float().abs()
    assert bool((diff <= bound).all()), f"max abs diff {diff.max().item():.3e}"


@pytest.fixture(scope="module")
def refs(fixture_dir):
    return load_file(fixture_dir / "refs.safetensors")


@pytest.fixture(scope="module")
def model(converted_dir):
    return AutoModelForImageTextToText.from_pretrained(converted_dir, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def processor(converted_dir):
    return AutoProcessor.from_pretrained(converted_dir)


def _case(manifest, name):
    case = next(c for c in manifest["cases"] if c["name"] == name)
    return {
        k: json.loads(v) if isinstance(v, str) and v.startswith("[") else v for k, v in case.items()
    }


def _inputs(processor, manifest, fixture_dir, case, padding_side="right"):
    prompts = [manifest["prompts"][p]["prompt"] for p in case["prompts"]]
    images = [fixture_dir / "images" / f"{i}.png" for i in case["images"]]
    return processor(
        images=images, text=prompts, num_visual_tokens=case["m"], padding_side=padding_side
    )


def test_prompt_ids_equal_the_release_tokenization(processor, manifest):
    for name, prompt in manifest["prompts"].items():
        expected = [processor.image_token_id if t == IMAGE_ID else t for t in prompt["input_ids"]]
        assert processor.tokenize_prompt(prompt["prompt"], [1]) == expected, name


def test_chat_template_renders_the_release_prompts(processor, manifest):
    single = processor.build_prompt("What is shown in this image?")
    assert single == manifest["prompts"]["single"]["prompt"]
    answered = processor.build_prompt(
        "What is shown in this image?", answer="A small picture with colored noise."
    )
    assert answered == manifest["prompts"]["with_answer"]["prompt"]


def test_pixel_values(processor, fixture_dir, refs):
    pixels = processor.preprocess_images(
        [fixture_dir / "images/img0.png", fixture_dir / "images/img1.png"]
    )
    assert_close(pixels, refs["pixel_values"])


def test_vision_features(model, refs):
    features = model.get_vision_features(refs["pixel_values"][:1])
    expected = refs["clip_features_img0"]
    assert (features - expected).abs().max() <= 1e-4 * expected.abs().max()


@pytest.mark.parametrize("m", [1, 2, 16, 64, 256])
def test_connector(model, refs, m):
    with torch.no_grad():
        out = model.connector(refs["clip_features_img0"], m)
    assert out.shape == (1, m, 64)
    assert_close(out, refs[f"resampler_m{m}"])


@pytest.mark.parametrize("name", ["single_m1", "single_m16", "single_m256", "padded_m16"])
def test_hidden_states_and_logits(model, processor, manifest, fixture_dir, refs, name):
    case = _case(manifest, name)
    inputs = _inputs(processor, manifest, fixture_dir, case)
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True)
    hidden, logits = out.hidden_states[-1], out.logits
    lm_head = model.get_output_embeddings().weight
    for row, length in enumerate(case["valid_lengths"]):
        assert int(inputs["attention_mask"][row].sum()) == length
        assert_close(hidden[row, :length], refs[f"{name}_hidden"][row, :length])
        full_ref = refs[f"{name}_hidden"][row, :length] @ lm_head.T
        assert_close(logits[row, :length], full_ref)
        positions = torch.tensor(case["logits_last_positions"][row])
        assert_close(logits[row, positions], refs[f"{name}_logits_last"][row])


def test_loss(model, processor, manifest, fixture_dir, refs):
    case = _case(manifest, "loss_m64")
    inputs = _inputs(processor, manifest, fixture_dir, case)
    labels = []  # the release's labels (pre-splice), the image position expanded to m
    for token, label in zip(case["input_ids"][0], case["labels"][0], strict=True):
        labels.extend([-100] * case["m"] if token == IMAGE_ID else [label])
    labels = torch.tensor([labels])
    assert labels.shape == inputs["input_ids"].shape
    with torch.no_grad():
        loss = model(**inputs, labels=labels).loss
    assert_close(loss.reshape(1), refs["loss_m64"])


@pytest.mark.parametrize(
    "name", ["generate_m16_b1", "generate_m16_b2", "generate_m256_b1", "generate_m256_b2"]
)
@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_tokens(model, processor, manifest, fixture_dir, name, use_cache):
    case = _case(manifest, name)
    inputs = _inputs(processor, manifest, fixture_dir, case, padding_side="left")
    with torch.no_grad():
        out = model.generate(
            **inputs, max_new_tokens=case["max_new_tokens"], do_sample=False, use_cache=use_cache
        )
    new = out[:, inputs["input_ids"].shape[1] :]
    assert new.tolist() == case["new_tokens"]


def test_converted_config_has_an_integer_default_budget(model):
    assert model.config.num_visual_tokens == 256
    assert model.config.num_queries == 256
