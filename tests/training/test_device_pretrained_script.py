"""scripts/device_pretrained.py: the wheels cut into parts come back whole, or not at all."""

from __future__ import annotations

import json
import os

import pytest
from script_loader import load_script

device = load_script("device_pretrained")


def _files(folder, sizes):
    folder.mkdir()
    files = []
    for i, size in enumerate(sizes):
        files.append(folder / f"w{i}.whl")
        files[-1].write_bytes(os.urandom(size))
    return files


def test_parts_join_back_into_the_same_files(tmp_path):
    files = _files(tmp_path / "wheels", [1000, 10, 2500])
    stage = tmp_path / "stage"
    stage.mkdir()
    parts = device.cut_into_parts(files, stage, part_bytes=1024)
    assert [p.stat().st_size for p in parts] == [1024, 1024, 1024, 438]
    back = device.join_parts(stage, tmp_path / "back")
    assert [p.name for p in back] == [f.name for f in files]
    assert all(b.read_bytes() == f.read_bytes() for b, f in zip(back, files, strict=True))


def test_a_missing_or_corrupt_part_is_refused_by_name(tmp_path):
    files = _files(tmp_path / "wheels", [3000])
    stage = tmp_path / "stage"
    stage.mkdir()
    parts = device.cut_into_parts(files, stage, part_bytes=1024)
    data = bytearray(parts[1].read_bytes())
    data[7] ^= 1
    parts[1].write_bytes(bytes(data))
    with pytest.raises(SystemExit, match=r"w0\.whl: SHA-256 differs"):
        device.join_parts(stage, tmp_path / "back")
    parts[1].unlink()
    with pytest.raises(SystemExit, match="parts not received yet: part-01"):
        device.join_parts(stage, tmp_path / "back")


def test_the_gpu_settings_are_recipe_keys(tiny_model_dir):
    """Every `--set` the script passes is a key the stage recipes accept."""
    from mqt_llava.pretrained.pipeline import STAGE_RECIPES
    from mqt_llava.training.config import load_recipe
    from mqt_llava.training.recipe import training_arguments

    items = device.stage_sets(device.GPU_SETS, "fixed:4")
    pairs = [items[i + 1] for i in range(0, len(items), 2)]
    for stage, recipe in STAGE_RECIPES.items():
        own = [p.removeprefix(f"{stage}.") for p in pairs if p.startswith(f"{stage}.")]
        config = load_recipe(recipe, [*own, f"model={tiny_model_dir}"], require_data=False)
        args = training_arguments(config)
        assert args.per_device_train_batch_size == 32
        assert config.resume == "auto"
    assert json.loads(pairs[-1].split("=", 1)[1]) == "fixed:4"
