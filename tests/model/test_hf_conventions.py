"""Hugging Face conventions: Auto classes on `import mqt_llava`, LlavaProcessor's arguments,
`apply_chat_template` with images, and the README's transformers snippet run as printed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoProcessor

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "mqt_llava" / "assets" / "default-model"
EXAMPLES = ROOT / "mqt_llava" / "assets" / "examples"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300
    )


def test_readme_transformers_snippet_runs_as_printed():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("The same thing with plain `transformers`:")
    code = re.search(r"```python\n(.*?)```", readme[start:], re.S).group(1)
    assert "padding=True" in code and "apply_chat_template" in code
    done = _run(code)
    assert done.returncode == 0, done.stderr[-2000:]
    answers = eval(done.stdout.strip().splitlines()[-1])  # the printed list of two answers
    assert len(answers) == 2 and answers[0].strip() == "blue"


def test_import_mqt_llava_first_stays_light_and_registers_the_auto_classes():
    # The README snippet above imports transformers first; here mqt_llava comes first.
    code = (
        "import mqt_llava, sys; light = 'torch' not in sys.modules\n"
        "from transformers import AutoModelForImageTextToText\n"
        f"model = AutoModelForImageTextToText.from_pretrained({str(BUNDLED)!r})\n"
        "print(light, type(model).__name__)\n"
    )
    done = _run(code)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["True", "MQTLlavaForConditionalGeneration"]


@pytest.fixture(scope="module")
def processor():
    return AutoProcessor.from_pretrained(BUNDLED)


def _prompts(processor):
    short = processor.build_prompt("What colour is it?")
    long = processor.build_prompt("Which shape is in the top left corner of the picture, please?")
    return [EXAMPLES / "example_large_and_small.png"] * 2, [short, long]


def test_padding_options(processor):
    images, prompts = _prompts(processor)
    longest = processor(images=images, text=prompts, num_visual_tokens=4, padding=True)
    assert torch.equal(
        longest["input_ids"],
        processor(images=images, text=prompts, num_visual_tokens=4, padding="longest")["input_ids"],
    )
    mask = longest["attention_mask"]
    assert mask.shape[1] == int(mask.sum(1).max()) and int(mask.sum(1).min()) < mask.shape[1]
    fixed = processor(
        images=images, text=prompts, num_visual_tokens=4, padding="max_length", max_length=80
    )
    assert fixed["input_ids"].shape == (2, 80)
    assert torch.equal(fixed["attention_mask"].sum(1), mask.sum(1))
    multiple = processor(images=images, text=prompts, num_visual_tokens=4, pad_to_multiple_of=16)
    assert multiple["input_ids"].shape[1] % 16 == 0
    left = processor(images=images, text=prompts, num_visual_tokens=4, padding_side="left")
    assert left["attention_mask"][0, -1] == 1 and left["attention_mask"][0, 0] == 0
    with pytest.raises(ValueError, match="different lengths and padding is off"):
        processor(images=images, text=prompts, num_visual_tokens=4, padding=False)
    lists = processor(images=images, text=prompts, padding=False, return_tensors=None)
    assert [len(x) for x in lists["input_ids"]] == mask.sum(1).add(60).tolist()  # 64 - 4 more


def test_return_tensors_truncation_and_kwargs(processor):
    images, prompts = _prompts(processor)
    as_np = processor(images=images, text=prompts, num_visual_tokens=4, return_tensors="np")
    assert isinstance(as_np["input_ids"], np.ndarray) and isinstance(
        as_np["pixel_values"], np.ndarray
    )
    styled = processor(
        images=images,
        text=prompts,
        num_visual_tokens=4,
        text_kwargs={"padding": "max_length", "max_length": 90, "return_attention_mask": False},
    )
    assert styled["input_ids"].shape == (2, 90) and "attention_mask" not in styled
    text_only = processor(text="one two three four five six", truncation=True, max_length=3)
    assert text_only["input_ids"].shape == (1, 3)
    with pytest.raises(ValueError, match="would cut visual tokens"):
        processor(images=images[:1], text=prompts[:1], truncation=True, max_length=40)
    with pytest.raises(ValueError, match="needs max_length"):
        processor(text="hi", truncation=True)
    with pytest.raises(ValueError, match="return_tensors must be"):
        processor(text="hi", return_tensors="tf")
    with pytest.raises(TypeError, match=r"Unexpected arguments: \['bogus'\]. MQTLlavaProcessor"):
        processor(text="hi", bogus=1)
    no_bos = processor(text="hi", add_special_tokens=False)["input_ids"][0].tolist()
    assert no_bos == processor(text="hi")["input_ids"][0, 1:].tolist()


def test_image_token_and_chat_template_follow_transformers(processor):
    assert processor.image_token == "<image>"
    assert processor.tokenizer.convert_tokens_to_ids("<image>") == processor.image_token_id
    assert set(processor.chat_template) >= {"default", "llava_v1", "plain"}
    image = str(EXAMPLES / "example_large_and_small.png")
    question = "What colour is the square?"
    content = [{"type": "image", "path": image}, {"type": "text", "text": question}]
    messages = [{"role": "user", "content": content}]
    rendered = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert rendered == processor.build_prompt(question)
    chat = processor.apply_chat_template(
        messages,
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        processor_kwargs={"num_visual_tokens": 16},
    )
    direct = processor(images=[image], text=rendered, num_visual_tokens=16)
    assert torch.equal(chat["input_ids"], direct["input_ids"])
    assert torch.equal(chat["pixel_values"], direct["pixel_values"])
    assert chat["num_visual_tokens"].tolist() == [16]
    plain = processor.apply_chat_template(messages, chat_template="plain")
    assert plain == "<image>" + question
