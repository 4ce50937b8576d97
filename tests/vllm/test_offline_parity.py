"""Greedy tokens of `vllm.LLM` equal our `generate`, at several budgets and in one mixed batch.

Models are random (token parity needs no training) with head sizes vLLM's CPU attention runs:
32 with M=16, and the release's connector layout (width 1024, 16 heads, M=256) with 64.
"""

from __future__ import annotations

import gc

import pytest
from vllm_models import SKIP_REASON, offline_requests, save_model, vllm_installed

if not vllm_installed():
    pytest.skip(SKIP_REASON, allow_module_level=True)

import numpy as np
import torch
from PIL import Image
from vllm import LLM, SamplingParams

from mqt_llava.model import MQTLlavaForConditionalGeneration, MQTLlavaProcessor

MAX_NEW = 8
QUESTIONS = ["What is shown in this image?", "Colour?", "Is there a big square on the left?"]


def _image(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (40 + 8 * seed, 48, 3), dtype=np.uint8))


def _ours(model, processor, image, question, m) -> list[int]:
    inputs = processor(images=[image], text=processor.build_prompt(question), num_visual_tokens=m)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=MAX_NEW, do_sample=False)
    return out[0, inputs["input_ids"].shape[1] :].tolist()


@pytest.fixture(scope="module", params=["head32", "release_connector"])
def engine(request, tmp_path_factory):
    folder = save_model(request.param, tmp_path_factory.mktemp(request.param))
    model = MQTLlavaForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()
    processor = MQTLlavaProcessor.from_pretrained(folder)
    llm = LLM(model=str(folder), dtype="float32", max_model_len=1024, enforce_eager=True)
    yield llm, model, processor
    del llm
    gc.collect()


def _requests(processor, cases):
    return offline_requests(processor, QUESTIONS, _image, cases)


def test_tokens_equal_ours_at_1_16_and_M_and_in_a_mixed_batch(engine):
    llm, model, processor = engine
    M = model.config.num_queries
    greedy = SamplingParams(temperature=0, max_tokens=MAX_NEW)
    cases = [(0, 1), (0, 16), (0, M)]
    for (q, m), out in zip(cases, llm.generate(_requests(processor, cases), greedy), strict=True):
        assert list(out.outputs[0].token_ids) == _ours(model, processor, _image(q), QUESTIONS[q], m)
        # The prompt holds exactly m placeholders and our processor's ids.
        ours = processor(images=[_image(q)], text=processor.build_prompt(QUESTIONS[q]),
                         num_visual_tokens=m)["input_ids"][0].tolist()  # fmt: skip
        assert list(out.prompt_token_ids) == ours
    # One batch, three budgets (and the same image at two of them).
    mixed = [(0, M), (1, 3), (2, 16), (0, 5)]
    outs = llm.generate(_requests(processor, mixed), greedy)
    answers = [list(out.outputs[0].token_ids) for out in outs]
    for (q, m), answer in zip(mixed, answers, strict=True):
        assert answer == _ours(model, processor, _image(q), QUESTIONS[q], m)
    # The budget reaches the model: one image at two budgets, two answers.
    assert answers[0] != answers[3]


def test_default_budget_is_the_configs(engine):
    llm, model, processor = engine
    request = _requests(processor, [(1, 1)])[0]
    del request["mm_processor_kwargs"]
    out = llm.generate([request], SamplingParams(temperature=0, max_tokens=2))[0]
    n_placeholders = out.prompt_token_ids.count(model.config.image_token_id)
    assert n_placeholders == model.config.num_visual_tokens


@pytest.mark.parametrize("bad", [0, 10_000, 2.5, "8", True, [1, 2]])
def test_a_bad_budget_is_our_error(engine, bad):
    llm, _, processor = engine
    request = _requests(processor, [(0, 1)])[0]
    request["mm_processor_kwargs"] = {"num_visual_tokens": bad}
    with pytest.raises(ValueError, match="num_visual_tokens must be an integer between 1 and"):
        llm.generate([request], SamplingParams(max_tokens=1))
