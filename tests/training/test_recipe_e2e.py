"""Stage 1 then stage 2 on generated records: the loss falls, the result loads and answers."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file

from mqt_llava.cli import main as cli_main
from mqt_llava.model import MQTLlavaForConditionalGeneration, MQTLlavaProcessor
from mqt_llava.training.config import load_recipe
from mqt_llava.training.recipe import train

FAST = {"disable_tqdm": True, "save_steps": 1000, "per_device_train_batch_size": 4}


def _recipe(tmp_path: Path, name: str, values: dict) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def _mean(xs):
    return sum(xs) / len(xs)


def test_stage1_then_stage2_loss_falls_and_the_model_answers(tmp_path, tiny_dir, records_dir):
    data = {
        "train_json": str(records_dir / "train.json"),
        "image_folder": str(records_dir / "images"),
    }
    stage1 = _recipe(
        tmp_path,
        "stage1",
        {
            "name": "stage1",
            "output_dir": str(tmp_path / "stage1"),
            "model": str(tiny_dir),
            "train_modules": ["connector"],
            "budget": {"policy": "fixed:M"},
            "data": {**data, "template": "plain"},
            "export": {"connector": True, "full_model": False},
            "training": {**FAST, "max_steps": 10, "learning_rate": 1e-2},
        },
    )
    # Stage 1 through the CLI, as a user runs it (4 text-only records are skipped: plain).
    assert cli_main(["train", str(stage1), "--set", "training.warmup_steps=0"]) == 0
    history = json.loads((tmp_path / "stage1" / "checkpoint-10" / "trainer_state.json").read_text())
    losses1 = [e["loss"] for e in history["log_history"] if "loss" in e]
    assert [e["num_visual_tokens"] for e in history["log_history"] if "loss" in e] == [16] * 10
    assert _mean(losses1[-3:]) < _mean(losses1[:3]) - 0.05
    export = tmp_path / "stage1" / "connector"
    assert (export / "connector_config.json").is_file()
    assert not (tmp_path / "stage1" / "model.safetensors").exists()  # connector only

    config = load_recipe(
        _recipe(
            tmp_path,
            "stage2",
            {
                "name": "stage2",
                "output_dir": str(tmp_path / "stage2"),
                "model": str(tiny_dir),
                "connector_init": str(export),
                "train_modules": ["connector", "language_model"],
                "budget": {"policy": "uniform-even"},
                "data": {**data, "template": "llava_v1", "group_by_modality_length": True},
                "training": {
                    **FAST,
                    "max_steps": 12,
                    "learning_rate": 3e-3,
                    "activation_checkpointing": True,  # as the bundled recipes
                },
            },
        )
    )
    result = train(config)
    losses2 = result.losses
    assert len(losses2) == 12
    assert _mean(losses2[-3:]) < _mean(losses2[:3]) - 0.05
    budgets = [m for _, m in result.budgets]
    assert len(set(budgets)) > 3 and all(m % 2 == 0 for m in budgets)
    logged = [e["num_visual_tokens"] for e in result.log_history if "loss" in e]
    assert logged == budgets  # m of every step is in the logs

    out = tmp_path / "stage2"
    saved = json.loads((out / "config.json").read_text())
    assert saved.get("use_cache", True), "the Trainer's use_cache=False for training was saved"
    model = MQTLlavaForConditionalGeneration.from_pretrained(out).eval()
    processor = MQTLlavaProcessor.from_pretrained(out)
    stage1_query = load_file(export / "connector.safetensors")["query"]
    assert not torch.equal(model.connector.query, stage1_query)  # stage 2 trained it further
    prompt = processor.build_prompt("What colour is it?")
    inputs = processor(
        images=[str(records_dir / "images" / "0.png")], text=[prompt], num_visual_tokens=4
    )
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    answer = processor.decode(
        generated[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True
    )
    assert generated.shape[1] > inputs["input_ids"].shape[1] and answer.strip()
