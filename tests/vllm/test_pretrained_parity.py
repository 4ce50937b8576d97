"""vLLM parity on the real-backbone model: DINOv2 ViT-S/14 + a seeded connector + SmolLM2-135M.

SmolLM2's attention has head size 64 (vLLM's CPU attention runs it), its tokenizer adds no BOS
and its prompts are ChatML. The model is composed from the folders `mqt-llava backbones` leaves
in its cache (saved with `save_pretrained`, so vLLM's venv, with transformers 5.19 and without
gguf/onnx, only reads them); CI's `make test` assembles that cache before `make vllm-test`.
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from vllm_models import SKIP_REASON, offline_requests, vllm_installed

if not vllm_installed():
    pytest.skip(SKIP_REASON, allow_module_level=True)

import torch
from PIL import Image
from vllm import LLM, SamplingParams

from mqt_llava.model import MQTLlavaForConditionalGeneration, MQTLlavaProcessor
from mqt_llava.pretrained.assemble import default_backbones_dir, read_manifest
from mqt_llava.pretrained.builder import build_pretrained_model

EXAMPLES = Path(__file__).parents[2] / "mqt_llava" / "assets" / "examples"
IMAGES = ["example_large_and_small.png", "example_four_corners.png", "example_single_small.png"]
QUESTIONS = ["What colour is the square?", "Describe the image.", "How many shapes are there?"]
M = 64
MAX_NEW = 8


def _image(i: int) -> Image.Image:
    return Image.open(EXAMPLES / IMAGES[i]).convert("RGB")


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    backbones = default_backbones_dir()
    if read_manifest(backbones) is None:
        pytest.skip(
            f"no assembled backbones in {backbones}: run `make backbones` "
            "(or `mqt-llava backbones --install`) in the main venv first"
        )
    folder = tmp_path_factory.mktemp("dinov2-smollm2")
    torch.manual_seed(0)  # the connector is fresh: seeded, so a failure reproduces
    model, processor = build_pretrained_model(backbones, num_queries=M)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    del model, processor
    # Our side reads the saved folder too, as vLLM does.
    model = MQTLlavaForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()
    processor = MQTLlavaProcessor.from_pretrained(folder)
    llm = LLM(model=str(folder), dtype="float32", max_model_len=512, enforce_eager=True)
    yield llm, model, processor
    del llm
    gc.collect()


def _our_ids(processor, i: int, m: int) -> list[int]:
    text = processor.build_prompt(QUESTIONS[i])
    return processor(images=[_image(i)], text=text, num_visual_tokens=m)["input_ids"][0].tolist()


def _ours(model, processor, i: int, m: int) -> list[int]:
    return _ours_with_logprob(model, processor, i, m)[0]


def _ours_with_logprob(model, processor, i: int, m: int) -> tuple[list[int], float]:
    """Our greedy tokens, and the log-probability of the first one."""
    inputs = processor(
        images=[_image(i)], text=processor.build_prompt(QUESTIONS[i]), num_visual_tokens=m
    )
    with torch.no_grad():
        out = model.generate(
            **inputs,
            max_new_tokens=MAX_NEW,
            do_sample=False,
            return_dict_in_generate=True,
            output_logits=True,
        )
    tokens = out.sequences[0, inputs["input_ids"].shape[1] :].tolist()
    first = torch.log_softmax(out.logits[0][0].float(), dim=-1)[tokens[0]].item()
    return tokens, first


def _requests(processor, cases):
    return offline_requests(processor, QUESTIONS, _image, cases)


def test_smollm2_prompt_is_chatml_without_bos(engine):
    _, model, processor = engine
    assert model.config.text_config.head_dim == 64
    ids = _our_ids(processor, 0, 4)
    start = processor.tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert ids[0] == start  # no BOS is added: the prompt opens with ChatML's first token
    first = ids.index(model.config.image_token_id)
    # The newline after `<image>` (our template's image part) is kept.
    assert processor.tokenizer.decode(ids[first + 4 : first + 5]) == "\n"


def test_tokens_equal_ours_at_1_16_and_M_and_in_a_mixed_batch(engine):
    llm, model, processor = engine
    greedy = SamplingParams(temperature=0, max_tokens=MAX_NEW)
    cases = [(0, 1), (0, 16), (0, M)]
    for (i, m), out in zip(cases, llm.generate(_requests(processor, cases), greedy), strict=True):
        assert list(out.prompt_token_ids) == _our_ids(processor, i, m)
        assert list(out.outputs[0].token_ids) == _ours(model, processor, i, m)
    mixed = [(0, M), (1, 3), (2, 16), (0, 5)]
    with_logprobs = SamplingParams(temperature=0, max_tokens=MAX_NEW, logprobs=0)
    firsts = []
    for (i, m), out in zip(
        mixed, llm.generate(_requests(processor, mixed), with_logprobs), strict=True
    ):
        tokens, first = _ours_with_logprob(model, processor, i, m)
        assert list(out.outputs[0].token_ids) == tokens
        firsts.append(out.outputs[0].logprobs[0][tokens[0]].logprob)
        assert firsts[-1] == pytest.approx(first, abs=1e-3)
    # The budget reaches the model: with a fresh connector SmolLM2's words barely depend on the
    # image, but one image at M and at 5 tokens gives two different first-token probabilities.
    assert abs(firsts[0] - firsts[3]) > 1e-2


def test_chat_path_renders_smollm2_template_like_ours(engine):
    """`LLM.chat` (the server's path) renders the folder's ChatML template, then our ids."""
    llm, model, processor = engine
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image_pil", "image_pil": _image(1)},
                {"type": "text", "text": QUESTIONS[1]},
            ],
        }
    ]
    out = llm.chat(
        messages,
        SamplingParams(temperature=0, max_tokens=MAX_NEW),
        mm_processor_kwargs={"num_visual_tokens": 16},
    )[0]
    assert list(out.prompt_token_ids) == _our_ids(processor, 1, 16)
    assert list(out.outputs[0].token_ids) == _ours(model, processor, 1, 16)
