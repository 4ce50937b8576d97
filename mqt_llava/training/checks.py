"""Refusing, before any training starts, recipe options that cannot apply to the recipe's model.

`mqt-llava train ... --print-config` runs these checks as well, so a recipe can be checked
without a data file and without loading weights: each error names the key to change.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

from .config import CONFIGS_DIR, RecipeConfig

DTYPE_NAMES = ("float32", "bfloat16", "float16")
PREFIX_WITH_CHECKPOINTING = (
    "shared_prefix_loss cannot apply with training.activation_checkpointing: recomputed layers "
    "would fill the prefix cache twice; turn one of them off."
)


def model_num_queries(config: RecipeConfig) -> int:
    """M of the recipe's model: from the folder's config.json or `model_init.connector`."""
    if config.model is not None:
        path = Path(config.model)
        if not (path / "config.json").is_file():
            raise ValueError(
                f"model: {config.model} is not an MQT-LLaVA folder (no config.json); convert a "
                "release checkpoint with `mqt-llava convert`, or use model_init."
            )
        values = json.loads((path / "config.json").read_text())
        if "num_queries" not in values:
            raise ValueError(
                f"model: {config.model} holds a {values.get('model_type', 'non-MQT-LLaVA')!r} "
                "model, not an MQT-LLaVA one (no num_queries in config.json)."
            )
        return int(values["num_queries"])
    return int(config.model_init.connector.get("num_queries", 256))


def check_applicable(config: RecipeConfig) -> None:
    """Raises ValueError naming the first recipe key that cannot apply.

    Checked: `model` is a model folder; `model_init.dtype`; the budget
    policy against the model's M; `training` keys are `TrainingArguments` fields and
    `training.deepspeed` / `training.fsdp_config` name a shipped config or an existing file;
    `feature_cache` only with a frozen vision tower; `shared_prefix_loss` only without
    activation checkpointing; a curriculum's budgets and its max_steps.
    """
    from .sampler import BudgetSampler

    big_m = model_num_queries(config)
    if config.model_init is not None and config.model_init.dtype not in DTYPE_NAMES:
        raise ValueError(
            f"model_init.dtype must be one of {', '.join(DTYPE_NAMES)}, "
            f"got {config.model_init.dtype!r}."
        )
    try:
        BudgetSampler(config.budget.policy, big_m, config.seed)
    except ValueError as err:
        raise ValueError(f"budget.policy: {err}") from None
    for i, phase in enumerate(config.curriculum or []):
        if phase.budget is not None:
            try:
                BudgetSampler(phase.budget, big_m, config.seed)
            except ValueError as err:
                raise ValueError(f"curriculum[{i}].budget: {err}") from None
    if config.curriculum and not config.training.get("max_steps"):
        raise ValueError(
            "curriculum needs training.max_steps: its phases are counted in optimizer steps "
            "and the run is one pass of that many steps."
        )
    if config.data.sampling == "per-step" and not config.training.get("max_steps"):
        raise ValueError("data.sampling=per-step needs training.max_steps (steps, not epochs).")
    check_training_section(config.training)
    checkpointing = ("activation_checkpointing", "gradient_checkpointing")
    if config.shared_prefix_loss and any(config.training.get(key) for key in checkpointing):
        raise ValueError(PREFIX_WITH_CHECKPOINTING)
    if getattr(config, "feature_cache", False) and "vision_tower" in config.train_modules:
        raise ValueError(
            "feature_cache cannot apply while the vision tower trains (train_modules holds "
            "vision_tower): its features change every step. Set feature_cache=false or remove "
            "vision_tower from train_modules."
        )


def check_training_section(training: dict) -> None:
    """The `training` keys are TrainingArguments fields; named configs exist."""
    from transformers import TrainingArguments

    accepted = {f.name for f in dataclasses.fields(TrainingArguments)} | {"warmup_ratio"}
    unknown = sorted(set(training) - accepted)
    if unknown:
        raise ValueError(
            f"Unknown training option(s) {unknown}: the `training` section takes "
            "transformers.TrainingArguments fields (learning_rate, num_train_epochs, "
            "per_device_train_batch_size, gradient_accumulation_steps, bf16, ...)."
        )
    if training.get("deepspeed") and importlib.util.find_spec("deepspeed") is None:
        raise ValueError(
            "training.deepspeed needs DeepSpeed, which is not installed: "
            "pip install 'mqt-llava[train]' (or pip install deepspeed)."
        )
    for key in ("deepspeed", "fsdp_config"):
        value = training.get(key)
        if not isinstance(value, str):
            continue
        if not (CONFIGS_DIR / f"{value}.json").is_file() and not Path(value).is_file():
            shipped = sorted(p.stem for p in CONFIGS_DIR.glob("*.json"))
            raise ValueError(
                f"training.{key}: {value!r} is neither a shipped config ({', '.join(shipped)}) "
                "nor an existing file."
            )
