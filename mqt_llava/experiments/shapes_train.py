"""Stages 1 and 2 of the ShapesVQA recipe: connector + language model on frozen vision features.

As in the release, the vision encoder is frozen after its pretraining (here: stage 0), so its
features are computed once per image and kept in memory (float16); each step then runs only the
connector and the language model. This is what `mqt-llava train` does too, minus re-running the
frozen encoder on every step — on two CPU cores that re-run would cost as much as the rest of the
step. Records are tokenized with the training layer's own `tokenize_record` (the release's label
masks) and expanded with its `expand_image_placeholders`; the budget m of each step comes from
its seeded `BudgetSampler`.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..data.collator import expand_image_placeholders
from ..data.llava_json import IGNORE_INDEX, tokenize_record
from ..data.shapes import PROMPT_SUFFIX, QUESTION_TYPES
from ..model import MQTLlavaForConditionalGeneration, MQTLlavaProcessor
from ..training.curriculum import PhasedBudgets
from ..training.prefix import with_prefix_cache
from ..training.sampler import BudgetSampler
from ..training.schedule import cosine_schedule


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
        if not 0 <= self.first_steps <= self.steps:
            raise ValueError(
                f"stage first_steps must be between 0 and steps ({self.steps}), "
                f"got {self.first_steps}"
            )
        unknown = sorted(set(self.first_types) - set(QUESTION_TYPES))
        if unknown:
            raise ValueError(
                f"stage first_types: unknown question type(s) {unknown}; "
                f"accepted: {list(QUESTION_TYPES)}"
            )
        if self.first_steps and (not self.first_types or self.data != "questions"):
            raise ValueError("stage first_steps needs data: questions and a non-empty first_types")


@dataclass
class Sample:
    """A tokenized record: one placeholder per image, the index of its image in the bank."""

    input_ids: list[int]
    labels: list[int]
    image: int


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


def merge_by_scene(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Joins the single-question records of each scene into one multi-turn record.

    The image placeholder stays in the first human turn only, as in LLaVA's multi-turn data.
    """
    by_scene: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_scene[record["scene_id"]].append(record)
    merged = []
    for scene_id, group in by_scene.items():
        turns = []
        for k, record in enumerate(group):
            human, answer = record["conversations"]
            text = human["value"] if k == 0 else human["value"].replace("<image>\n", "")
            turns += [{"from": "human", "value": text}, answer]
        merged.append({"id": scene_id, "image": group[0]["image"], "conversations": turns})
    return merged


def tokenize_records(
    records: Sequence[dict[str, Any]],
    processor: MQTLlavaProcessor,
    template: str,
    image_rows: dict[str, int],
) -> list[Sample]:
    """Tokenizes records with the release's label masks (`tokenize_record`).

    Args:
        records: LLaVA records with one image each.
        processor: The model's processor.
        template: `plain` or `llava_v1`.
        image_rows: Image path (as in the records) -> row of the feature bank.
    """
    samples = []
    for record in records:
        sample = tokenize_record(record, processor, template)
        samples.append(Sample(sample.input_ids, sample.labels, image_rows[record["image"]]))
    return samples


@torch.no_grad()
def encode_features(
    model: MQTLlavaForConditionalGeneration,
    pixels: torch.Tensor,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int = 256,
) -> torch.Tensor:
    """The frozen vision tower's features of every image, stored as float16.

    Args:
        pixels: (I, 3, H, W) uint8 images.
        normalize: uint8 images -> pixel values.

    Returns:
        (I, N, C) float16 features (half the memory; the rounding is far below what matters).
    """
    model.eval()
    chunks = [
        model.get_vision_features(normalize(pixels[i : i + batch_size])).half()
        for i in range(0, len(pixels), batch_size)
    ]
    return torch.cat(chunks)


def collate(
    samples: Sequence[Sample], num_visual_tokens: int, image_token_id: int, pad_token_id: int
) -> dict[str, torch.Tensor]:
    """Right-padded batch with every image placeholder expanded to m ids."""
    length = max(len(s.input_ids) for s in samples)
    input_ids = torch.full((len(samples), length), pad_token_id, dtype=torch.long)
    labels = torch.full((len(samples), length), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(samples), length), dtype=torch.long)
    for row, sample in enumerate(samples):
        n = len(sample.input_ids)
        input_ids[row, :n] = torch.tensor(sample.input_ids)
        labels[row, :n] = torch.tensor(sample.labels)
        attention_mask[row, :n] = 1
    batch = {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
    return expand_image_placeholders(batch, num_visual_tokens, image_token_id, pad_token_id)


def shared_prefix(samples: Sequence[Sample], image_token_id: int) -> int:
    """Length of the token prefix that every sample shares before its image (e.g. the
    llava_v1 system prompt: 33 of ~140 tokens; 1 for `plain`, just BOS)."""
    first = samples[0].input_ids
    length = first.index(image_token_id) if image_token_id in first else len(first)
    for sample in samples[1:]:
        ids = sample.input_ids
        while length and ids[:length] != first[:length]:
            length -= 1
    return length


def language_loss(
    model: MQTLlavaForConditionalGeneration,
    batch: dict[str, torch.Tensor],
    visual: torch.Tensor,
    prefix: int,
) -> torch.Tensor:
    """The language-modelling loss of a batch whose rows share their first `prefix` tokens.

    The shared prefix (the system prompt) runs once, as a batch of one, and its key/value cache
    is repeated for every row: the same loss and gradients as running every row whole (the
    prefix carries no labels), for about a quarter less compute in stage 2.

    Args:
        batch: `input_ids`, `attention_mask`, `labels`, each (B, L), placeholders expanded.
        visual: (B, m, D) visual tokens, in reading order.
        prefix: Shared prefix length (< 2: no caching).
    """
    tokens = visual.reshape(-1, visual.shape[-1])  # (B * m, D)
    input_ids, attention_mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    if prefix < 2:
        return model(
            input_ids=input_ids, attention_mask=attention_mask, labels=labels, visual_tokens=tokens
        ).loss
    # the training layer's shared-prefix step (the recipe option `shared_prefix_loss`)
    inputs = with_prefix_cache(model.language_model, dict(batch), prefix)
    return model(**inputs, visual_tokens=tokens).loss


def trainable_parameters(
    model: MQTLlavaForConditionalGeneration, language_model: bool = True
) -> list[torch.nn.Parameter]:
    """The connector trains, and the language model with `language_model`; the (pretrained)
    vision tower stays frozen."""
    model.vision_tower.requires_grad_(False)
    model.language_model.requires_grad_(language_model)
    model.connector.requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


def train_stage(
    model: MQTLlavaForConditionalGeneration,
    processor: MQTLlavaProcessor,
    features: torch.Tensor,
    samples: Sequence[Sample],
    config: StageConfig,
    name: str,
    log: Callable[[str], None] = print,
    first_samples: Sequence[Sample] | None = None,
) -> dict[str, Any]:
    """Trains the connector and the language model (in place) on cached vision features.

    Args:
        model: The model; its vision tower is frozen.
        processor: Its processor (placeholder and padding ids).
        features: (I, N, C) cached vision features (`encode_features`).
        samples: Tokenized records pointing into `features`.
        config: The stage's settings.
        name: Used in log lines.
        log: Where progress lines go.
        first_samples: What the first `config.first_steps` steps draw from (the curriculum).

    Returns:
        `steps`, `seconds`, `losses` (every 50 steps and the last) and `budgets` (m per step).
    """
    if config.first_steps and not first_samples:
        raise ValueError(f"{name}: first_steps={config.first_steps} but no first_samples given")
    torch.manual_seed(config.seed)
    first_sampler = BudgetSampler(
        config.first_budget or config.budget, model.config.num_queries, config.seed
    )
    # the training layer's curriculum budgets (the recipe option `curriculum`)
    sampler = PhasedBudgets(
        BudgetSampler(config.budget, model.config.num_queries, config.seed),
        [(config.first_steps, first_sampler)],
    )
    params = trainable_parameters(model, config.train_language_model)
    optimizer = torch.optim.AdamW(
        params, lr=config.learning_rate, betas=(0.9, 0.98), weight_decay=0.0
    )
    schedule = cosine_schedule(optimizer, config.steps, config.warmup_ratio)
    order = random.Random(config.seed)
    pad_id, image_id = processor.tokenizer.pad_token_id, processor.image_token_id
    prefix = shared_prefix([*samples, *(first_samples or [])], image_id)
    model.train()
    losses, budgets = [], []
    start = time.perf_counter()
    for step in range(config.steps):
        first = step < config.first_steps
        m = sampler(step)
        pool = first_samples if first else samples
        batch_samples = order.sample(pool, min(config.batch_size, len(pool)))
        batch = collate(batch_samples, m, image_id, pad_id)
        rows = features[[s.image for s in batch_samples]].float()  # (B, N, C)
        visual = model.connector(rows, m)  # (B, m, D)
        loss = language_loss(model, batch, visual, prefix)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        budgets.append(m)
        if step % 50 == 0 or step == config.steps - 1:
            losses.append((step + 1, round(loss.item(), 4)))
            elapsed = time.perf_counter() - start
            log(
                f"{name} step {step + 1}/{config.steps} m={m} loss {loss.item():.4f} "
                f"({elapsed:.0f} s)"
            )
    model.eval()
    return {
        "steps": config.steps,
        "seconds": round(time.perf_counter() - start, 1),
        "losses": losses,
        "budgets": budgets,
    }
