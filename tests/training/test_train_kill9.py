"""A real `kill -9` of a training run at a random moment, then `resume=auto`: the steps after
the checkpoint it resumes from have exactly the uninterrupted run's losses, and the final
export is complete."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_resume import _config, _overrides

from mqt_llava.training.recipe import train
from mqt_llava.training.trainer import latest_checkpoint

STEPS = 8
SAVE_EVERY = 2
SETTINGS = {"training.max_steps": STEPS, "training.save_steps": SAVE_EVERY}
SCRIPT = textwrap.dedent(
    """
    import sys
    import torch
    torch.set_num_threads(1)
    from mqt_llava.training.config import load_recipe
    from mqt_llava.training.recipe import train
    train(load_recipe(sys.argv[1], sys.argv[2:]))
    """
)


def test_killed_at_a_random_moment_then_resumed(tmp_path, tiny_dir, records_dir):
    full = train(_config(tmp_path / "full", tiny_dir, records_dir, **SETTINGS))
    out = tmp_path / "killed"
    recipe = tmp_path / "killed.yaml"
    recipe.write_text("name: resume-test\n")
    args = _overrides(out, tiny_dir, records_dir, **SETTINGS)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(recipe), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    delay = random.uniform(0.0, 1.5)  # after the first checkpoint, anywhere up to the last two
    try:
        deadline = time.monotonic() + 240
        while latest_checkpoint(out) is None and proc.poll() is None:
            assert time.monotonic() < deadline, "training never wrote a checkpoint"
            time.sleep(0.01)
        kill_at = time.monotonic() + delay
        while time.monotonic() < kill_at and _step(latest_checkpoint(out)) < STEPS - SAVE_EVERY:
            time.sleep(0.01)  # ...but always before the run ends: there must be steps to compare
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(60)
    step = _step(latest_checkpoint(out))
    assert step < STEPS
    note = f"killed {delay:.2f} s after the first checkpoint, resumed from step {step}"

    resumed = train(_config(out, tiny_dir, records_dir, resume="auto", **SETTINGS))
    later = [e for e in resumed.log_history if "loss" in e and e["step"] > step]
    assert [e["step"] for e in later] == list(range(step + 1, STEPS + 1)), note
    by_step = {e["step"]: e for e in full.log_history if "loss" in e}
    for entry in later:
        want = by_step[entry["step"]]
        assert entry["num_visual_tokens"] == want["num_visual_tokens"], note
        assert entry["loss"] == pytest.approx(want["loss"], abs=1e-6), note
    assert json.loads((out / "config.json").read_text())  # the export is complete
    assert (out / "model.safetensors").is_file() and (out / "connector").is_dir()
    assert not (out / ".staging-export").exists()


def _step(checkpoint: Path | None) -> int:
    return int(checkpoint.name.rsplit("-", 1)[1]) if checkpoint is not None else 0


def test_a_leftover_export_staging_folder_is_replaced(tmp_path, tiny_dir, records_dir):
    out = tmp_path / "run"
    stale = out / ".staging-export"
    stale.mkdir(parents=True)
    (stale / "config.json").write_text("{half written")  # a run killed while exporting
    config = _config(out, tiny_dir, records_dir, **{"training.max_steps": 1})
    train(config)
    assert not stale.exists()
    assert json.loads((out / "config.json").read_text())["model_type"]
    assert Path(out / "connector" / "connector_config.json").is_file()


def test_a_torn_jsonl_line_is_skipped_and_training_runs(tmp_path, tiny_dir, records_dir):
    records = json.loads((records_dir / "train.json").read_text())
    lines = [json.dumps(r) for r in records]
    lines.insert(5, '{"id": "torn", "conversations": [{"from": "hum')  # a write cut short
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(lines) + "\n")
    config = _config(tmp_path / "run", tiny_dir, records_dir, **{
        "training.max_steps": 2, "data.train_json": data, "data.bad_records": "skip"})  # fmt: skip
    result = train(config)
    assert result.global_step == 2 and len(result.losses) == 2
    assert list(result.skipped_at_load) == ["train.jsonl:6"]  # the file's own line number
