"""A model whose head size vLLM's CPU attention cannot run is refused in one line, up front."""

from __future__ import annotations

import pytest
from vllm_models import SKIP_REASON, save_model, vllm_installed

if not vllm_installed():
    pytest.skip(SKIP_REASON, allow_module_level=True)

from vllm import LLM

from mqt_llava.serving.vllm.checks import UnsupportedHeadSizeError


def test_head_size_16_is_refused_with_one_line(tmp_path):
    folder = save_model("head16", tmp_path / "head16")
    with pytest.raises(Exception) as info:
        LLM(model=str(folder), dtype="float32", max_model_len=256, enforce_eager=True)
    message = str(info.value)
    assert "head size 16" in message and "supported: 32, 64" in message, message
    assert type(info.value) is UnsupportedHeadSizeError and "\n" not in message, repr(message)
