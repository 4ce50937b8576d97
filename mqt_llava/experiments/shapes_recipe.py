"""The ShapesVQA recipe: one YAML file for data, model, every stage, the variants and evaluation.

`recipes/shapes.yaml` is the default; `recipes/shapes-quick.yaml` is merged on top for `--quick`
(a seconds-long smoke run). Keys are overridden with `--set dotted.key=value` (values parsed as
YAML), as for `mqt-llava train`.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..training.config import apply_overrides
from .shapes_model import ShapesModelSpec
from .shapes_train import StageConfig
from .shapes_vision import VisionWarmupConfig

RECIPES = Path(__file__).parent / "recipes"
DEFAULT_RECIPE = RECIPES / "shapes.yaml"
QUICK_RECIPE = RECIPES / "shapes-quick.yaml"
CONNECTOR_INITS = ("nested", "local", "release")
_VARIANT_KEYS = {"stage2", "key_source"}


@dataclass
class DataSpec:
    """`generate_shapes_dataset` arguments."""

    n: int = 20000
    seed: int = 0
    questions_per_scene: int = 3


@dataclass
class EvalSpec:
    """Test-split evaluation."""

    budgets: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64])
    batch_size: int = 64
    limit: int | None = None


@dataclass
class ShapesRecipe:
    """The whole pipeline (see `recipes/shapes.yaml` for the meaning of each key)."""

    seed: int = 0
    threads: int = 1
    data: DataSpec = field(default_factory=DataSpec)
    model: ShapesModelSpec = field(default_factory=ShapesModelSpec)
    connector_init: str = "local"
    connector_sigmas: list[float] | None = None
    vision_warmup: VisionWarmupConfig = field(default_factory=VisionWarmupConfig)
    stage1: StageConfig = field(default_factory=StageConfig)
    stage2: StageConfig = field(default_factory=StageConfig)
    variants: dict[str, dict[str, Any]] = field(default_factory=lambda: {"matryoshka": {}})
    evaluation: EvalSpec = field(default_factory=EvalSpec)

    def stage2_for(self, variant: str) -> StageConfig:
        """Stage 2 of a variant: the recipe's, with the variant's `stage2` keys replaced."""
        changes = self.variants[variant].get("stage2", {})
        return _build(StageConfig, {**dataclasses.asdict(self.stage2), **changes}, "stage2")

    def key_source(self, variant: str) -> str:
        """The connector keys of a variant (`position` unless the variant says otherwise)."""
        return self.variants[variant].get("key_source", self.model.key_source)


def _build(cls, values: Any, where: str):
    if not isinstance(values, dict):
        raise ValueError(f"`{where}` must be a mapping, got {values!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in `{where}`; accepted: {sorted(names)}")
    return cls(**values)


def recipe_from_dict(values: dict[str, Any]) -> ShapesRecipe:
    """Builds and checks a recipe; errors name the key to change."""
    nested = {
        "data": DataSpec,
        "model": ShapesModelSpec,
        "vision_warmup": VisionWarmupConfig,
        "stage1": StageConfig,
        "stage2": StageConfig,
        "evaluation": EvalSpec,
    }
    kwargs = {k: _build(nested[k], v, k) if k in nested else v for k, v in values.items()}
    recipe = _build(ShapesRecipe, kwargs, "recipe")
    if recipe.connector_init not in CONNECTOR_INITS:
        raise ValueError(
            f"connector_init must be one of {CONNECTOR_INITS}, got {recipe.connector_init!r}"
        )
    if not recipe.variants:
        raise ValueError("`variants` is empty: name at least one model to train")
    for name, changes in recipe.variants.items():
        changes = changes or {}
        recipe.variants[name] = changes
        unknown = sorted(set(changes) - _VARIANT_KEYS)
        if unknown:
            raise ValueError(
                f"variant {name!r}: unknown key(s) {unknown}; accepted: {sorted(_VARIANT_KEYS)}"
            )
        if recipe.key_source(name) not in ("position", "content"):
            raise ValueError(f"variant {name!r}: key_source must be position or content")
        recipe.stage2_for(name)  # validates its keys
    if recipe.threads < 1:
        raise ValueError(f"threads must be at least 1, got {recipe.threads}")
    return recipe


def load_shapes_recipe(
    path: str | Path | None = None, overrides: list[str] | None = None, quick: bool = False
) -> ShapesRecipe:
    """Reads a recipe (default: the bundled one), the quick settings if asked, then `--set`s."""
    path = Path(path) if path is not None else DEFAULT_RECIPE
    if not path.is_file():
        raise FileNotFoundError(f"--recipe {path}: no such file")
    values = yaml.safe_load(path.read_text()) or {}
    if quick:
        values = _merge(values, yaml.safe_load(QUICK_RECIPE.read_text()) or {})
    values = apply_overrides(values, list(overrides or []))
    return recipe_from_dict(values)


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "variants":
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def recipe_to_dict(recipe: ShapesRecipe) -> dict[str, Any]:
    """Plain data (written next to the run's outputs)."""
    return dataclasses.asdict(recipe)
