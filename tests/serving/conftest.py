"""Serving fixtures: the shared tiny model folder (tests/conftest.py) loaded once (helpers:
serving_helpers.py)."""

from __future__ import annotations

import pytest
import torch

import mqt_llava


@pytest.fixture(scope="session")
def tiny_vlm(tiny_model_dir):
    return mqt_llava.load(tiny_model_dir, device="cpu")


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared; the tiny model gains nothing from threads
    yield
    torch.set_num_threads(threads)
