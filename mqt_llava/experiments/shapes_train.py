"""Stages 1 and 2 of the ShapesVQA recipe, as `mqt-llava train` runs them.

Each stage is a YAML recipe of the training layer (`recipes/shapes-stage1.yaml`,
`recipes/shapes-stage2.yaml`) run by `mqt_llava.training.recipe.train`, the code behind
`mqt-llava train`. This module only prepares what a stage reads: its records as LLaVA JSON
(captions, or questions merged per scene with the curriculum's pool beside them) and the
`--set` overrides that carry the pipeline recipe's `stage1` / `stage2` section into the training
recipe. The options that made the former hand-written loop fast are training-recipe options:
`feature_cache` (the frozen tower runs once per image), `shared_prefix_loss` (the system prompt
once per batch), `curriculum`, `data.sampling: per-step` and
`lr_schedule: warmup-first-step-cosine` (docs/training.md).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.shapes import PROMPT_SUFFIX, QUESTION_TYPES
from ..data.shapes_records import merge_by_scene

RECIPES = Path(__file__).parent / "recipes"
STAGE_RECIPES = {"stage1": RECIPES / "shapes-stage1.yaml", "stage2": RECIPES / "shapes-stage2.yaml"}


@dataclass
class StageConfig:
    """One language stage (the `stage1` / `stage2` sections of the recipe).

    Attributes:
        data: `captions` (captions.json) or `questions` (train.json).
        template: `plain` (stage 1, as released) or `llava_v1`.
        budget: A `BudgetSampler` policy: `fixed:M`, `fixed:4`, `uniform-even`, ...
        steps: Optimizer steps.
        batch_size: Sequences per step.
        learning_rate: Peak learning rate (AdamW, no weight decay, cosine schedule).
        warmup_ratio: Share of the steps spent warming up linearly.
        multi_turn: Join each scene's questions into one conversation (LLaVA's multi-turn
            records): the image and the system prompt are paid for once per scene.
        drop_suffix: Share of questions asked without the dataset's "Answer the question using
            a single word or phrase." suffix, so that the model also answers questions typed
            without it (`mqt-llava ask`); evaluation keeps the suffix.
        train_language_model: Train the language model too (otherwise only the connector, as
            in the paper's stage 1). A random decoder trained on left-to-right captions learns
            the questions more slowly afterwards than a fresh one (docs/shapes.md).
        reset_language_model: Start from the random initial language model (the pipeline's
            `init/`) instead of the previous stage's, keeping its connector. With a decoder
            trained from scratch, stage 1's captions align the connector well, but the
            caption-trained decoder then learns the questions far more slowly than a fresh one
            (docs/shapes.md).
        first_types: Question types the first `first_steps` steps draw from alone (a
            curriculum): a fresh decoder learns the question-to-object lookup of colour and
            shape questions in a few hundred steps on its own, but hardly at all while the
            harder types share the batches (docs/shapes.md).
        first_steps: Steps of that curriculum (0: none); the rest draw from all records.
        first_budget: The budget policy of the curriculum steps ("": the stage's `budget`).
        first_multi_turn: Whether the curriculum's records are multi-turn (None: as
            `multi_turn`). Single-turn keeps later questions from reading an answer off an
            earlier question about the same scene.
        then_types: Question types of a second curriculum phase, right after the first, with
            its budget and turns: other types added once the colour and shape lookup is learnt
            (added from the start, they keep it from being learnt: docs/shapes.md).
        then_steps: Steps of that second phase (0: none).
        seed: Seeds the batch order, the budget sampler and the suffix dropping.
    """

    data: str = "questions"
    template: str = "llava_v1"
    budget: str = "uniform-even"
    steps: int = 1000
    batch_size: int = 32
    learning_rate: float = 2e-3
    warmup_ratio: float = 0.05
    multi_turn: bool = True
    drop_suffix: float = 0.0
    train_language_model: bool = True
    reset_language_model: bool = False
    first_types: list[str] = field(default_factory=list)
    first_steps: int = 0
    first_budget: str = ""
    first_multi_turn: bool | None = None
    then_types: list[str] = field(default_factory=list)
    then_steps: int = 0
    seed: int = 0

    def __post_init__(self):
        self.learning_rate = float(self.learning_rate)  # YAML 1.1 reads 2e-3 as a string
        self.warmup_ratio = float(self.warmup_ratio)
        self.drop_suffix = float(self.drop_suffix)
        if not 0.0 <= self.drop_suffix <= 1.0:
            raise ValueError(f"stage drop_suffix must be in [0, 1], got {self.drop_suffix}")
        if self.data not in ("captions", "questions"):
            raise ValueError(f"stage data must be captions or questions, got {self.data!r}")
        if self.template not in ("plain", "llava_v1"):
            raise ValueError(f"stage template must be plain or llava_v1, got {self.template!r}")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(
                f"stage steps and batch_size must be >= 1, got {self.steps}, {self.batch_size}"
            )
        if self.reset_language_model and not self.train_language_model:
            raise ValueError(
                "stage reset_language_model needs train_language_model: a reset decoder that is "
                "not trained stays random"
            )
        if self.first_steps < 0 or self.then_steps < 0:
            raise ValueError(
                f"stage first_steps and then_steps must be >= 0, got {self.first_steps}, "
                f"{self.then_steps}"
            )
        if self.first_steps + self.then_steps > self.steps:
            raise ValueError(
                f"stage first_steps + then_steps must be at most steps ({self.steps}), "
                f"got {self.first_steps} + {self.then_steps}"
            )
        for key in ("first_types", "then_types"):
            unknown = sorted(set(getattr(self, key)) - set(QUESTION_TYPES))
            if unknown:
                raise ValueError(
                    f"stage {key}: unknown question type(s) {unknown}; "
                    f"accepted: {list(QUESTION_TYPES)}"
                )
        if self.first_steps and (not self.first_types or self.data != "questions"):
            raise ValueError("stage first_steps needs data: questions and a non-empty first_types")
        if self.then_steps and (not self.first_steps or not self.then_types):
            raise ValueError("stage then_steps needs a first phase (first_steps) and then_types")


def drop_suffixes(
    records: Sequence[dict[str, Any]], share: float, seed: int
) -> list[dict[str, Any]]:
    """Copies of question records, `share` of them (drawn with `seed`) without the prompt suffix."""
    rng = random.Random(seed)
    out = []
    for record in records:
        record = dict(record)
        if rng.random() < share:
            human, answer = record["conversations"]
            text = human["value"].replace(f" {PROMPT_SUFFIX}", "")
            record["conversations"] = [{**human, "value": text}, answer]
        out.append(record)
    return out


def write_stage_records(stage: StageConfig, data: Path, folder: Path) -> dict[str, Path]:
    """Writes a stage's training records as LLaVA JSON into `folder`.

    Args:
        stage: The stage's settings (data, drop_suffix, multi_turn, the curriculum's types).
        data: The ShapesVQA folder (`captions.json`, `train.json`).
        folder: Where `train.json` (and the curriculum's `first.json`, `then.json`) go.

    Returns:
        `train` and, with a curriculum, `first` (and `then` for its second phase): the written
        files.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written = {}

    def write(name: str, records: list[dict[str, Any]]) -> None:
        written[name] = folder / f"{name}.json"
        written[name].write_text(json.dumps(records))

    if stage.data == "captions":  # StageConfig refuses a curriculum on captions
        write("train", json.loads((data / "captions.json").read_text()))
        return written
    questions = json.loads((data / "train.json").read_text())
    if stage.drop_suffix:
        questions = drop_suffixes(questions, stage.drop_suffix, stage.seed)
    write("train", merge_by_scene(questions) if stage.multi_turn else questions)
    multi_turn = stage.multi_turn if stage.first_multi_turn is None else stage.first_multi_turn
    phases = (
        ("first", stage.first_steps, stage.first_types),
        ("then", stage.then_steps, stage.then_types),
    )
    for name, steps, types in phases:
        if steps:
            chosen = [q for q in questions if q["question_type"] in types]
            if not chosen:
                raise ValueError(f"{name}_types {types}: no such questions in {data}")
            write(name, merge_by_scene(chosen) if multi_turn else chosen)
    return written


def stage_overrides(
    stage: StageConfig, model: Path, data: Path, records: dict[str, Path], output_dir: Path
) -> list[str]:
    """The `--set` items that turn a stage recipe into this stage of this run.

    Args:
        stage: The pipeline recipe's stage section.
        model: The model folder the stage starts from.
        data: The ShapesVQA folder (the records' image paths are relative to it).
        records: `write_stage_records`'s files.
        output_dir: Where the trained model goes.
    """
    modules = ["connector", "language_model"] if stage.train_language_model else ["connector"]
    items = {
        "model": str(model),
        "output_dir": str(output_dir),
        "seed": stage.seed,
        "train_modules": modules,
        "budget.policy": stage.budget,
        "data.train_json": str(records["train"]),
        "data.image_folder": str(data),
        "data.template": stage.template,
        "training.max_steps": stage.steps,
        "training.per_device_train_batch_size": stage.batch_size,
        "training.learning_rate": stage.learning_rate,
        "training.warmup_steps": stage.warmup_ratio,
        "curriculum": None,
    }
    phases = []
    until = 0
    for name, steps in (("first", stage.first_steps), ("then", stage.then_steps)):
        if name in records:
            until += steps
            budget = stage.first_budget or stage.budget
            phases.append({"until_step": until, "train_json": str(records[name]), "budget": budget})
    if phases:
        items["curriculum"] = phases
    # JSON is YAML: paths and policies such as fixed:M survive `--set`'s YAML parsing
    return [f"{key}={json.dumps(value)}" for key, value in items.items()]
