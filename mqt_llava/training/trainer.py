"""`MQTTrainer`: the `transformers` Trainer plus the step's visual-token budget.

Batches arrive with one placeholder per image. `training_step` asks the [`BudgetSampler`] for the
step's m — a function of (seed, optimizer step), so identical on every rank and micro-batch, with
any number of dataloader workers and after a resume — expands the placeholders to m and hands the
batch to the stock training step. Everything else (optimiser, cosine schedule, accumulation,
mixed precision, checkpointing, DDP / FSDP / DeepSpeed) is the Trainer's.

Two additions beyond that: per-step logs carry m, tokens/s, samples/s and the count of bad records
replaced; checkpoints are written to a staging folder and renamed into place only once complete,
so a run killed while saving never leaves a `checkpoint-N` that looks complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from transformers import Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint, sort_checkpoints
from transformers.utils import logging

from ..data.collator import expand_image_placeholders
from ..model.modeling import labelled_columns
from .batching import ModalityLengthGroupedSampler
from .checks import PREFIX_WITH_CHECKPOINTING
from .curriculum import CurriculumSampler
from .prefix import shared_prefix_length, with_prefix_cache
from .sampler import BudgetSampler
from .schedule import cosine_schedule

logger = logging.get_logger(__name__)

STAGING_DIR = ".staging"  # partial checkpoints live here until they are complete


class MQTTrainer(Trainer):
    """A `Trainer` that expands image placeholders to a sampled budget each optimizer step.

    Args:
        budget_sampler: Chooses m per step.
        image_token_id: The placeholder id in batches.
        pad_token_id: The tokenizer's pad id.
        modality_lengths: Per-record signed lengths (positive: image); when given, batches are
            grouped by modality and length (the release's `group_by_modality_length`).
        *args, **kwargs: As for `transformers.Trainer`.
    """

    def __init__(
        self,
        *args: Any,
        budget_sampler: BudgetSampler,
        image_token_id: int,
        pad_token_id: int,
        modality_lengths: list[int] | None = None,
        shared_prefix_loss: bool = False,
        labelled_logits_only: bool = False,
        curriculum: list[tuple[int, list[int]]] | None = None,
        per_step_sampling: bool = False,
        lr_schedule: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        if shared_prefix_loss and self.args.gradient_checkpointing:
            raise ValueError(PREFIX_WITH_CHECKPOINTING)
        self.shared_prefix_loss = shared_prefix_loss
        self.labelled_logits_only = labelled_logits_only
        self.curriculum = curriculum  # (until_step, dataset indices) per phase
        self.per_step_sampling = per_step_sampling
        self.lr_schedule = lr_schedule
        self.budget_sampler = budget_sampler
        self.image_token_id = image_token_id
        self.pad_token_id = pad_token_id
        self.modality_lengths = modality_lengths
        self.budget_log: list[tuple[int, int]] = []  # (optimizer step, m), on this process
        self._step_seen, self._micro = -1, 0
        self._staging = False
        self._reset_window()

    # -- the budget -------------------------------------------------------------------------------
    def step_budget(self) -> int:
        """m for the forward pass about to run (advances the micro-batch counter)."""
        step = self.state.global_step
        if step != self._step_seen:
            self._step_seen, self._micro = step, 0
            self.budget_log.append((step, self.budget_sampler(step)))
        m = self.budget_sampler(step, self._micro, self.args.process_index)
        self._micro += 1
        return m

    def training_step(
        self, model: torch.nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None
    ) -> torch.Tensor:
        inputs = dict(inputs)
        skipped = inputs.pop("num_skipped", None)
        inputs.pop("num_visual_tokens", None)
        m = self.step_budget()
        inputs = expand_image_placeholders(inputs, m, self.image_token_id, self.pad_token_id)
        if "pixel_values" not in inputs and self._needs_anchor():
            inputs = self._anchor_image_path(inputs)
        tokens = inputs["attention_mask"].sum()
        self._window_tokens = self._window_tokens + tokens.to(self._window_tokens.device)
        self._window_samples += inputs["input_ids"].shape[0]
        if skipped is not None:
            self._skipped = self._skipped + skipped.to(self._skipped.device)
        if self._micro == 1 or self.budget_sampler.per_forward:
            self._window_budgets.append(m)
        return super().training_step(model, inputs, num_items_in_batch)

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ):
        if self.shared_prefix_loss and model.training and not return_outputs:
            prefix = shared_prefix_length(
                inputs["input_ids"], inputs["attention_mask"], self.image_token_id
            )
            if prefix >= 2 and inputs["input_ids"].shape[0] > 1:  # worth a second call
                base = self.accelerator.unwrap_model(model)
                if hasattr(base, "get_base_model"):  # peft
                    base = base.get_base_model()
                inputs = with_prefix_cache(base.language_model, inputs, prefix)
        labels = inputs.get("labels")
        if (
            self.labelled_logits_only
            and model.training
            and not return_outputs
            and labels is not None
        ):
            inputs = {**inputs, "logits_to_keep": labelled_columns(labels)}
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def _needs_anchor(self) -> bool:
        """Trainable vision/connector weights that a text-only batch would leave without grads."""
        if not hasattr(self, "_anchor"):
            model = self.accelerator.unwrap_model(self.model)
            self._anchor = any(
                p.requires_grad
                for name, p in model.named_parameters()
                if "connector" in name or "vision_tower" in name
            )
        return self._anchor

    def _anchor_image_path(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Adds a blank image with one visual token in a masked extra column.

        The token is attended by nothing and carries no label, so the loss is unchanged, but
        the vision tower and connector take part in the graph: DDP and FSDP then see the same
        parameters used on every rank (the release did the same with zero images).
        """
        config = self.accelerator.unwrap_model(self.model).config
        vision = config.vision_config
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        column = torch.full_like(ids[:, :1], self.pad_token_id)
        column[0, 0] = self.image_token_id
        inputs["input_ids"] = torch.cat([ids, column], dim=1)
        inputs["attention_mask"] = torch.cat([mask, torch.zeros_like(column)], dim=1)
        if "labels" in inputs:
            labels = inputs["labels"]
            inputs["labels"] = torch.cat([labels, torch.full_like(column, -100)], dim=1)
        size = vision.image_size
        channels = getattr(vision, "num_channels", 3)
        inputs["pixel_values"] = torch.zeros(1, channels, size, size, device=ids.device)
        inputs["num_visual_tokens"] = 1
        return inputs

    # -- logs -------------------------------------------------------------------------------------
    def _reset_window(self) -> None:
        device = self.args.device
        self._window_tokens = torch.zeros((), dtype=torch.long, device=device)
        self._window_samples = 0
        self._window_budgets: list[int] = []
        self._window_start = time.perf_counter()
        if not hasattr(self, "_skipped"):
            self._skipped = torch.zeros((), dtype=torch.long, device=device)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._window_budgets:
            stats = torch.stack(
                [
                    self._window_tokens,
                    torch.tensor(self._window_samples, device=self._window_tokens.device),
                    self._skipped,
                ]
            )
            if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
                dist.all_reduce(stats)  # every rank logs (the Trainer calls log on all)
            tokens, samples, skipped = (int(v) for v in stats.tolist())
            seconds = max(time.perf_counter() - self._window_start, 1e-9)
            logs["num_visual_tokens"] = self._window_budgets[-1]
            if len(self._window_budgets) > 1:
                logs["num_visual_tokens_mean"] = sum(self._window_budgets) / len(
                    self._window_budgets
                )
            logs["tokens_per_second"] = round(tokens / seconds, 1)
            logs["samples_per_second"] = round(samples / seconds, 2)
            logs["skipped_records"] = skipped
            self._reset_window()
        super().log(logs, start_time)

    # -- batching ---------------------------------------------------------------------------------
    def _get_train_sampler(self, train_dataset=None):
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        grouped = None
        if self.modality_lengths is not None:
            grouped = ModalityLengthGroupedSampler(
                self.modality_lengths,
                batch_size=self.args.per_device_train_batch_size,
                world_size=self.args.world_size * self.args.gradient_accumulation_steps,
                seed=seed,
            )
        if self.curriculum is None and not self.per_step_sampling:
            return grouped if grouped is not None else super()._get_train_sampler(train_dataset)
        per_step = self.args.per_device_train_batch_size * self.args.world_size
        dataset = self.train_dataset  # ConcatDataset([main, *phases]) with a curriculum
        return CurriculumSampler(
            main_size=dataset.cumulative_sizes[0] if self.curriculum else len(dataset),
            phases=self.curriculum or [],
            max_steps=self.args.max_steps,
            samples_per_step=per_step * self.args.gradient_accumulation_steps,
            seed=seed,
            main_order=grouped,
            per_step=self.per_step_sampling,
        )

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.lr_schedule is None or self.lr_scheduler is not None:
            return super().create_scheduler(num_training_steps, optimizer)
        warmup = self.args.warmup_steps
        ratio = warmup if warmup < 1 else warmup / num_training_steps
        self.lr_scheduler = cosine_schedule(optimizer or self.optimizer, num_training_steps, ratio)
        self._created_lr_scheduler = True
        return self.lr_scheduler

    # -- atomic checkpoints -----------------------------------------------------------------------
    def _get_output_dir(self, trial) -> str:
        run_dir = super()._get_output_dir(trial)
        return os.path.join(run_dir, STAGING_DIR) if self._staging else run_dir

    def _save_checkpoint(self, model, trial) -> None:
        run_dir = Path(super()._get_output_dir(trial))
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staged, final = run_dir / STAGING_DIR / name, run_dir / name
        if self.args.should_save and staged.exists():
            shutil.rmtree(staged)  # left by a run killed while saving
        self._barrier()
        self._staging = True
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._staging = False
        self._barrier()  # every rank has written its part (sharded optimizers, DeepSpeed)
        if self.args.should_save:
            if final.exists():
                shutil.rmtree(final)
            os.replace(staged, final)
            with contextlib.suppress(OSError):
                staged.parent.rmdir()  # only when empty
            _rotate(run_dir, self.args.save_total_limit)
        self._barrier()

    def _barrier(self) -> None:
        if dist.is_available() and dist.is_initialized():
            dist.barrier()


def end_process_group() -> None:
    """Tears down the process group that the Trainer started under torchrun, once every rank
    is done (no-op in one process). Left to interpreter exit, torch's gloo runtime now and then
    aborts a rank ("terminate called without an active exception") while its threads still run,
    and torchrun then reports a finished run as failed."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _rotate(run_dir: Path, limit: int | None) -> None:
    """Keeps the newest `limit` complete checkpoints (the Trainer rotates inside staging)."""
    if not limit:
        return
    for path in sort_checkpoints(str(run_dir))[:-limit]:
        shutil.rmtree(path, ignore_errors=True)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete `checkpoint-N` in `run_dir` (staged, unfinished saves are ignored).

    `transformers`' `get_last_checkpoint` picks the highest `checkpoint-N`; ours are renamed
    into place only once complete, and a folder without `trainer_state.json` (another tool's,
    or copied in part) is passed over for the next one down.
    """
    if not Path(run_dir).is_dir():
        return None
    newest = get_last_checkpoint(str(run_dir))
    if newest is not None and (Path(newest) / "trainer_state.json").is_file():
        return Path(newest)
    complete = [
        p for p in sort_checkpoints(str(run_dir)) if Path(p, "trainer_state.json").is_file()
    ]
    return Path(complete[-1]) if complete else None
