"""The ShapesVQA pipeline, from nothing: data, tokenizer and random model, the stages, the
variants of the budget study, evaluation over budgets, table and plots.

Output folder (`out`)::

    recipe.yaml          the resolved recipe
    data/                the generated ShapesVQA set
    init/                tokenizer + randomly initialised model
    vision/              after stage 0 (vision warm-up); vision.json: patch accuracies
    stage1-<keys>/       after stage 1 (captions, m = M), per connector key source
    <variant>/           after stage 2; eval/ holds answers and metrics per budget
    results.json  results.md  accuracy_by_type.png  accuracy_vs_budget.png  timings.json

Each stage writes `stage.json` last; a rerun with the same `out` skips stages that have one, so
an interrupted run continues where it stopped (delete a folder to redo it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

from ..data.shapes import generate_shapes_dataset
from ..model import MQTLlavaForConditionalGeneration, MQTLlavaProcessor
from .shapes_eval import (
    budget_table,
    evaluate_budgets,
    plot_types,
    plot_variants,
    prefill_flops,
    prompt_tokens,
    variants_table,
)
from .shapes_model import build_initial_model, init_local_attention
from .shapes_recipe import ShapesRecipe, recipe_to_dict
from .shapes_train import (
    drop_suffixes,
    encode_features,
    merge_by_scene,
    tokenize_records,
    train_stage,
)
from .shapes_vision import patch_accuracy, patch_targets, warm_up_vision

STAGE_FILE = "stage.json"
Log = Callable[[str], None]


def load_pixels(dataset_dir: Path, images: list[str]) -> torch.Tensor:
    """(I, 3, H, W) uint8 images of a ShapesVQA folder, in the given order."""
    import numpy as np
    from PIL import Image

    arrays = [np.asarray(Image.open(dataset_dir / path).convert("RGB")) for path in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def normalizer(processor: MQTLlavaProcessor) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 (B, 3, H, W) -> the image processor's pixel values (for images already at the
    model's size and square, rescale + normalise is all the processor does)."""
    mean = torch.tensor(processor.image_processor.image_mean)[:, None, None]
    std = torch.tensor(processor.image_processor.image_std)[:, None, None]
    return lambda pixels: (pixels.float() / 255 - mean) / std


def _done(folder: Path) -> dict[str, Any] | None:
    path = folder / STAGE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _finish(folder: Path, summary: dict[str, Any]) -> dict[str, Any]:
    (folder / STAGE_FILE).write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def _save(model: MQTLlavaForConditionalGeneration, processor: MQTLlavaProcessor, folder: Path):
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


def _load(folder: Path, **config_changes):
    model = MQTLlavaForConditionalGeneration.from_pretrained(folder, **config_changes)
    return model.eval(), MQTLlavaProcessor.from_pretrained(folder)


def make_data(recipe: ShapesRecipe, out: Path, log: Log) -> dict[str, Any]:
    """Generates the dataset (once)."""
    folder = out / "data"
    if (summary := _done(folder)) is not None:
        return summary
    start = time.perf_counter()
    info = generate_shapes_dataset(
        folder,
        n=recipe.data.n,
        seed=recipe.data.seed,
        image_size=recipe.model.image_size,
        questions_per_scene=recipe.data.questions_per_scene,
        overwrite=True,
    )
    sizes = {split: v["questions"] for split, v in info["splits"].items()}
    log(f"data: {sizes} questions in {time.perf_counter() - start:.0f} s")
    return _finish(folder, {"seconds": round(time.perf_counter() - start, 1), "questions": sizes})


def make_vision(recipe: ShapesRecipe, out: Path, log: Log) -> dict[str, Any]:
    """Builds the random model and runs stage 0 (vision warm-up)."""
    folder = out / "vision"
    if (summary := _done(folder)) is not None:
        return summary
    start = time.perf_counter()
    data = out / "data"
    build_initial_model(data, out / "init", recipe.model)
    model, processor = _load(out / "init")
    normalize = normalizer(processor)
    patch = recipe.model.patch_size
    targets, pixels = {}, {}
    for split in ("train", "val"):
        scenes = json.loads((data / f"{split}_scenes.json").read_text())
        pixels[split] = load_pixels(data, [s["image"] for s in scenes])
        targets[split] = torch.stack(
            [patch_targets(s, x, patch) for s, x in zip(scenes, pixels[split], strict=True)]
        )
    heads = warm_up_vision(
        model, pixels["train"], targets["train"], recipe.vision_warmup, normalize, log
    )
    accuracy = patch_accuracy(model, heads, pixels["val"], targets["val"], normalize)
    log(f"vision warm-up: val patch accuracy {accuracy}")
    _save(model, processor, folder)
    seconds = round(time.perf_counter() - start, 1)
    return _finish(folder, {"seconds": seconds, "val_patch_accuracy": accuracy})


class FeatureBank:
    """The frozen encoder's features of every training image, computed once."""

    def __init__(self, recipe: ShapesRecipe, out: Path, log: Log):
        start = time.perf_counter()
        data = out / "data"
        model, processor = _load(out / "vision")
        scenes = json.loads((data / "train_scenes.json").read_text())
        self.rows = {scene["image"]: i for i, scene in enumerate(scenes)}
        pixels = load_pixels(data, [s["image"] for s in scenes])
        self.features = encode_features(model, pixels, normalizer(processor))  # (I, N, C)
        self.seconds = round(time.perf_counter() - start, 1)
        log(f"features of {len(scenes)} train images cached in {self.seconds:.0f} s")


def _stage_samples(stage, processor, data: Path, rows: dict[str, int]):
    """The stage's samples, and those of its curriculum (`first_types`) if it has one; the
    question records are read (and their suffixes dropped) once for both."""

    def tokenize(records: list[dict[str, Any]], multi_turn: bool):
        records = merge_by_scene(records) if multi_turn else records
        return tokenize_records(records, processor, stage.template, rows)

    if stage.data == "captions":  # StageConfig refuses a curriculum on captions
        return tokenize(json.loads((data / "captions.json").read_text()), False), None
    questions = json.loads((data / "train.json").read_text())
    if stage.drop_suffix:
        questions = drop_suffixes(questions, stage.drop_suffix, stage.seed)
    samples = tokenize(questions, stage.multi_turn)
    if not stage.first_steps:
        return samples, None
    first = [q for q in questions if q["question_type"] in stage.first_types]
    if not first:
        raise ValueError(f"first_types {stage.first_types}: no such questions in {data}")
    multi_turn = stage.multi_turn if stage.first_multi_turn is None else stage.first_multi_turn
    return samples, tokenize(first, multi_turn)


def make_stage1(
    recipe: ShapesRecipe, out: Path, key_source: str, bank: Callable[[], FeatureBank], log: Log
) -> dict[str, Any]:
    """Stage 1 (captions at m = M) for one connector key source."""
    folder = out / f"stage1-{key_source}"
    if (summary := _done(folder)) is not None:
        return summary
    model, processor = _load(out / "vision", key_source=key_source)
    if recipe.connector_init in ("local", "nested"):
        nested = recipe.connector_init == "nested"
        init_local_attention(model.connector, recipe.connector_sigmas, nested=nested)
    stage = recipe.stage1
    samples, first = _stage_samples(stage, processor, out / "data", bank().rows)
    result = train_stage(
        model, processor, bank().features, samples, stage, "stage 1", log, first_samples=first
    )
    _save(model, processor, folder)
    return _finish(folder, {k: v for k, v in result.items() if k != "budgets"})


def make_variant(
    recipe: ShapesRecipe, out: Path, variant: str, bank: Callable[[], FeatureBank], log: Log
) -> dict[str, Any]:
    """Stage 2 of one variant, then its evaluation over budgets."""
    folder = out / variant
    if (summary := _done(folder)) is not None:
        return summary
    stage = recipe.stage2_for(variant)
    model, processor = _load(out / f"stage1-{recipe.key_source(variant)}")
    if stage.reset_language_model:
        initial, _ = _load(out / "init")
        model.language_model.load_state_dict(initial.language_model.state_dict())
        log(f"{variant}: language model reset to its random initialisation (init/)")
    samples, first = _stage_samples(stage, processor, out / "data", bank().rows)
    result = train_stage(
        model, processor, bank().features, samples, stage, variant, log, first_samples=first
    )
    _save(model, processor, folder)
    start = time.perf_counter()
    spec = recipe.evaluation
    table = evaluate_budgets(
        folder, out / "data", folder / "eval", spec.budgets, spec.batch_size, spec.limit
    )
    seconds = round(time.perf_counter() - start, 1)
    at_m = table[max(table)]
    log(f"{variant}: test accuracy at m={max(table)}: {at_m} (evaluated in {seconds:.0f} s)")
    summary = {k: v for k, v in result.items() if k != "budgets"}
    summary.update(budget_policy=stage.budget, eval_seconds=seconds, accuracy=table)
    return _finish(folder, summary)


def _tables(summary: dict[str, Any]) -> dict[int, dict[str, float]]:
    return {int(m): scores for m, scores in summary["accuracy"].items()}


def run_shapes(
    out: Path, recipe: ShapesRecipe, variants: list[str] | None = None, log: Log = print
) -> dict[str, Any]:
    """Runs the pipeline (resuming finished stages) and writes the results.

    Args:
        out: Output folder.
        recipe: The recipe.
        variants: Which of `recipe.variants` to train (default: all, in recipe order).
        log: Where progress lines go.

    Returns:
        The contents of `results.json`: per variant, accuracy per budget and question type;
        prefill GFLOPs per budget; seconds per stage.
    """
    names = list(recipe.variants) if variants is None else list(variants)
    unknown = [v for v in names if v not in recipe.variants]
    if unknown or not names:
        raise ValueError(f"--variants {unknown or names}: choose from {list(recipe.variants)}")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(recipe.threads)
    try:
        return _run(Path(out), recipe, names, log)
    finally:
        torch.set_num_threads(previous_threads)


def _run(out: Path, recipe: ShapesRecipe, names: list[str], log: Log) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipe.yaml").write_text(yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False))
    start = time.perf_counter()
    seconds: dict[str, float] = {"data": make_data(recipe, out, log)["seconds"]}
    seconds["vision"] = make_vision(recipe, out, log)["seconds"]
    cache: list[FeatureBank] = []

    def bank() -> FeatureBank:  # computed on first use: a fully resumed run never needs it
        if not cache:
            cache.append(FeatureBank(recipe, out, log))
            seconds["features"] = cache[0].seconds
        return cache[0]

    for key_source in dict.fromkeys(recipe.key_source(v) for v in names):
        stage1 = make_stage1(recipe, out, key_source, bank, log)
        seconds[f"stage1-{key_source}"] = stage1["seconds"]
    results = {}
    for variant in names:
        summary = make_variant(recipe, out, variant, bank, log)
        seconds[variant] = summary["seconds"]
        seconds[f"{variant} eval"] = summary["eval_seconds"]
        results[variant] = _tables(summary)
    seconds["total (this invocation)"] = round(time.perf_counter() - start, 1)
    return write_results(out, recipe, results, seconds)


def write_results(
    out: Path,
    recipe: ShapesRecipe,
    results: dict[str, dict[int, dict[str, float]]],
    seconds: dict[str, float],
) -> dict[str, Any]:
    """Writes results.json / results.md and the two plots."""
    first = next(iter(results))
    _, processor = _load(out / first)
    text_tokens = prompt_tokens(out / "data", processor)
    flops = prefill_flops(out / first, recipe.evaluation.budgets, text_tokens)
    payload = {
        "results": {v: {str(m): s for m, s in t.items()} for v, t in results.items()},
        "prefill_gflops": {str(m): round(f, 4) for m, f in flops.items()},
        "prompt_text_tokens": text_tokens,
        "seconds": seconds,
        "threads": recipe.threads,
    }
    (out / "results.json").write_text(json.dumps(payload, indent=1) + "\n")
    lines = [
        f"## {first} (test accuracy %, by question type and budget)\n",
        budget_table(results[first], flops),
        "\n## All variants\n",
        variants_table(results),
    ]
    (out / "results.md").write_text("\n".join(lines))
    plot_types(results[first], out / "accuracy_by_type.png", f"ShapesVQA test, {first} model")
    plot_variants(results, flops, out / "accuracy_vs_budget.png", "ShapesVQA test accuracy")
    (out / "timings.json").write_text(json.dumps(seconds, indent=1) + "\n")
    return payload
