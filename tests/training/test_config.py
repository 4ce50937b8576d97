"""Recipes: the bundled stages, --set overrides, and clear errors for bad keys."""

from __future__ import annotations

import pytest

from mqt_llava.cli import main as cli_main
from mqt_llava.training.config import apply_overrides, load_recipe
from mqt_llava.training.recipe import training_arguments

DATA = ["data.train_json=data.json"]


def test_bundled_recipes_carry_the_release_hyper_parameters():
    stage1 = load_recipe("stage1", DATA)
    assert stage1.train_modules == ["connector"] and stage1.budget.policy == "fixed:M"
    assert stage1.data.template == "plain"
    args = training_arguments(stage1)
    assert args.learning_rate == 1e-3 and args.lr_scheduler_type == "cosine"
    assert args.warmup_steps == 0.03 and args.weight_decay == 0.0
    stage2 = load_recipe("stage2", DATA)
    assert stage2.train_modules == ["connector", "language_model"]
    assert stage2.budget.policy == "uniform-even" and stage2.data.group_by_modality_length
    assert training_arguments(stage2).learning_rate == 2e-5
    lora = load_recipe("stage2-lora", DATA)
    assert (lora.lora.r, lora.lora.alpha) == (128, 256)


def test_overrides_parse_yaml_values_and_reach_nested_keys():
    config = load_recipe(
        "stage2",
        [
            *DATA,
            "training.learning_rate=1e-4",
            "budget.policy=choice:2,16,64",
            "train_modules=[connector]",
            "training.deepspeed=zero3",
        ],
    )
    assert config.budget.policy == "choice:2,16,64" and config.train_modules == ["connector"]
    args_values = config.training
    assert args_values["learning_rate"] == "1e-4"  # YAML 1.1 string; coerced below
    assert apply_overrides({}, ["a.b=3", "c=[1, 2]"]) == {"a": {"b": 3}, "c": [1, 2]}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.train_jsonn=x"], r"Unknown key\(s\) \['train_jsonn'\] in `data`"),
        (["bogus=1"], r"Unknown key\(s\) \['bogus'\]"),
        (["train_modules=[connector, llm]"], "subset of"),
        (["lora={r: 8}", "train_modules=[connector, language_model]"], "remove language_model"),
        (["model=some/folder", "model_init.dtype=float32"], "`model_init` cannot apply"),
        (["model_init=null"], "exactly one of `model`"),
        (["data.template=vicuna"], "plain or llava_v1"),
        (["oops"], "key=value"),
    ],
)
def test_bad_recipes_say_which_key_to_change(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_recipe("stage2", [*DATA, *overrides])


def test_unknown_training_option_is_named():
    config = load_recipe("stage2", [*DATA, "training.learning_rat=1"])
    with pytest.raises(ValueError, match=r"learning_rat.*TrainingArguments"):
        training_arguments(config)


def test_cli_reports_a_missing_data_file_in_one_line(capsys):
    assert cli_main(["train", "stage2"]) == 2
    assert "data.train_json is required" in capsys.readouterr().err
    assert cli_main(["train", "no-such-recipe"]) == 2
    assert "bundled recipes: stage1, stage2, stage2-lora" in capsys.readouterr().err


def test_print_config_shows_the_resolved_recipe(capsys):
    assert cli_main(["train", "stage1", *("--set", DATA[0]), "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "policy: fixed:M" in out and "train_json: data.json" in out


def test_shipped_fsdp_config_builds_an_fsdp2_plugin_and_zero_configs_parse():
    import json

    from mqt_llava.training.config import CONFIGS_DIR

    config = load_recipe(
        "stage2", [*DATA, "training.fsdp=full_shard auto_wrap", "training.fsdp_config=fsdp"]
    )
    plugin = training_arguments(config).fsdp_plugin_args
    assert plugin["fsdp_version"] == 2
    assert "MatryoshkaQueryTransformer" in plugin["transformer_cls_names_to_wrap"]
    stages = {
        name: json.loads((CONFIGS_DIR / f"{name}.json").read_text())["zero_optimization"]["stage"]
        for name in ("zero2", "zero3", "zero3_offload")
    }
    assert stages == {"zero2": 2, "zero3": 3, "zero3_offload": 3}
