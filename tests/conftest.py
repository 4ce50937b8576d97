"""Shared fixtures: the original-code parity fixture and tiny models of several backbone pairs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from tiny_models import FIXTURE, build_tiny

from mqt_llava.model import MQTLlavaForConditionalGeneration, MQTLlavaProcessor
from mqt_llava.model.convert import convert_checkpoint

# Tests never touch the network: a name that is not a local folder must not reach the hub.
os.environ["HF_HUB_OFFLINE"] = "1"

# Tiny models run fastest on one thread, and several test processes may share the cores.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    return FIXTURE


@pytest.fixture(scope="session")
def manifest() -> dict:
    return json.loads((FIXTURE / "manifest.json").read_text())


@pytest.fixture(scope="session")
def converted_dir(tmp_path_factory) -> Path:
    """The parity fixture converted once with `convert_checkpoint`."""
    out = tmp_path_factory.mktemp("converted")
    convert_checkpoint(FIXTURE / "checkpoint", out, num_heads=16)
    return out


@pytest.fixture(scope="module")
def tiny() -> tuple[MQTLlavaForConditionalGeneration, MQTLlavaProcessor]:
    return build_tiny()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """`build_tiny()` (M = 16, default budget 16, 32x32 images) saved once as a model folder.

    Every test that needs a model folder on disk shares it, so treat it as read-only.
    tests/evaluation overrides it with a sharpened connector (see its conftest).
    """
    folder = tmp_path_factory.mktemp("tiny-model")
    model, processor = build_tiny()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
