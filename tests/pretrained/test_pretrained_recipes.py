"""The two recipes of the DINOv2 + SmolLM2 model read, validate and chain (no packages needed)."""

from __future__ import annotations

from pathlib import Path

from mqt_llava.training.config import load_recipe

RECIPES = Path("mqt_llava/pretrained/recipes")


def test_stage_two_starts_from_stage_ones_connector_with_lora_and_matryoshka_budgets():
    stage1 = load_recipe(RECIPES / "stage1.yaml")
    stage2 = load_recipe(RECIPES / "stage2.yaml")
    assert stage1.train_modules == ["connector"] and stage1.lora is None
    assert stage1.budget.policy == "fixed:M" and stage1.data.template == "plain"
    assert stage2.connector_init == f"{stage1.output_dir}/connector"
    assert stage2.lora is not None and stage2.lora.target_modules == [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
    ]
    assert stage2.budget.policy == "uniform-even" and stage2.data.template == "chatml"
    for recipe in (stage1, stage2):
        assert recipe.model_init.vision.endswith("backbones/dinov2-vit-s14")
        assert recipe.model_init.text.endswith("backbones/smollm2-135m-instruct")
        assert recipe.model_init.connector["num_queries"] == 64
