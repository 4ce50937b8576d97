"""A training stage, end to end: setup -> fit -> save. Every stage runs through `train`."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.utils.data import ConcatDataset
from transformers import TrainerState, TrainingArguments, set_seed
from transformers.utils import logging

from ..data.collator import LlavaCollator
from ..data.llava_json import LlavaJsonDataset
from .builder import (
    build_model,
    export_connector,
    init_connector,
    set_trainable,
    trainable_summary,
)
from .checks import check_applicable
from .config import CONFIGS_DIR, RecipeConfig, to_dict
from .curriculum import PhasedBudgets
from .features import install_feature_cache
from .logs import JsonLinesLogger
from .sampler import BudgetSampler
from .trainer import MQTTrainer, latest_checkpoint

logger = logging.get_logger(__name__)

# Set for every recipe: our batches carry keys the model does not take (`num_skipped`), and
# logging every step is what makes the m of every step visible.
TRAINING_DEFAULTS: dict[str, Any] = {
    "remove_unused_columns": False,
    "logging_steps": 1,
    "report_to": "none",
    "save_strategy": "steps",
    "save_steps": 500,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0.03,  # < 1: a ratio of the total steps (the release's warmup_ratio)
    "weight_decay": 0.0,
    "activation_checkpointing_kwargs": {"use_reentrant": False},
}
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)$")  # YAML 1.1 reads 1e-3 as a string


@dataclass
class TrainResult:
    """What a stage produced."""

    output_dir: Path
    log_history: list[dict] = field(default_factory=list)
    budgets: list[tuple[int, int]] = field(default_factory=list)  # (step, m)
    skipped_at_load: dict[str, str] = field(default_factory=dict)
    global_step: int = 0

    @property
    def losses(self) -> list[float]:
        """Per-logging-step training losses."""
        return [entry["loss"] for entry in self.log_history if "loss" in entry]


def training_arguments(config: RecipeConfig) -> TrainingArguments:
    """`TrainingArguments` from the recipe's `training` section, with the recipe defaults."""
    values = {**TRAINING_DEFAULTS, **config.training}
    values = {
        k: float(v) if isinstance(v, str) and _FLOAT.match(v) else v for k, v in values.items()
    }
    for key in [k for k in values if k.endswith("_strategy") and values[k] is False]:
        values[key] = "no"  # YAML 1.1 reads a bare `no` as false
    if "warmup_ratio" in values:  # the release's name; transformers 5 folds it into warmup_steps
        values["warmup_steps"] = float(values.pop("warmup_ratio"))
    values.setdefault("output_dir", config.output_dir)
    values.setdefault("seed", config.seed)
    if not torch.cuda.is_available():
        values.setdefault("use_cpu", True)
    for key in ("deepspeed", "fsdp_config"):  # bundled names: zero2, zero3, zero3_offload, fsdp
        name = values.get(key)
        if isinstance(name, str) and (CONFIGS_DIR / f"{name}.json").is_file():
            values[key] = str(CONFIGS_DIR / f"{name}.json")
    accepted = {f.name for f in dataclasses.fields(TrainingArguments)}
    unknown = sorted(set(values) - accepted)
    if unknown:
        raise ValueError(
            f"Unknown training option(s) {unknown}: the `training` section takes "
            "transformers.TrainingArguments fields (learning_rate, num_train_epochs, "
            "per_device_train_batch_size, gradient_accumulation_steps, bf16, ...)."
        )
    return TrainingArguments(**values)


def resolve_resume(resume: str | None, output_dir: str | Path) -> str | None:
    """`None`, `auto` (the newest complete checkpoint, if any) or a complete checkpoint folder."""
    output_dir = Path(output_dir)
    if resume is None:
        existing = latest_checkpoint(output_dir)
        if existing is not None:
            raise ValueError(
                f"{output_dir} already holds {existing.name}: continue it with --set resume=auto, "
                "or choose a new output_dir."
            )
        return None
    if resume == "auto":
        found = latest_checkpoint(output_dir)
        return str(found) if found is not None else None
    path = Path(resume)
    if not (path / "trainer_state.json").is_file():
        raise ValueError(
            f"resume={resume} is not a complete checkpoint (no trainer_state.json): pick a "
            "checkpoint-N folder written to the end, or resume=auto."
        )
    return str(path)


def train(config: RecipeConfig, trainer_cls: type[MQTTrainer] = MQTTrainer) -> TrainResult:
    """Runs one training stage of a recipe and writes its outputs.

    Writes, in `config.output_dir`: `recipe.yaml` (the resolved recipe), `checkpoint-N/`
    (complete checkpoints only), `connector/` (the connector export that a next stage's
    `connector_init` reads) and, with `export.full_model`, a `from_pretrained`-loadable model
    with its processor. `trainer_cls` swaps in a subclass (e.g. one that shards differently).
    """
    config.validate()
    check_applicable(config)
    args = training_arguments(config)
    resume = resolve_resume(config.resume, args.output_dir)
    if args.deepspeed:
        # ZeRO-3 partitions the model as it is built, which needs DeepSpeed's process group
        # first (otherwise it sees world size 1 and rejects the batch-size arithmetic).
        import deepspeed

        _ = args.device  # torch's process group, as the Trainer sets it up
        deepspeed.init_distributed(
            dist_backend=args.ddp_backend or ("gloo" if args.use_cpu else None)
        )
    set_seed(config.seed)  # random parts of model_init are part of the run
    model, processor = build_model(config.model, config.model_init)
    if config.connector_init is not None:
        init_connector(model, config.connector_init)
    sampler = BudgetSampler(
        config.budget.policy, model.config.num_queries, config.seed, config.budget.per_forward
    )
    data = config.data

    def records(train_json: str) -> LlavaJsonDataset:
        return LlavaJsonDataset(
            train_json,
            processor,
            template=data.template,
            image_folder=data.image_folder,
            max_length=data.max_length,
            max_visual_tokens=model.config.num_queries,
            bad_records=data.bad_records,
        )

    dataset = records(data.train_json)
    train_dataset, curriculum = dataset, None
    if config.curriculum:
        train_dataset, curriculum, sampler = _curriculum(config, dataset, records, sampler)
    trainable = set_trainable(model, config.train_modules, config.lora)
    install_feature_cache(model, config.feature_cache)
    logger.warning("%s: %s, %d records", config.name, trainable_summary(trainable), len(dataset))
    pad_id = processor.tokenizer.pad_token_id
    use_cache = vars(model.config).get("use_cache", _UNSET)  # the Trainer overwrites it
    trainer = trainer_cls(
        model=trainable,
        args=args,
        train_dataset=train_dataset,
        data_collator=LlavaCollator(pad_id, processor.image_token_id),
        processing_class=processor,
        budget_sampler=sampler,
        image_token_id=processor.image_token_id,
        pad_token_id=pad_id,
        modality_lengths=dataset.modality_lengths if data.group_by_modality_length else None,
        shared_prefix_loss=config.shared_prefix_loss,
        labelled_logits_only=config.labelled_logits_only,
        curriculum=curriculum,
        per_step_sampling=data.sampling == "per-step",
        lr_schedule=config.lr_schedule,
    )
    if config.log_file:
        log_path = Path(args.output_dir) / config.log_file
        if resume is None and args.should_save:
            log_path.unlink(missing_ok=True)  # a fresh run; a resumed one appends
        trainer.add_callback(JsonLinesLogger(log_path))
    if args.should_save:
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
        (Path(args.output_dir) / "recipe.yaml").write_text(yaml.safe_dump(to_dict(config)))
    if _at_the_end(resume, args.max_steps) and not args.deepspeed:
        # The checkpoint is the run's last step (killed before its export): export it. The
        # Trainer would train one step past max_steps when max_steps is not a multiple of the
        # steps per epoch, since it checks the limit only after a step.
        trainer._load_from_checkpoint(resume)
        trainer.state = TrainerState.load_from_json(str(Path(resume) / TRAINER_STATE))
    else:
        trainer.train(resume_from_checkpoint=resume)
    _restore_use_cache(model.config, use_cache)
    _export(trainer, config, model, processor)
    return TrainResult(
        Path(args.output_dir),
        list(trainer.state.log_history),
        list(trainer.budget_log),
        dict(dataset.skipped_at_load),
        trainer.state.global_step,
    )


TRAINER_STATE = "trainer_state.json"


def _at_the_end(resume: str | None, max_steps: int) -> bool:
    """Whether `resume` is a checkpoint already at `max_steps` (> 0)."""
    if resume is None or max_steps <= 0:
        return False
    state = TrainerState.load_from_json(str(Path(resume) / TRAINER_STATE))
    return state.global_step >= max_steps


def _curriculum(config: RecipeConfig, dataset, records, main: BudgetSampler):
    """The curriculum's datasets (after the main one), index pools and phased budgets."""
    parts, phases, budgets = [dataset], [], []
    for phase in config.curriculum:
        if phase.train_json is None:
            pool = list(range(len(dataset)))
        else:
            start = sum(len(part) for part in parts)
            parts.append(records(phase.train_json))
            pool = list(range(start, start + len(parts[-1])))
        phases.append((phase.until_step, pool))
        policy = phase.budget or main.policy
        budgets.append((phase.until_step, dataclasses.replace(main, policy=policy)))
    return ConcatDataset(parts), phases, PhasedBudgets(main, budgets)


_UNSET = object()


def _restore_use_cache(model_config, value) -> None:
    """Undoes the Trainer's `config.use_cache = args.use_cache` (False, for training), which
    would otherwise be saved with the model and turn the KV cache off wherever it is loaded.
    `value` is the config's own setting before the Trainer, or `_UNSET` if it had none."""
    if value is _UNSET:
        vars(model_config).pop("use_cache", None)
    else:
        model_config.use_cache = value


EXPORT_STAGING = ".staging-export"


def _export(trainer: MQTTrainer, config: RecipeConfig, model, processor) -> None:
    """Writes the connector export and the full model, atomically (see `_publish`)."""
    out = Path(trainer.args.output_dir)
    staging = out / EXPORT_STAGING
    if trainer.args.should_save and staging.exists():
        shutil.rmtree(staging)  # left by a run killed while exporting
    _write_export(trainer, config, model, processor, staging)
    if trainer.args.should_save and staging.is_dir():
        _publish(staging, out)


def _publish(staging: Path, out: Path) -> None:
    """Moves a complete export from `staging` into `out`, each file by an atomic rename.

    The old `config.json` goes first and the new one last: a run killed while publishing
    leaves a folder without `config.json` (not loadable, and the staging folder, which the next
    export removes), never a half-written weights file next to a config.
    """
    (out / "config.json").unlink(missing_ok=True)
    entries = sorted(staging.iterdir(), key=lambda p: p.name == "config.json")
    for entry in entries:
        target = out / entry.name
        if entry.is_dir() and target.exists():
            shutil.rmtree(target)
        os.replace(entry, target)
    staging.rmdir()


def _write_export(trainer: MQTTrainer, config: RecipeConfig, model, processor, out: Path) -> None:
    """Writes the connector export, the adapter and the full model (LoRA merged) into `out`."""
    if config.lora is not None:
        if not trainer.args.should_save:
            return
        peft_model = trainer.accelerator.unwrap_model(trainer.model)
        if config.export.adapter:  # before merging, which folds the adapters away
            peft_model.save_pretrained(out / "adapter")
        merged = peft_model.merge_and_unload()
        if config.export.connector:
            export_connector(merged.connector.state_dict(), merged.config, out / "connector")
        if config.export.full_model:
            merged.save_pretrained(out)
            processor.save_pretrained(out)
        return
    if config.export.full_model:
        trainer.save_model(str(out))  # gathers FSDP / ZeRO-3 shards; saves the processor too
    if config.export.connector:
        state = trainer.accelerator.get_state_dict(trainer.model_wrapped)  # collective
        state = state or {}  # ZeRO-3 gathers onto the main process only: None elsewhere
        prefix = "connector."
        connector = {k[len(prefix) :]: _full(v) for k, v in state.items() if k.startswith(prefix)}
        if trainer.args.should_save:
            export_connector(connector, model.config, out / "connector")


def _full(tensor: torch.Tensor) -> torch.Tensor:
    """A whole tensor from a possibly sharded one (collective for DTensors: every rank calls)."""
    full_tensor = getattr(tensor, "full_tensor", None)
    return full_tensor() if callable(full_tensor) else tensor
