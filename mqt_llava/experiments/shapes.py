"""The ShapesVQA pipeline, from nothing: data, tokenizer and random model, the stages, the
variants of the budget study, evaluation over budgets, table and plots.

Output folder (`out`)::

    recipe.yaml          the resolved recipe
    data/                the generated ShapesVQA set
    init/                tokenizer + randomly initialised model
    vision/              after stage 0 (vision warm-up); vision.json: patch accuracies
    start-<keys>/        vision/ with the connector's key source and initial attention: where
                         stage 1 starts, and (decoder still random) where stage 2 starts
    stage1-<keys>/       after stage 1 (captions, m = M), per connector key source
    <variant>/           after stage 2; eval/ holds answers and metrics per budget

Stages 1 and 2 are `mqt-llava train` runs of `recipes/shapes-stage1.yaml` and
`recipes/shapes-stage2.yaml`; their folders hold the records they read (`records/`), the
resolved training recipe (`recipe.yaml`) and the loss curve (`log.jsonl`).
    results.json  results.md  accuracy_by_type.png  accuracy_vs_budget.png  timings.json

Each stage writes `stage.json` last; a rerun with the same `out` skips stages that have one, so
an interrupted run continues where it stopped (delete a folder to redo it).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

from ..data.shapes import generate_shapes_dataset
from ..model import MQTLlavaForConditionalGeneration, MQTLlavaProcessor
from ..training.local_attention import init_local_attention
from .shapes_eval import (
    budget_table,
    evaluate_budgets,
    plot_types,
    plot_variants,
    prefill_flops,
    prompt_tokens,
    variants_table,
)
from .shapes_model import build_initial_model
from .shapes_recipe import ShapesRecipe, recipe_to_dict
from .shapes_train import STAGE_RECIPES, StageConfig, stage_overrides, write_stage_records
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


def make_start(recipe: ShapesRecipe, out: Path, key_source: str, log: Log) -> Path:
    """The folder stages 1 and 2 start from: the warmed-up vision model with the connector's
    key source and initial attention (its decoder is still `init/`'s, untouched by stage 0)."""
    folder = out / f"start-{key_source}"
    if _done(folder) is not None:
        return folder
    model, processor = _load(out / "vision", key_source=key_source)
    if recipe.connector_init in ("local", "nested"):
        nested = recipe.connector_init == "nested"
        init_local_attention(model.connector, recipe.connector_sigmas, nested=nested)
    _save(model, processor, folder)
    _finish(folder, {"key_source": key_source, "connector_init": recipe.connector_init})
    return folder


def run_stage(
    stage: StageConfig,
    recipe_file: Path,
    model: Path,
    data: Path,
    folder: Path,
    name: str,
    log: Log,
    extra: list[str] | None = None,
) -> dict[str, Any]:
    """Writes a stage's records and runs its recipe through `mqt-llava train`'s `train`."""
    from ..training.config import load_recipe
    from ..training.recipe import train

    if folder.exists():  # an interrupted stage (no stage.json): start it again
        shutil.rmtree(folder)
    records = write_stage_records(stage, data, folder / "records")
    overrides = [*stage_overrides(stage, model, data, records, folder), *(extra or [])]
    log(f"{name}: mqt-llava train {recipe_file.name} " + " ".join(f"--set {o}" for o in overrides))
    start = time.perf_counter()
    result = train(load_recipe(recipe_file, overrides))
    seconds = round(time.perf_counter() - start, 1)
    losses = result.losses
    shown = [(s + 1, round(v, 4)) for s, v in enumerate(losses) if s % 50 == 0]
    if losses and len(losses) % 50 != 1:
        shown.append((len(losses), round(losses[-1], 4)))
    for step, loss in shown:
        log(f"{name} step {step}/{stage.steps} loss {loss:.4f}")
    log(f"{name}: {result.global_step} steps in {seconds:.0f} s")
    return {"steps": result.global_step, "seconds": seconds, "losses": shown}


def make_stage1(recipe: ShapesRecipe, out: Path, key_source: str, log: Log) -> dict[str, Any]:
    """Stage 1 (captions at m = M) for one connector key source."""
    folder = out / f"stage1-{key_source}"
    if (summary := _done(folder)) is not None:
        return summary
    start = make_start(recipe, out, key_source, log)
    stage = recipe.stage1
    if stage.reset_language_model:
        raise ValueError("stage1.reset_language_model: stage 1 already starts from init/'s decoder")
    result = run_stage(stage, STAGE_RECIPES["stage1"], start, out / "data", folder, "stage 1", log)
    return _finish(folder, result)


def make_variant(recipe: ShapesRecipe, out: Path, variant: str, log: Log) -> dict[str, Any]:
    """Stage 2 of one variant, then its evaluation over budgets."""
    folder = out / variant
    if (summary := _done(folder)) is not None:
        return summary
    stage = recipe.stage2_for(variant)
    key_source = recipe.key_source(variant)
    stage1 = out / f"stage1-{key_source}"
    if stage.reset_language_model:
        # the start folder's decoder is the random one of init/; the connector is stage 1's
        model, extra = (
            make_start(recipe, out, key_source, log),
            [f"connector_init={json.dumps(str(stage1 / 'connector'))}"],
        )
        log(f"{variant}: language model reset to its random initialisation (init/)")
    else:
        model, extra = stage1, []
    result = run_stage(
        stage, STAGE_RECIPES["stage2"], model, out / "data", folder, variant, log, extra
    )
    start = time.perf_counter()
    spec = recipe.evaluation
    table = evaluate_budgets(
        folder, out / "data", folder / "eval", spec.budgets, spec.batch_size, spec.limit
    )
    seconds = round(time.perf_counter() - start, 1)
    at_m = table[max(table)]
    log(f"{variant}: test accuracy at m={max(table)}: {at_m} (evaluated in {seconds:.0f} s)")
    result.update(budget_policy=stage.budget, eval_seconds=seconds, accuracy=table)
    return _finish(folder, result)


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
    for key_source in dict.fromkeys(recipe.key_source(v) for v in names):
        stage1 = make_stage1(recipe, out, key_source, log)
        seconds[f"stage1-{key_source}"] = stage1["seconds"]
    results = {}
    for variant in names:
        summary = make_variant(recipe, out, variant, log)
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
