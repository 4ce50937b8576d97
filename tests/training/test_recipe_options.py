"""Recipe options: fine-tuning a folder with one override, refusals at --print-config time,
the frozen-tower feature cache, the shared-prefix loss, JSON-lines logs, bit-identical reruns."""

from __future__ import annotations

import pytest
import torch
import yaml

from mqt_llava.cli import main as cli_main
from mqt_llava.training.config import load_recipe
from mqt_llava.training.logs import read_log, read_losses
from mqt_llava.training.recipe import train


def test_one_override_fine_tunes_a_model_folder(tiny_dir, capsys):
    config = load_recipe("stage2", [f"model={tiny_dir}"], require_data=False)
    assert config.model == str(tiny_dir)
    assert config.model_init is None and config.connector_init is None  # from the file: dropped
    kept = load_recipe("stage2", [f"model={tiny_dir}", "connector_init=x"], require_data=False)
    assert kept.connector_init == "x"  # overridden explicitly: kept

    # --print-config needs no data file and shows what will run
    assert cli_main(["train", "stage2", "--set", f"model={tiny_dir}", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"] == str(tiny_dir) and printed["model_init"] is None
    assert printed["data"]["train_json"] is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model_init.dtype=float32"], "`model_init` cannot apply together with `model`"),
        (["training.learning_rat=1"], "Unknown training option(s) ['learning_rat']"),
        (["training.deepspeed=zero9"], "training.deepspeed: 'zero9' is neither"),
        (["budget.policy=fixed:99"], "budget.policy:"),
        (["feature_cache=true", "train_modules=[vision_tower]"], "feature_cache cannot apply"),
        (["data.sampling=per-step"], "data.sampling=per-step needs training.max_steps"),
        (["lr_schedule=linear"], "lr_schedule must be null"),
        (["export.adapter=true"], "export.adapter needs `lora`"),
        (
            ["shared_prefix_loss=true", "training.activation_checkpointing=true"],
            "shared_prefix_loss cannot apply with training.activation_checkpointing",
        ),
    ],
)
def test_print_config_refuses_an_option_that_cannot_apply(tiny_dir, capsys, overrides, message):
    argv = ["train", "stage2", "--set", f"model={tiny_dir}"]
    for item in overrides:
        argv += ["--set", item]
    assert cli_main([*argv, "--print-config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mqt-llava: error: ") and message in err and err.count("\n") == 1


def test_deepspeed_without_deepspeed_installed_is_refused(tiny_dir, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "deepspeed" else real(name)
    )
    argv = ["train", "stage2", "--set", f"model={tiny_dir}", "--set", "training.deepspeed=zero2"]
    assert cli_main([*argv, "--print-config"]) == 2
    assert "training.deepspeed needs DeepSpeed" in capsys.readouterr().err


def test_print_config_refuses_a_folder_that_is_not_a_model(tmp_path, capsys):
    assert cli_main(["train", "stage2", "--set", f"model={tmp_path}", "--print-config"]) == 2
    assert "is not an MQT-LLaVA folder" in capsys.readouterr().err


def _run(tmp_path, tiny_dir, records_dir, name, *extra):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("name: options-test\n")
    overrides = [
        f"model={tiny_dir}",
        f"output_dir={tmp_path / name}",
        f"data.train_json={records_dir / 'train.json'}",
        f"data.image_folder={records_dir / 'images'}",
        "train_modules=[connector, language_model]",
        "budget.policy=uniform-even",
        "training.max_steps=4",
        "training.per_device_train_batch_size=4",
        "training.learning_rate=3e-3",
        "training.save_strategy=no",
        "training.disable_tqdm=true",
        *extra,
    ]
    return train(load_recipe(recipe, overrides))


def test_feature_cache_and_shared_prefix_give_the_same_losses(
    tmp_path, tiny_dir, records_dir, monkeypatch
):
    from mqt_llava.training import trainer as trainer_module

    plain = _run(tmp_path, tiny_dir, records_dir, "plain")
    cached = _run(tmp_path, tiny_dir, records_dir, "cached", "feature_cache=true")
    prefixes = []
    original = trainer_module.with_prefix_cache

    def counting(language_model, inputs, prefix):
        prefixes.append(prefix)
        return original(language_model, inputs, prefix)

    monkeypatch.setattr(trainer_module, "with_prefix_cache", counting)
    prefix = _run(tmp_path, tiny_dir, records_dir, "prefix", "shared_prefix_loss=true")
    assert len(prefixes) == 4 and min(prefixes) >= 2  # the cached path ran on every step
    assert len(plain.losses) == 4
    # the cache returns the tower's own float32 features: the same numbers
    assert cached.losses == pytest.approx(plain.losses, abs=1e-6)
    # the prefix's keys/values come from a batch of one: equal to float rounding
    assert prefix.losses == pytest.approx(plain.losses, abs=1e-5)
    # the loss curve is in the JSON-lines log, step by step
    log = read_log(tmp_path / "plain" / "log.jsonl")
    assert [e["step"] for e in log if "loss" in e] == [1, 2, 3, 4]
    assert read_losses(tmp_path / "plain" / "log.jsonl") == plain.losses
    assert all("num_visual_tokens" in e for e in log if "loss" in e)


def test_feature_cache_encodes_each_image_once(tiny_dir):
    import torch

    from mqt_llava.model import MQTLlavaForConditionalGeneration
    from mqt_llava.training.features import install_feature_cache

    model = MQTLlavaForConditionalGeneration.from_pretrained(tiny_dir).eval()
    model.requires_grad_(False)
    pixels = torch.randn(3, 3, 32, 32)
    want = model.get_vision_features(pixels)
    cache = install_feature_cache(model, True)
    assert torch.equal(model.get_vision_features(pixels), want)
    assert torch.equal(model.get_vision_features(pixels[[2, 0]]), want[[2, 0]])
    assert (cache.misses, cache.hits) == (3, 2)
    model.vision_tower.requires_grad_(True)
    with pytest.raises(ValueError, match="vision tower trains"):
        install_feature_cache(model, True)


@pytest.mark.parametrize("storage", ["float16", "bfloat16", "float32"])
def test_feature_cache_works_under_mixed_precision(tiny_dir, storage):
    """`training.bf16` on CPU runs the forward under autocast; the cached rows must still come
    back (a float16 store once failed there, in torch.stack's autocast dtype promotion)."""
    from mqt_llava.model import MQTLlavaForConditionalGeneration
    from mqt_llava.training.features import install_feature_cache

    model = MQTLlavaForConditionalGeneration.from_pretrained(tiny_dir).eval()
    model.requires_grad_(False)
    pixels = torch.randn(2, 3, 32, 32)
    want = model.get_vision_features(pixels)
    install_feature_cache(model, storage)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        first = model.get_vision_features(pixels)  # misses: the real tower
        again = model.get_vision_features(pixels)  # hits: the store
    assert again.dtype == first.dtype
    assert torch.allclose(again.float(), first.float(), atol=0.05, rtol=0.02)
    assert torch.allclose(again.float(), want, atol=0.05, rtol=0.02)


def test_shared_prefix_refuses_activation_checkpointing(tmp_path, tiny_dir, records_dir):
    with pytest.raises(ValueError, match="shared_prefix_loss cannot apply"):
        _run(
            tmp_path,
            tiny_dir,
            records_dir,
            "refused",
            "shared_prefix_loss=true",
            "training.activation_checkpointing=true",
        )


def test_reruns_are_bit_identical(tmp_path, tiny_dir, records_dir):
    first = _run(tmp_path, tiny_dir, records_dir, "a", "data.group_by_modality_length=true")
    second = _run(tmp_path, tiny_dir, records_dir, "b", "data.group_by_modality_length=true")
    assert first.losses == second.losses  # exactly, not approximately
    weights = [(tmp_path / n / "model.safetensors").read_bytes() for n in ("a", "b")]
    assert weights[0] == weights[1]


def test_curriculum_phase_has_its_own_records_and_budget(tmp_path, tiny_dir, records_dir):
    import json

    from mqt_llava.training.curriculum import CurriculumSampler
    from mqt_llava.training.sampler import BudgetSampler

    records = json.loads((records_dir / "train.json").read_text())
    easy = tmp_path / "easy.json"
    easy.write_text(json.dumps([r for r in records if "image" in r][:3]))
    phase = f"curriculum=[{{until_step: 2, train_json: {easy}, budget: 'fixed:M'}}]"
    result = _run(tmp_path, tiny_dir, records_dir, "curriculum", phase)
    assert [m for _, m in result.budgets][:2] == [16, 16]  # M of the tiny model
    main = BudgetSampler("uniform-even", 16, seed=42)  # the recipe's policy and seed after it
    assert [m for _, m in result.budgets][2:] == [main(2), main(3)]
    assert len(result.losses) == 4

    # the phase's steps draw only from its records (indices after the main dataset's 16)
    sampler = CurriculumSampler(16, [(2, [16, 17, 18])], max_steps=4, samples_per_step=4, seed=0)
    order = list(sampler)
    assert len(order) == 16 and set(order[:8]) <= {16, 17, 18}
    assert set(order[8:]) <= set(range(16)) and order == list(sampler)  # seeded: repeatable


def test_curriculum_needs_max_steps(tiny_dir, capsys):
    argv = ["train", "stage2", "--set", f"model={tiny_dir}"]
    argv += ["--set", "curriculum=[{until_step: 5}]", "--print-config"]
    assert cli_main(argv) == 2
    assert "curriculum needs training.max_steps" in capsys.readouterr().err


def test_labelled_logits_only_gives_the_same_losses(tmp_path, tiny_dir, records_dir, monkeypatch):
    from mqt_llava.model import modeling

    plain = _run(tmp_path, tiny_dir, records_dir, "plain")
    kept = []
    original = modeling.MQTLlavaForConditionalGeneration.forward

    def recording(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        if isinstance(kwargs.get("logits_to_keep"), torch.Tensor):
            kept.append((out.logits.shape[1], kwargs["input_ids"].shape[1]))
        return out

    monkeypatch.setattr(modeling.MQTLlavaForConditionalGeneration, "forward", recording)
    both = ["labelled_logits_only=true", "shared_prefix_loss=true"]
    sparse = _run(tmp_path, tiny_dir, records_dir, "sparse", "labelled_logits_only=true")
    sparse_prefix = _run(tmp_path, tiny_dir, records_dir, "sparse-prefix", *both)
    assert len(kept) == 8 and all(k < width for k, width in kept)  # fewer logits every step
    assert sparse.losses == pytest.approx(plain.losses, abs=1e-5)
    assert sparse_prefix.losses == pytest.approx(plain.losses, abs=1e-5)
