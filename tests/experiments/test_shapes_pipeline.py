"""The ShapesVQA pipeline end to end with the quick settings (seconds), and its recipe."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from mqt_llava.cli import main
from mqt_llava.experiments.shapes import run_shapes
from mqt_llava.experiments.shapes_recipe import load_shapes_recipe
from mqt_llava.experiments.shapes_train import StageConfig, write_stage_records


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("shapes")
    recipe = load_shapes_recipe(quick=True)
    logs: list[str] = []
    payload = run_shapes(out, recipe, ["matryoshka", "content-keys"], log=logs.append)
    return out, payload, logs


def test_quick_run_writes_every_stage_and_result(quick_run) -> None:
    out, _, logs = quick_run
    for folder in ("data", "init", "vision", "stage1-position", "stage1-content"):
        assert (out / folder).is_dir(), folder
    for variant in ("matryoshka", "content-keys"):
        assert (out / variant / "model.safetensors").is_file()
        assert json.loads((out / variant / "config.json").read_text())["key_source"] == (
            "content" if variant == "content-keys" else "position"
        )
        metrics = json.loads((out / variant / "eval" / "metrics.json").read_text())
        assert [r["num_visual_tokens"] for r in metrics["results"]] == [1, 64]
    results = json.loads((out / "results.json").read_text())
    assert set(results["results"]) == {"matryoshka", "content-keys"}
    scores = results["results"]["matryoshka"]["64"]
    assert {"overall", "colour", "shape"} <= set(scores)
    assert all(0.0 <= v <= 100.0 for v in scores.values())
    flops = results["prefill_gflops"]
    assert flops["1"] < flops["64"]  # fewer visual tokens, fewer FLOPs
    table = (out / "results.md").read_text()
    assert "| colour |" in table and "prefill GFLOPs" in table
    for png in ("accuracy_by_type.png", "accuracy_vs_budget.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any(line.startswith("vision warm-up: val patch accuracy") for line in logs)


def test_rerun_reuses_finished_stages(quick_run) -> None:
    out, payload, _ = quick_run
    weights = out / "matryoshka" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    logs: list[str] = []
    again = run_shapes(out, load_shapes_recipe(quick=True), ["matryoshka"], log=logs.append)
    assert weights.stat().st_mtime_ns == before
    assert not any("step" in line for line in logs)  # nothing was trained again
    assert again["results"]["matryoshka"] == payload["results"]["matryoshka"]


def test_cli_quick_run(tmp_path: Path, capsys) -> None:
    main(["experiment", "shapes", "--quick", "--out", str(tmp_path), "--variants", "fixed-4"])
    printed = capsys.readouterr().out
    assert "## fixed-4" in printed and "| overall |" in printed
    config = json.loads((tmp_path / "fixed-4" / "stage.json").read_text())
    assert config["budget_policy"] == "fixed:4"


def test_unknown_variant_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="choose from"):
        run_shapes(tmp_path, load_shapes_recipe(quick=True), ["nope"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["stage2.stepz=3"], "unknown key"),
        (["connector_init=magic"], "connector_init"),
        (["variants.bad.stage3={}"], "variant 'bad'"),
        (["variants.bad.key_source=pixels"], "key_source"),
        (["stage1.template=chatml"], "template"),
        (["threads=0"], "threads"),
    ],
)
def test_bad_recipe_names_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_shapes_recipe(overrides=overrides)


def test_recipe_variants_change_only_what_they_say() -> None:
    recipe = load_shapes_recipe(overrides=["stage2.learning_rate=1e-3"])
    assert recipe.stage2.learning_rate == pytest.approx(1e-3)  # "1e-3" read as a number
    fixed = recipe.stage2_for("fixed-4")
    assert fixed.budget == "fixed:4" and fixed.steps == recipe.stage2.steps
    assert recipe.stage2_for("matryoshka").budget == "uniform-even"
    assert recipe.key_source("content-keys") == "content"
    assert recipe.key_source("matryoshka") == "position"
    quick = load_shapes_recipe(quick=True)
    assert quick.stage2.steps < recipe.stage2.steps
    assert quick.stage2.budget == recipe.stage2.budget  # quick shrinks sizes, not the method


def test_stage2_can_start_from_the_initial_language_model(quick_run, tmp_path: Path) -> None:
    """With learning rate 0 the stage changes nothing: its decoder is init/'s, its connector
    stage 1's (and without the reset, both are stage 1's)."""
    out, _, _ = quick_run
    for folder in ("data", "init", "vision", "stage1-position"):
        shutil.copytree(out / folder, tmp_path / folder)
    frozen = ["stage2.learning_rate=0", "stage2.first_steps=0"]
    logs: list[str] = []
    for reset in (True, False):
        shutil.rmtree(tmp_path / "matryoshka", ignore_errors=True)
        recipe = load_shapes_recipe(
            quick=True, overrides=[*frozen, f"stage2.reset_language_model={str(reset).lower()}"]
        )
        run_shapes(tmp_path, recipe, ["matryoshka"], log=logs.append)
        trained = load_file(tmp_path / "matryoshka" / "model.safetensors")
        stage1 = load_file(tmp_path / "stage1-position" / "model.safetensors")
        init = load_file(tmp_path / "init" / "model.safetensors")
        decoder = [k for k in trained if k.startswith("language_model.")]
        connector = [k for k in trained if k.startswith("connector.")]
        assert decoder and connector
        expected_decoder = init if reset else stage1
        assert all(torch.equal(trained[k], expected_decoder[k]) for k in decoder)
        assert all(torch.equal(trained[k], stage1[k]) for k in connector)
        assert not all(torch.equal(stage1[k], init[k]) for k in decoder)  # the test can fail
    assert sum("language model reset" in line for line in logs) == 1


def test_curriculum_records_follow_their_own_turn_setting(quick_run, tmp_path: Path) -> None:
    out, _, _ = quick_run
    records = json.loads((out / "data" / "train.json").read_text())
    wanted = [r for r in records if r["question_type"] in ("colour", "shape")]
    wanted_scenes = len({r["scene_id"] for r in wanted})
    for first_multi_turn, expected in ((False, len(wanted)), (None, wanted_scenes)):
        stage = StageConfig(
            first_types=["colour", "shape"], first_steps=1, first_multi_turn=first_multi_turn
        )
        written = write_stage_records(stage, out / "data", tmp_path / str(first_multi_turn))
        merged = json.loads(written["train"].read_text())
        assert len(merged) == len({r["scene_id"] for r in records})  # multi-turn: one per scene
        assert len(json.loads(written["first"].read_text())) == expected
    assert len(wanted) > wanted_scenes  # the two settings differ on this data


def test_stages_run_through_the_training_recipes(quick_run) -> None:
    """Stages 1 and 2 are `mqt-llava train` runs: their folders hold the resolved training
    recipe, the loss curve and the connector export the next stage reads."""
    out, _, _ = quick_run
    stage1 = yaml.safe_load((out / "stage1-position" / "recipe.yaml").read_text())
    stage2 = yaml.safe_load((out / "matryoshka" / "recipe.yaml").read_text())
    assert stage1["name"] == "shapes-stage1" and stage1["data"]["template"] == "plain"
    assert stage2["name"] == "shapes-stage2" and stage2["data"]["template"] == "llava_v1"
    assert stage2["model"] == str(out / "start-position")
    assert stage2["connector_init"] == str(out / "stage1-position" / "connector")
    assert stage2["curriculum"][0]["budget"] == "fixed:M"
    for folder in ("stage1-position", "matryoshka"):
        assert (out / folder / "log.jsonl").is_file()
        assert (out / folder / "connector" / "connector.safetensors").is_file()


def test_ship_leaves_the_trainers_bookkeeping_out(quick_run, tmp_path: Path) -> None:
    from mqt_llava.experiments import commands
    from mqt_llava.inference.pipeline import BUNDLED_MODEL_DIR

    out, payload, _ = quick_run
    target = tmp_path / "default-model"
    bundled_before = {p.name: p.stat().st_mtime_ns for p in BUNDLED_MODEL_DIR.iterdir()}
    assert commands.ship_model(out / "matryoshka", payload["results"]["matryoshka"], target) == (
        target
    )
    shipped = {p.name for p in target.iterdir()}
    expected = {"model.safetensors", "config.json", "shapes_recipe.yaml", "train_recipe.yaml"}
    assert expected <= shipped
    assert not shipped & {"records", "connector", "log.jsonl", "training_args.bin", "eval"}
    train_recipe = yaml.safe_load((target / "train_recipe.yaml").read_text())
    assert train_recipe["name"] == "shapes-stage2"
    assert (target / "model.safetensors").read_bytes() == (
        out / "matryoshka" / "model.safetensors"
    ).read_bytes()
    # It wrote where it was told and nowhere else: the installed package is untouched.
    assert {p.name: p.stat().st_mtime_ns for p in BUNDLED_MODEL_DIR.iterdir()} == bundled_before
    assert [p.name for p in tmp_path.iterdir()] == ["default-model"]  # no staging left behind
