"""Typed training recipes, read from YAML with `--set key=value` overrides.

A recipe has the same shape for every stage (see `recipes/*.yaml` and docs/training.md):

```yaml
model: PATH                      # an MQT-LLaVA folder, or:
model_init: {vision, text, tokenizer, image_processor, connector, ...}   # build from parts
connector_init: PATH             # connector export, converted model or query_abstractor.bin
train_modules: [connector]       # any of connector, language_model, vision_tower
lora: {r, alpha, dropout, target_modules}   # optional: LoRA on the language model (peft)
budget: {policy: uniform-even, per_forward: false}
data: {train_json, image_folder, template, max_length, bad_records, group_by_modality_length}
training: {...}                  # any transformers.TrainingArguments field
export: {connector: true, full_model: true, adapter: false}
```
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

RECIPES_DIR = Path(__file__).parent / "recipes"
CONFIGS_DIR = Path(__file__).parent / "configs"
TRAIN_MODULES = ("connector", "language_model", "vision_tower")


@dataclass
class DataConfig:
    """Where the records are and how they become samples."""

    train_json: str | None = None
    image_folder: str | None = None
    template: str = "llava_v1"
    max_length: int = 2048
    bad_records: str = "skip"
    group_by_modality_length: bool = False
    sampling: str = "passes"  # passes: seeded epochs; per-step: each step drawn afresh


@dataclass
class BudgetConfig:
    """The visual-token budget of each step (see `BudgetSampler`)."""

    policy: str = "uniform-even"
    per_forward: bool = False


@dataclass
class LoraConfig:
    """LoRA on the language model's linear layers (peft)."""

    r: int = 128
    alpha: int = 256
    dropout: float = 0.05
    target_modules: list[str] = field(
        default_factory=lambda: [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ]
    )


@dataclass
class ExportConfig:
    """What the run writes at the end, besides the Trainer's checkpoints."""

    connector: bool = True  # `connector/`: connector.safetensors + connector_config.json
    full_model: bool = True  # a from_pretrained-loadable model + processor in output_dir
    # `adapter/`: with `lora`, the trained weights alone (peft's adapter: the LoRA matrices and
    # the modules trained in full, e.g. the connector), megabytes instead of the whole model
    adapter: bool = False


@dataclass
class ModelInit:
    """A model built from parts: each a path (pretrained weights) or a config dict (random init).

    Attributes:
        vision: Vision backbone: a path / hub id, or a config dict with `model_type`
            (e.g. `clip_vision_model`).
        text: Causal LM: a path / hub id, or a config dict with `model_type` (e.g. `llama`);
            `vocab_size` defaults to the tokenizer's length.
        tokenizer: Tokenizer path; defaults to `text` when that is a path.
        image_processor: Path, or a dict `{class: CLIPImageProcessorPil, ...kwargs}`; defaults
            to `vision` when that is a path.
        connector: `MQTLlavaConfig` connector fields: `num_queries`, `num_heads`, `query_grid`,
            `key_source`, `connector_layer_norm_eps`.
        vision_feature_layer, vision_feature_select_strategy, num_visual_tokens: as in
            `MQTLlavaConfig`.
        image_aspect_ratio: `pad` (the release) or `none`.
        model_max_length: Written into the tokenizer.
        dtype: Weights dtype of pretrained parts (`float32`, `bfloat16`, ...).
    """

    vision: str | dict
    text: str | dict
    tokenizer: str | None = None
    image_processor: str | dict | None = None
    connector: dict = field(default_factory=dict)
    vision_feature_layer: int = -2
    vision_feature_select_strategy: str = "default"
    num_visual_tokens: int | None = None
    image_aspect_ratio: str = "pad"
    model_max_length: int | None = None
    dtype: str = "float32"


@dataclass
class CurriculumPhase:
    """A curriculum phase (see `mqt_llava.training.curriculum`).

    Attributes:
        until_step: The phase covers the optimizer steps before this one.
        train_json: Its records (same image folder and template as `data`); None: `data`'s.
        budget: Its budget policy; None: `budget.policy`.
    """

    until_step: int
    train_json: str | None = None
    budget: str | None = None


@dataclass
class RecipeConfig:
    """A training stage."""

    name: str = "recipe"
    output_dir: str = "runs/recipe"
    seed: int = 42
    model: str | None = None
    model_init: ModelInit | None = None
    connector_init: str | None = None
    train_modules: list[str] = field(default_factory=lambda: ["connector"])
    lora: LoraConfig | None = None
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: dict[str, Any] = field(default_factory=dict)
    export: ExportConfig = field(default_factory=ExportConfig)
    resume: str | None = None  # None, "auto" (latest complete checkpoint) or a checkpoint path
    log_file: str | None = "log.jsonl"  # step logs as JSON lines, in output_dir (null: none)
    feature_cache: bool | str = False  # frozen tower: encode each image once (true or a dtype)
    shared_prefix_loss: bool = False  # run the prompt all rows share once per batch
    # project onto the vocabulary only where the next token is labelled (same loss, less work)
    labelled_logits_only: bool = False
    curriculum: list[CurriculumPhase] | None = None  # phases with their own records / budgets
    lr_schedule: str | None = None  # None: training.lr_scheduler_type; warmup-first-step-cosine

    def validate(self, require_data: bool = True) -> RecipeConfig:
        """Checks cross-field rules; raises ValueError saying which key to change.

        Args:
            require_data: Refuse a recipe without `data.train_json` (not for `--print-config`).
        """
        if self.model is not None and self.model_init is not None:
            raise ValueError(
                "`model_init` cannot apply together with `model` (a model folder): set "
                "model_init=null, or model=null to build from parts."
            )
        if self.model is None and self.model_init is None:
            raise ValueError("Give exactly one of `model` (a model folder) and `model_init`.")
        unknown = set(self.train_modules) - set(TRAIN_MODULES)
        if unknown or (not self.train_modules and self.lora is None):
            raise ValueError(
                f"train_modules {self.train_modules} must be a non-empty subset of "
                f"{list(TRAIN_MODULES)}."
            )
        if self.lora is not None and "language_model" in self.train_modules:
            raise ValueError(
                "With `lora`, the language model trains through its adapters: remove "
                "language_model from train_modules."
            )
        if self.export.adapter and self.lora is None:
            raise ValueError(
                "export.adapter needs `lora` (peft adapters to save): set export.adapter=false, "
                "or give lora: {r, alpha, dropout, target_modules}."
            )
        bounds = [phase.until_step for phase in self.curriculum or []]
        if any(b < 1 for b in bounds) or bounds != sorted(set(bounds)):
            raise ValueError(
                f"curriculum: until_step values must be positive and increasing, got {bounds}."
            )
        if self.data.sampling not in ("passes", "per-step"):
            raise ValueError(
                f"data.sampling must be passes or per-step, got {self.data.sampling!r}."
            )
        if self.lr_schedule not in (None, "warmup-first-step-cosine"):
            raise ValueError(
                "lr_schedule must be null (the Trainer's lr_scheduler_type) or "
                f"warmup-first-step-cosine, got {self.lr_schedule!r}."
            )
        if require_data and self.data.train_json is None:
            raise ValueError("data.train_json is required: --set data.train_json=PATH.")
        if self.data.template not in ("plain", "llava_v1", "chatml"):
            raise ValueError(
                "data.template must be plain or llava_v1 (or chatml: the tokenizer's own chat "
                f"template), got {self.data.template!r}."
            )
        if self.data.bad_records not in ("skip", "fail"):
            raise ValueError(
                f"data.bad_records must be skip or fail, got {self.data.bad_records!r}."
            )
        return self


def _build(cls, values: Any, where: str):
    """Builds dataclass `cls` from a dict, refusing unknown keys by name."""
    if values is None or dataclasses.is_dataclass(values):
        return values
    if not isinstance(values, dict):
        raise ValueError(f"`{where}` must be a mapping, got {values!r}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"Unknown key(s) {unknown} in `{where}`; accepted: {sorted(fields)}.")
    nested = {
        "model_init": ModelInit,
        "lora": LoraConfig,
        "budget": BudgetConfig,
        "data": DataConfig,
        "export": ExportConfig,
    }
    kwargs = {}
    for key, value in values.items():
        if cls is RecipeConfig and key == "curriculum" and value is not None:
            if not isinstance(value, list):
                raise ValueError(f"`curriculum` must be a list of phases, got {value!r}.")
            kwargs[key] = [
                _build(CurriculumPhase, item, f"curriculum[{i}]") for i, item in enumerate(value)
            ]
            continue
        sub = nested.get(key) if cls is RecipeConfig else None
        kwargs[key] = _build(sub, value, f"{where}.{key}".lstrip(".")) if sub else value
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ValueError(f"`{where or 'recipe'}`: {err}") from err


def resolve_recipe_path(recipe: str | Path) -> Path:
    """A YAML path, or the name of a bundled recipe (`stage1`, `stage2`, `stage2-lora`)."""
    path = Path(recipe)
    if path.is_file():
        return path
    bundled = RECIPES_DIR / f"{recipe}.yaml"
    if bundled.is_file():
        return bundled
    names = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
    raise FileNotFoundError(f"No recipe file {recipe!r}; bundled recipes: {', '.join(names)}.")


def apply_overrides(values: dict, overrides: list[str]) -> dict:
    """Applies `a.b.c=value` overrides (values parsed as YAML: numbers, lists, null, ...)."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(
                f"--set expects key=value (e.g. training.learning_rate=1e-4), got {item!r}."
            )
        value = yaml.safe_load(raw) if raw else None
        node = values
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return values


# Where the model comes from: an override of one source replaces the recipe file's other one.
_MODEL_SOURCES = {"model": ("model_init", "connector_init"), "model_init": ("model",)}


def _prefer_overridden_source(values: dict, overrides: list[str]) -> dict:
    """`--set model=DIR` on a recipe that builds from parts fine-tunes DIR: the file's
    `model_init` and `connector_init` (which would overwrite DIR's trained connector) no longer
    apply, unless they are overridden too. Likewise `--set model_init...` replaces `model`."""
    overridden = {item.partition("=")[0].split(".")[0]: item for item in overrides}
    for source, replaced in _MODEL_SOURCES.items():
        item = overridden.get(source)
        if item is None or yaml.safe_load(item.partition("=")[2] or "null") is None:
            continue  # not overridden, or overridden with null
        for key in replaced:
            if key not in overridden:
                values.pop(key, None)
    return values


def load_recipe(
    recipe: str | Path, overrides: list[str] | None = None, require_data: bool = True
) -> RecipeConfig:
    """Reads a recipe (path or bundled name), applies overrides and validates it.

    Args:
        recipe: A YAML path or a bundled recipe's name.
        overrides: `dotted.key=value` items (`--set`).
        require_data: Refuse a recipe without `data.train_json` (False for `--print-config`).
    """
    path = resolve_recipe_path(recipe)
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {err}") from err
    overrides = list(overrides or [])
    values = _prefer_overridden_source(values, overrides)
    values = apply_overrides(values, overrides)
    return _build(RecipeConfig, values, "").validate(require_data)


def to_dict(config: RecipeConfig) -> dict:
    """The recipe as plain data (written next to the run's outputs)."""
    return dataclasses.asdict(config)
