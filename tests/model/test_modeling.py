"""The composite model on tiny configs: budgets, merging, generation, save/load, dtypes."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from tiny_models import build_tiny
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor

from mqt_llava.model import MQTLlavaForConditionalGeneration


def _images(n: int, seed: int = 0) -> list[Image.Image]:
    g = torch.Generator().manual_seed(seed)
    return [
        Image.fromarray((torch.rand(40 + 8 * i, 32, 3, generator=g) * 255).byte().numpy())
        for i in range(n)
    ]


@pytest.mark.parametrize("vision,text", [("clip", "llama"), ("siglip", "qwen2")])
def test_backbone_pairs_forward_loss_and_generate(vision, text):
    model, processor = build_tiny(vision, text)
    prompt = processor.build_prompt("What colour is it?", answer="red")
    inputs = processor(images=_images(1), text=prompt, num_visual_tokens=4)
    out = model(**inputs, labels=inputs["input_ids"])
    assert out.logits.shape[:2] == inputs["input_ids"].shape
    assert torch.isfinite(out.loss)
    out.loss.backward()  # gradients reach the vision tower (nothing runs under no-grad)
    assert model.vision_tower.get_input_embeddings().weight.grad is not None
    assert model.connector.query.grad is not None
    gen_inputs = processor(
        images=_images(1), text=processor.build_prompt("Hi?"), num_visual_tokens=4
    )
    generated = model.generate(**gen_inputs, max_new_tokens=3, do_sample=False)
    assert generated.shape[1] == gen_inputs["input_ids"].shape[1] + 3


@pytest.mark.parametrize("key_source", ["position", "content"])
def test_prefix_property_of_image_features(key_source):
    model, _ = build_tiny(key_source=key_source)
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        full = model.get_image_features(pixels, 16)
        for m in (1, 3, 8, 15):
            torch.testing.assert_close(model.get_image_features(pixels, m), full[:, :m])


def test_mixed_budgets_equal_each_sample_alone(tiny):
    model, processor = tiny
    images = _images(3)
    prompts = [
        processor.build_prompt(q) for q in ("What is it?", "Colour?", "Is there a big square?")
    ]
    budgets = [2, 16, 7]
    batch = processor(images=images, text=prompts, num_visual_tokens=budgets, padding_side="right")
    with torch.no_grad():
        logits = model(**batch).logits
        for i, (image, prompt, m) in enumerate(zip(images, prompts, budgets, strict=True)):
            alone = processor(images=[image], text=prompt, num_visual_tokens=m)
            length = alone["input_ids"].shape[1]
            torch.testing.assert_close(
                logits[i, :length], model(**alone).logits[0], atol=1e-5, rtol=1e-5
            )


def test_batched_left_padded_generation_equals_single(tiny):
    model, processor = tiny
    images = _images(2, seed=3)
    prompts = [
        processor.build_prompt("Describe the picture in detail."),
        processor.build_prompt("Hi"),
    ]
    batch = processor(images=images, text=prompts, num_visual_tokens=[5, 9], padding_side="left")
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=6, do_sample=False)
        for i in range(2):
            alone = processor(images=[images[i]], text=prompts[i], num_visual_tokens=[5, 9][i])
            single = model.generate(**alone, max_new_tokens=6, do_sample=False)
            assert out[i, -6:].tolist() == single[0, -6:].tolist()


def test_cached_and_uncached_generation_agree_and_image_is_encoded_once(tiny):
    model, processor = tiny
    inputs = processor(images=_images(1), text=processor.build_prompt("Q?"), num_visual_tokens=6)
    calls = []
    handle = model.vision_tower.register_forward_hook(lambda *a: calls.append(1))
    try:
        with torch.no_grad():
            cached = model.generate(**inputs, max_new_tokens=8, do_sample=False, use_cache=True)
            assert len(calls) == 1, "the vision tower must run once, never during decoding"
            uncached = model.generate(**inputs, max_new_tokens=8, do_sample=False, use_cache=False)
    finally:
        handle.remove()
    assert cached.tolist() == uncached.tolist()


def test_save_load_round_trip_is_exact(tiny, tmp_path):
    model, processor = tiny
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, MQTLlavaForConditionalGeneration)
    assert isinstance(
        AutoModelForCausalLM.from_pretrained(tmp_path), MQTLlavaForConditionalGeneration
    )
    for (name, a), (_, b) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    reloaded = AutoProcessor.from_pretrained(tmp_path)
    prompt = processor.build_prompt("Q?")
    inputs = processor(images=_images(1), text=prompt, num_visual_tokens=3)
    again = reloaded(images=_images(1), text=prompt, num_visual_tokens=3)
    assert torch.equal(inputs["input_ids"], again["input_ids"])
    assert torch.equal(inputs["pixel_values"], again["pixel_values"])
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, loaded(**again).logits)


def test_tied_embeddings_survive_save_load(tmp_path):
    model, _ = build_tiny("siglip", "qwen2")
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    model.save_pretrained(tmp_path)
    loaded = AutoModelForImageTextToText.from_pretrained(tmp_path)
    assert loaded.get_output_embeddings().weight is loaded.get_input_embeddings().weight
    assert torch.equal(loaded.get_input_embeddings().weight, model.get_input_embeddings().weight)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_load_and_run(converted_dir, fixture_dir, dtype):
    model = AutoModelForImageTextToText.from_pretrained(converted_dir, dtype=dtype).eval()
    processor = AutoProcessor.from_pretrained(converted_dir)
    assert model.language_model.dtype == dtype
    inputs = processor(
        images=[fixture_dir / "images/img0.png"],
        text=processor.build_prompt("Q?"),
        num_visual_tokens=16,
    )
    with torch.no_grad():
        out = model(**inputs)
        reference = AutoModelForImageTextToText.from_pretrained(converted_dir).eval()(**inputs)
    assert out.logits.dtype == dtype
    assert torch.isfinite(out.logits).all()
    # Half precision follows float32 closely (bf16 keeps 8 mantissa bits: looser).
    error = (out.logits.float() - reference.logits).abs().mean()
    assert error < (0.1 if dtype == torch.bfloat16 else 0.02)
    agreement = (out.logits.argmax(-1) == reference.logits.argmax(-1)).float().mean()
    assert agreement >= 0.9
    generated = model.generate(**inputs, max_new_tokens=2, do_sample=False)
    assert generated.shape[1] == inputs["input_ids"].shape[1] + 2


def test_placeholder_feature_mismatch_is_a_clear_error(tiny):
    model, processor = tiny
    inputs = processor(images=_images(1), text=processor.build_prompt("Q?"), num_visual_tokens=4)
    with pytest.raises(ValueError, match="4 image placeholder tokens but the images give 8"):
        model(**{**inputs, "num_visual_tokens": 8})
    with pytest.raises(ValueError, match="no pixel_values"):
        model(input_ids=inputs["input_ids"])


@pytest.mark.parametrize("bad", [0, 17, -1, 2.0, "8", True, [1, 2]])
def test_bad_budget_at_the_model_is_a_value_error(tiny, bad):
    model, processor = tiny
    inputs = processor(images=_images(1), text=processor.build_prompt("Q?"), num_visual_tokens=4)
    with pytest.raises(ValueError, match=r"between 1 and 16|one per image"):
        model.generate(**{**inputs, "num_visual_tokens": bad}, max_new_tokens=1)


def test_prompt_longer_than_the_context_is_a_clear_error(tiny):
    model, processor = tiny
    long_text = processor.build_prompt("word " * 600)
    processor.tokenizer.model_max_length = 10**30  # let it through the processor to the model
    inputs = processor(images=_images(1), text=long_text, num_visual_tokens=4)
    with pytest.raises(ValueError, match="takes at most 512"):
        model(**inputs)
    processor.tokenizer.model_max_length = 512
    with pytest.raises(ValueError, match="at most 512"):
        processor(images=_images(1), text=long_text, num_visual_tokens=4)


def test_text_only_input_works(tiny):
    model, processor = tiny
    inputs = processor(text="Hello there")
    assert "pixel_values" not in inputs
    with torch.no_grad():
        assert model(**inputs).logits.shape[1] == inputs["input_ids"].shape[1]


def test_precomputed_visual_tokens_sliced_from_the_largest_budget(tiny):
    """Encode once at M, slice per budget: the same logits and greedy tokens as pixel_values."""
    model, processor = tiny
    image = _images(1, seed=5)[0]
    with torch.no_grad():
        pixels = processor.preprocess_images([image])
        full = model.get_image_features(pixels, 16)  # (1, 16, D)
        for m in (1, 4, 16):
            inputs = processor(
                images=[image], text=processor.build_prompt("Q?"), num_visual_tokens=m
            )
            reference = model(**inputs).logits
            text_only = {k: inputs[k] for k in ("input_ids", "attention_mask")}
            sliced = model(**text_only, visual_tokens=full[:, :m]).logits
            torch.testing.assert_close(sliced, reference)
            generated = model.generate(**text_only, visual_tokens=full[:, :m], max_new_tokens=4)
            assert generated.tolist() == model.generate(**inputs, max_new_tokens=4).tolist()
    with pytest.raises(ValueError, match="not both"):
        model(**inputs, visual_tokens=full)


def test_forward_on_the_meta_device_infers_shapes(tiny):
    """Shape inference without weights (e.g. sizing a device map): no value-dependent checks."""
    model, processor = tiny
    with torch.device("meta"):
        meta_model = MQTLlavaForConditionalGeneration(model.config)
    prompts = [processor.build_prompt("Q?")] * 2
    inputs = processor(images=_images(2), text=prompts, num_visual_tokens=4)
    # Budgets are host-side integers; transformers' SDPA mask inspects attention_mask values,
    # so the mask is left out (all ones here anyway).
    ids, pixels = inputs["input_ids"].to("meta"), inputs["pixel_values"].to("meta")
    with torch.no_grad():
        logits = meta_model(input_ids=ids, pixel_values=pixels, num_visual_tokens=4).logits
        visual = meta_model.get_image_features(pixels, 16)
        sliced = meta_model(input_ids=ids, visual_tokens=visual[:, :4]).logits
    expected = (*ids.shape, model.config.text_config.vocab_size)
    assert logits.device.type == sliced.device.type == "meta"
    assert tuple(logits.shape) == tuple(sliced.shape) == expected


def test_labelled_columns_give_the_full_loss_and_its_gradients(tiny):
    from mqt_llava.model.modeling import labelled_columns

    model, _ = tiny
    torch.manual_seed(0)
    ids = torch.randint(5, model.config.text_config.vocab_size, (3, 12))
    labels = torch.full_like(ids, -100)
    labels[0, 9:] = ids[0, 9:]  # short answers at different places
    labels[2, 4:6] = ids[2, 4:6]
    columns = labelled_columns(labels)
    assert columns.tolist() == [3, 4, 8, 9, 10]
    full = model(input_ids=ids, labels=labels)
    some = model(input_ids=ids, labels=labels, logits_to_keep=columns)
    assert some.logits.shape[1] == 5
    torch.testing.assert_close(some.loss, full.loss)
    torch.testing.assert_close(some.logits, full.logits[:, columns])
    (grad_full,) = torch.autograd.grad(full.loss, model.language_model.lm_head.weight)
    (grad_some,) = torch.autograd.grad(some.loss, model.language_model.lm_head.weight)
    torch.testing.assert_close(grad_some, grad_full)
