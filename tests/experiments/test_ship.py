"""`experiment shapes --ship DIR`: writes only to DIR, atomically, and refuses a folder it would
destroy. The trained folder here is a real folder of files; shipping only copies files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mqt_llava.cli import main
from mqt_llava.experiments.commands import ship_model

RESULTS = {"64": {"overall": 90.0, "colour": 99.0}}


def _trained(root: Path, weights: bytes = b"new weights") -> Path:
    """A variant's folder as a run leaves it: the model plus the trainer's bookkeeping."""
    folder = root / "run" / "matryoshka"
    (folder / "records").mkdir(parents=True)
    (folder / "connector").mkdir()
    (folder / "config.json").write_text('{"model_type": "mqt_llava"}')
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "log.jsonl").write_text("{}\n")
    (folder / "recipe.yaml").write_text("name: shapes-stage2\n")
    (folder.parent / "recipe.yaml").write_text("seed: 0\n")
    return folder


def _old_model(dest: Path, policy: bool) -> None:
    dest.mkdir(parents=True)
    (dest / "config.json").write_text('{"model_type": "mqt_llava"}')
    (dest / "model.safetensors").write_bytes(b"old weights")
    (dest / "stale.txt").write_text("only the old model had this")
    if policy:
        (dest / "budget_policy.json").write_text('{"ladder": [16, 32], "threshold": 0.43}')


def test_ship_into_a_new_folder(tmp_path: Path, capsys) -> None:
    dest = tmp_path / "out" / "model"
    assert ship_model(_trained(tmp_path), RESULTS, dest) == dest
    assert sorted(p.name for p in dest.iterdir()) == [
        "config.json",
        "model.safetensors",
        "shapes_recipe.yaml",
        "shapes_results.json",
        "train_recipe.yaml",
    ]
    assert json.loads((dest / "shapes_results.json").read_text())["results"] == RESULTS
    assert [p.name for p in dest.parent.iterdir()] == ["model"]  # no staging folder left
    assert "kept" not in capsys.readouterr().out


def test_ship_replaces_a_model_and_keeps_its_budget_policy(tmp_path: Path, capsys) -> None:
    dest = tmp_path / "default-model"
    _old_model(dest, policy=True)
    policy = (dest / "budget_policy.json").read_text()
    ship_model(_trained(tmp_path), RESULTS, dest)
    assert (dest / "model.safetensors").read_bytes() == b"new weights"
    assert not (dest / "stale.txt").exists()  # replaced, not merged
    assert (dest / "budget_policy.json").read_text() == policy
    assert "recalibrate" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["default-model", "run"]


def test_a_folder_that_became_unsafe_during_the_run_is_refused(tmp_path: Path) -> None:
    dest = tmp_path / "target"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"--ship .* holds no model"):
        ship_model(_trained(tmp_path), RESULTS, dest)
    assert (dest / "notes.txt").read_text() == "mine"


def test_a_new_models_own_policy_wins(tmp_path: Path) -> None:
    dest = tmp_path / "default-model"
    _old_model(dest, policy=True)
    trained = _trained(tmp_path)
    (trained / "budget_policy.json").write_text('{"ladder": [4, 64], "threshold": 0.9}')
    ship_model(trained, RESULTS, dest)
    assert json.loads((dest / "budget_policy.json").read_text())["ladder"] == [4, 64]


def test_a_failed_copy_leaves_the_old_model(tmp_path: Path, monkeypatch) -> None:
    import shutil

    dest = tmp_path / "default-model"
    _old_model(dest, policy=False)

    def broken_copy(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(shutil, "copy2", broken_copy)
    with pytest.raises(OSError, match="disk full"):
        ship_model(_trained(tmp_path), RESULTS, dest)
    assert (dest / "model.safetensors").read_bytes() == b"old weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["default-model", "run"]


@pytest.mark.parametrize("kind", ["file", "folder without a model"])
def test_ship_refuses_what_it_would_destroy(tmp_path: Path, kind: str, capsys) -> None:
    dest = tmp_path / "target"
    if kind == "file":
        dest.write_text("not a folder")
    else:
        dest.mkdir()
        (dest / "notes.txt").write_text("mine")
    argv = ["experiment", "shapes", "--quick", "--out", str(tmp_path / "run"), "--ship", str(dest)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("mqt-llava: error:") and "--ship" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()  # refused before anything ran
    assert dest.exists()


def test_ship_inside_the_run_folder_is_refused(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    code = main(["experiment", "shapes", "--quick", "--out", str(out), "--ship", str(out / "m")])
    assert code == 2
    err = capsys.readouterr().err
    assert "inside --out" in err and len(err.splitlines()) == 1
    assert not out.exists()
