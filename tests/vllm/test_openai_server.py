"""vLLM's OpenAI server on loopback serves our model folder: a streamed chat completion with a
data-URI image and a per-request budget answers what our `generate` answers; a bad budget is a
400 with our message."""

from __future__ import annotations

import base64
import io
import os
import socket
import subprocess
import sys
import time

import pytest
from vllm_models import SKIP_REASON, save_model, vllm_installed

if not vllm_installed():
    pytest.skip(SKIP_REASON, allow_module_level=True)

import httpx
import numpy as np
import openai
import torch
from PIL import Image

from mqt_llava.model import MQTLlavaForConditionalGeneration, MQTLlavaProcessor

QUESTION = "What is shown in this image?"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = save_model("head32", tmp_path_factory.mktemp("served") / "tiny-mqt")
    port = _free_port()
    log = tmp_path_factory.mktemp("log") / "server.log"
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder),
            "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
            "--max-model-len", "512", "--enforce-eager", "--trust-request-mm-kwargs",
            "--chat-template", str(folder / "chat_template.jinja")]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"vLLM's server did not start:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(1)
    yield url, folder
    proc.terminate()
    proc.wait(timeout=60)


def _image_uri() -> tuple[Image.Image, str]:
    pixels = np.random.default_rng(7).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return image, "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _messages(uri: str) -> list[dict]:
    return [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": uri}},
        {"type": "text", "text": QUESTION}]}]  # fmt: skip


def test_streamed_chat_with_a_budget_equals_our_generate(server):
    url, folder = server
    image, uri = _image_uri()
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="none")
    stream = client.chat.completions.create(
        model=str(folder),
        messages=_messages(uri),
        max_tokens=8,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"mm_processor_kwargs": {"num_visual_tokens": 4}},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    usage = chunks[-1].usage

    model = MQTLlavaForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()
    processor = MQTLlavaProcessor.from_pretrained(folder)
    inputs = processor(images=[image], text=processor.build_prompt(QUESTION), num_visual_tokens=4)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1] :]
    assert len(chunks) > 2  # streamed, not one piece
    assert usage.prompt_tokens == inputs["input_ids"].shape[1]  # same ids, 4 visual tokens
    assert usage.completion_tokens == len(new)
    assert text == processor.decode(new, skip_special_tokens=True)


@pytest.mark.parametrize("bad", [0, 17, 2.5])
def test_a_bad_budget_is_a_400_with_our_message(server, bad):
    url, folder = server
    _, uri = _image_uri()
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=str(folder),
            messages=_messages(uri),
            max_tokens=2,
            extra_body={"mm_processor_kwargs": {"num_visual_tokens": bad}},
        )
    assert info.value.status_code == 400
    assert "num_visual_tokens must be an integer between 1 and 16" in str(info.value)
