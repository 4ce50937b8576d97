"""Resume gives the uninterrupted run's losses; a save killed midway never looks complete."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from transformers import TrainerCallback

from mqt_llava.training import recipe as recipe_module
from mqt_llava.training.config import load_recipe
from mqt_llava.training.recipe import resolve_resume, train
from mqt_llava.training.trainer import STAGING_DIR, latest_checkpoint

STEPS = 6


def _overrides(out: Path, tiny_dir: Path, records_dir: Path, **overrides) -> list[str]:
    return [
        f"model={tiny_dir}",
        f"output_dir={out}",
        f"data.train_json={records_dir / 'train.json'}",
        f"data.image_folder={records_dir / 'images'}",
        "data.group_by_modality_length=true",
        "train_modules=[connector, language_model]",
        "budget.policy=uniform-even",
        f"training.max_steps={STEPS}",
        "training.per_device_train_batch_size=2",
        "training.gradient_accumulation_steps=2",
        "training.learning_rate=3e-3",
        "training.save_steps=3",
        "training.disable_tqdm=true",
        *(f"{k}={v}" for k, v in overrides.items()),
    ]


def _config(out: Path, tiny_dir: Path, records_dir: Path, **overrides):
    values = _overrides(out, tiny_dir, records_dir, **overrides)
    path = out.parent / f"{out.name}.yaml"
    path.write_text("name: resume-test\n")
    return load_recipe(path, values)


class StopAt(TrainerCallback):
    """Interrupts training right after step k (its checkpoint is written first)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True
        return control


def test_resumed_run_matches_the_uninterrupted_one(tmp_path, tiny_dir, records_dir, monkeypatch):
    full = train(_config(tmp_path / "full", tiny_dir, records_dir))
    assert len(full.losses) == STEPS

    original = recipe_module.MQTTrainer.__init__

    def with_stop(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.add_callback(StopAt(3))

    monkeypatch.setattr(recipe_module.MQTTrainer, "__init__", with_stop)
    first = train(_config(tmp_path / "split", tiny_dir, records_dir))
    monkeypatch.setattr(recipe_module.MQTTrainer, "__init__", original)
    assert first.global_step == 3
    assert latest_checkpoint(tmp_path / "split").name == "checkpoint-3"
    second = train(_config(tmp_path / "split", tiny_dir, records_dir, resume="auto"))

    resumed = [e for e in second.log_history if "loss" in e and e["step"] > 3]
    assert [e["step"] for e in resumed] == [4, 5, 6]
    assert [m for s, m in second.budgets] == [m for s, m in full.budgets][3:]
    for got, want in zip(resumed, full.log_history[3:6], strict=True):
        assert got["num_visual_tokens"] == want["num_visual_tokens"]
        assert got["loss"] == pytest.approx(want["loss"], abs=1e-6)
        assert got["learning_rate"] == pytest.approx(want["learning_rate"], rel=1e-9)


def test_refuses_to_overwrite_or_to_resume_from_an_incomplete_folder(tmp_path):
    (tmp_path / "checkpoint-5").mkdir()
    (tmp_path / "checkpoint-5" / "trainer_state.json").write_text("{}")
    with pytest.raises(ValueError, match="resume=auto"):
        resolve_resume(None, tmp_path)
    (tmp_path / "partial").mkdir()
    with pytest.raises(ValueError, match="not a complete checkpoint"):
        resolve_resume(str(tmp_path / "partial"), tmp_path)
    assert resolve_resume("auto", tmp_path) == str(tmp_path / "checkpoint-5")


KILL_SCRIPT = """
import os, signal, sys
import torch
torch.set_num_threads(1)
from mqt_llava.training.config import load_recipe
from mqt_llava.training.recipe import train
from mqt_llava.training.trainer import MQTTrainer

def killed_mid_save(self, output_dir):  # weights and optimizer written, RNG/state not yet
    if self.state.global_step == 4:
        os.kill(os.getpid(), signal.SIGKILL)
    return ORIGINAL(self, output_dir)

ORIGINAL = MQTTrainer._save_rng_state
MQTTrainer._save_rng_state = killed_mid_save
train(load_recipe(sys.argv[1], sys.argv[2:]))
"""


def test_a_run_killed_while_saving_leaves_no_complete_looking_checkpoint(
    tmp_path, tiny_dir, records_dir
):
    out = tmp_path / "run"
    overrides = _overrides(out, tiny_dir, records_dir, **{"training.save_steps": 2})
    recipe = tmp_path / "kill.yaml"
    recipe.write_text("name: kill-test\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILL_SCRIPT), str(recipe), *overrides],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]  # SIGKILL, in the middle of the save
    staged = out / STAGING_DIR / "checkpoint-4"
    assert (staged / "model.safetensors").is_file()  # the save had begun...
    assert not (staged / "trainer_state.json").exists()
    assert not (out / "checkpoint-4").exists()  # ...but never got the complete name
    assert latest_checkpoint(out) == out / "checkpoint-2"
    with pytest.raises(ValueError, match="not a complete checkpoint"):
        resolve_resume(str(staged), out)

    # resuming continues from checkpoint-2 and re-saves step 4 cleanly
    result = train(_config(out, tiny_dir, records_dir, resume="auto", **{"training.save_steps": 2}))
    assert result.global_step == 6
    assert (out / "checkpoint-4" / "trainer_state.json").is_file()
    assert not (out / STAGING_DIR).exists()


def test_resume_from_the_last_checkpoint_exports_without_training_more(
    tmp_path, tiny_dir, records_dir
):
    """Killed between its last checkpoint and its export, a run resumes to that very step.

    6 steps of 2 x 2 records with 8 records is not a whole number of epochs: the Trainer alone
    would train a 7th step on resume, since it checks max_steps only after a step.
    """
    out = tmp_path / "run"
    first = train(_config(out, tiny_dir, records_dir))
    weights = (out / "connector").iterdir()
    before = {p.name: p.read_bytes() for p in weights if p.is_file()}
    assert latest_checkpoint(out).name == f"checkpoint-{STEPS}"
    second = train(_config(out, tiny_dir, records_dir, resume="auto"))
    assert first.global_step == second.global_step == STEPS
    after = {p.name: p.read_bytes() for p in (out / "connector").iterdir() if p.is_file()}
    assert after == before
