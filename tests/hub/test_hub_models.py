"""Hub ids end to end, offline: a hub cache in huggingface_hub's real layout, `HF_HUB_OFFLINE=1`.

The release-layout repository is the parity fixture with its CLIP copy removed and its
`mm_vision_tower` pointing at a second cached repository (as the real release points at
`openai/clip-vit-large-patch14-336`). `mqt-llava ask --model <repo id>` converts it on the first
call and reuses the conversion on the second; the answers are the original code's greedy tokens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hub_cache import add_repo, folder_files
from huggingface_hub import scan_cache_dir
from safetensors.torch import load_file, save

RELEASE = "test-org/mqt-llava-tiny-original"
TOWER = "test-org/clip-vit-tiny"
OURS = "test-org/mqt-llava-tiny"
QUESTION = "What is shown in this image?"
SCRIPT = Path(sys.executable).parent / "mqt-llava"
CLI = [str(SCRIPT)] if SCRIPT.is_file() else [sys.executable, "-m", "mqt_llava.cli"]


@pytest.fixture(scope="module")
def hub(tmp_path_factory, fixture_dir, converted_dir):
    root = tmp_path_factory.mktemp("hf-home")
    cache = root / "hub"
    checkpoint = fixture_dir / "checkpoint"
    config = json.loads((checkpoint / "config.json").read_text())
    config["mm_vision_tower"] = TOWER
    weights = load_file(checkpoint / "model.safetensors")
    weights = {k: v for k, v in weights.items() if not k.startswith("model.vision_tower.")}
    files: dict = folder_files(checkpoint)
    files["config.json"] = json.dumps(config, indent=2).encode()
    files["model.safetensors"] = save(weights, {"format": "pt"})
    commits = {
        RELEASE: add_repo(cache, RELEASE, files),
        TOWER: add_repo(cache, TOWER, folder_files(fixture_dir / "vision_tower")),
        OURS: add_repo(cache, OURS, folder_files(converted_dir)),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "MQT_LLAVA_CACHE"))}
    env.update(HF_HOME=str(root), HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return {"root": root, "cache": cache, "env": env, "commits": commits}


def _run(hub, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args], env=hub["env"], capture_output=True, text=True, timeout=300
    )


def _ask(hub, model: str, budgets: str, image: Path) -> subprocess.CompletedProcess:
    return _run(
        hub, "ask", QUESTION, "--image", str(image), "--model", model,
        "--num-visual-tokens", budgets, "--max-new-tokens", "8", "--device", "cpu",
    )  # fmt: skip


def _references(manifest) -> dict[int, str]:
    cases = {c["name"]: c for c in manifest["cases"]}
    return {m: cases[f"generate_m{m}_b1"]["decoded"][0].strip() for m in (16, 256)}


def _table(stdout: str) -> dict[int, str]:
    rows = [line.split(maxsplit=2) for line in stdout.splitlines()[1:] if line.strip()]
    return {int(row[0]): row[2].strip() for row in rows}


def test_the_cache_is_huggingface_hubs_own_layout(hub):
    info = scan_cache_dir(hub["cache"])
    assert not info.warnings
    assert {repo.repo_id for repo in info.repos} == {RELEASE, TOWER, OURS}


def test_ask_converts_a_release_repo_once_then_reuses_it(hub, manifest, fixture_dir):
    image = fixture_dir / "images" / "img0.png"
    expected = _references(manifest)
    first = _ask(hub, RELEASE, "16", image)
    assert first.returncode == 0, first.stderr
    assert "Converting test-org/mqt-llava-tiny-original@" in first.stderr
    answer = first.stdout.splitlines()[0].split("] ", 1)[1].strip()
    assert answer == expected[16]
    commit = hub["commits"][RELEASE]
    converted = hub["root"] / "mqt_llava" / "converted" / f"models--{RELEASE.replace('/', '--')}"
    assert (converted / commit / "config.json").is_file()
    stamp = (converted / commit / "model.safetensors").stat().st_mtime_ns

    second = _ask(hub, RELEASE, "16,256", image)
    assert second.returncode == 0, second.stderr
    notices = [line for line in second.stderr.splitlines() if line.strip()]
    assert notices == [
        f"Using {RELEASE}@{commit[:12]} converted earlier, cached in {converted / commit}."
    ]
    assert _table(second.stdout) == expected
    assert (converted / commit / "model.safetensors").stat().st_mtime_ns == stamp


@pytest.fixture
def offline(hub, monkeypatch):
    """The same offline hub cache in this process (huggingface_hub reads its constants per call)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub["cache"]))
    monkeypatch.setattr(constants, "HF_HOME", str(hub["root"]))
    monkeypatch.delenv("MQT_LLAVA_CACHE", raising=False)
    return hub


def _main(capsys, *args: str) -> tuple[int, str, str]:
    from mqt_llava.cli import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_repo_in_our_format_loads_directly(offline, manifest, fixture_dir, capsys):
    image = str(fixture_dir / "images" / "img0.png")
    code, out, err = _main(
        capsys, "ask", QUESTION, "--image", image, "--model", OURS,
        "--num-visual-tokens", "16,256", "--max-new-tokens", "8", "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    assert "onvert" not in err
    assert _table(out) == _references(manifest)


def test_convert_takes_a_hub_id(offline, tmp_path, capsys):
    code, out, err = _main(capsys, "convert", RELEASE, str(tmp_path / "out"))
    assert code == 0, err
    assert f"vision tower weights: {offline['cache']}" in out  # the tower's own cached repo
    card = (tmp_path / "out" / "README.md").read_text()
    assert f"base_model: {RELEASE}" in card
    assert f"{RELEASE}@{offline['commits'][RELEASE]}" in card


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("test-org/not-cached", "not in the local hub cache, and downloading is off"),
        ("/nonexistent/model", "is not a model folder (no such folder)"),
        ("./relative/missing", "is not a model folder (no such folder)"),
    ],
)
def test_unknown_models_are_one_line_errors(offline, fixture_dir, capsys, model, message):
    image = str(fixture_dir / "images" / "img0.png")
    code, _, err = _main(capsys, "ask", "Hi?", "--image", image, "--model", model)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mqt-llava: error: ") and message in lines[0]


def test_load_of_a_missing_folder_says_so(offline):
    import mqt_llava

    with pytest.raises(FileNotFoundError, match="/nonexistent is not a model folder"):
        mqt_llava.load("/nonexistent")


def test_a_local_release_folder_is_pointed_at_convert(offline, fixture_dir):
    import mqt_llava

    with pytest.raises(ValueError, match="convert it once with `mqt-llava convert"):
        mqt_llava.load(fixture_dir / "checkpoint")
