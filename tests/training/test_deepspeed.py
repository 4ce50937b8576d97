"""DeepSpeed ZeRO-2 and ZeRO-3 over gloo, 2 processes, through `torchrun ... mqt-llava train`.

The same tiny stage-2 recipe (connector + LLM, `uniform-even` budgets, image and text-only
records grouped by modality, global batch 4) runs as one process without DeepSpeed and as two
processes with the shipped `zero2` / `zero3` configs; the per-step losses are read from the
run's JSON-lines log. A ZeRO-3 run resumed from its step-2 checkpoint repeats steps 3-4 exactly.

The first run JIT-builds DeepSpeed's `deepspeed_shm_comm` extension (≈ 20 s) into
`build/torch_extensions`, which later runs reuse.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from script_loader import load_script

pytest.importorskip("deepspeed")

from mqt_llava.training.config import load_recipe
from mqt_llava.training.logs import read_log, read_losses
from mqt_llava.training.recipe import train

ROOT = Path(__file__).resolve().parents[2]
check_distributed = load_script("check_distributed")  # its gloo-abort relaunch
STEPS = 4
# ZeRO-2 keeps the fp32 master weights as flat partitions and reduces gradients in buckets, so
# sums run in another order than in one process: equal to float32 rounding (measured ≤ 1e-6).
TOLERANCE = 1e-5


def _overrides(tiny_dir: Path, records_dir: Path, out: Path, per_device: int) -> list[str]:
    return [
        f"model={tiny_dir}",
        f"output_dir={out}",
        f"data.train_json={records_dir / 'train.json'}",
        f"data.image_folder={records_dir / 'images'}",
        "data.group_by_modality_length=true",
        "train_modules=[connector, language_model]",
        "budget.policy=uniform-even",
        "export.full_model=false",
        f"training.max_steps={STEPS}",
        f"training.per_device_train_batch_size={per_device}",
        "training.learning_rate=3e-3",
        "training.warmup_steps=0",
        "training.save_steps=2",
        "training.disable_tqdm=true",
        "training.dataloader_num_workers=0",
        "training.ddp_find_unused_parameters=false",
    ]


def _torchrun(recipe: Path, overrides: list[str], out: Path) -> None:
    """`torchrun --nproc_per_node 2 -m mqt_llava.cli train RECIPE --set ...` (gloo on CPU),
    writing to `out` (the recipe's output_dir)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", "-m", "mqt_llava.cli", "train", str(recipe)]
    for item in overrides:
        command += ["--set", item]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "TORCH_EXTENSIONS_DIR": os.environ.get(
            "TORCH_EXTENSIONS_DIR", str(ROOT / "build" / "torch_extensions")
        ),
    }
    # A rank aborted inside gloo is a crash of the runtime, not a result: run it again from
    # nothing, since the aborted run's checkpoints would make the next one refuse its output_dir.
    done = check_distributed.run_relaunching(
        command,
        env,
        label=out.name,
        cwd=out.parent,
        timeout=600,
        before_relaunch=lambda: shutil.rmtree(out, ignore_errors=True),
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-6000:]


@pytest.fixture(scope="module")
def single(tmp_path_factory, tiny_dir, records_dir) -> list[float]:
    """The losses of one process without DeepSpeed, batch 4."""
    out = tmp_path_factory.mktemp("single") / "run"
    recipe = out.parent / "recipe.yaml"
    recipe.write_text("name: deepspeed-test\n")
    train(load_recipe(recipe, _overrides(tiny_dir, records_dir, out, per_device=4)))
    losses = read_losses(out / "log.jsonl")
    assert len(losses) == STEPS
    return losses


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_two_process_zero_run_matches_one_process(stage, single, tmp_path, tiny_dir, records_dir):
    out = tmp_path / "run"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("name: deepspeed-test\n")
    overrides = _overrides(tiny_dir, records_dir, out, per_device=2)
    _torchrun(recipe, [*overrides, f"training.deepspeed={stage}"], out)

    log = read_log(out / "log.jsonl")
    losses = [e["loss"] for e in log if "loss" in e]
    assert losses == pytest.approx(single, abs=TOLERANCE)
    assert len({e["num_visual_tokens"] for e in log if "loss" in e}) > 1  # budgets vary
    checkpoint = out / "checkpoint-2"
    assert (checkpoint / "trainer_state.json").is_file()
    assert any(checkpoint.glob("global_step2/*optim_states.pt"))  # DeepSpeed's own shards
    assert (out / "connector" / "connector.safetensors").is_file()  # gathered on export

    if stage == "zero3":  # resume the sharded run from its step-2 checkpoint, elsewhere
        resumed = tmp_path / "resumed"
        _torchrun(
            recipe,
            [
                *_overrides(tiny_dir, records_dir, resumed, per_device=2),
                f"training.deepspeed={stage}",
                f"resume={checkpoint}",
            ],
            resumed,
        )
        again = [e for e in read_log(resumed / "log.jsonl") if "loss" in e]
        assert [e["step"] for e in again] == [3, 4]
        assert [e["loss"] for e in again] == pytest.approx(losses[2:], abs=1e-6)
