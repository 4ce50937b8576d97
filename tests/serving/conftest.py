"""Serving fixtures: a tiny model saved to disk and loaded once (helpers: serving_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_models import build_tiny

import mqt_llava


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random model (M=16, default budget 16, 32x32 images) saved as a model folder."""
    folder = tmp_path_factory.mktemp("serving-model")
    model, processor = build_tiny()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_vlm(tiny_model_dir):
    return mqt_llava.load(tiny_model_dir, device="cpu")


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared; the tiny model gains nothing from threads
    yield
    torch.set_num_threads(threads)
