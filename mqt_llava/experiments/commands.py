"""`mqt-llava experiment shapes`: the ShapesVQA model and budget study, from nothing.

torch is imported only when the command runs (the module is imported for `--help`).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

# What of a run's model folder does not ship: the pipeline's bookkeeping, the answers and what
# `mqt-llava train` left beside the model (records, loss curve, connector export, its arguments;
# its resolved recipe ships as `train_recipe.yaml`).
_NOT_SHIPPED = (
    "stage.json",
    "eval",
    "records",
    "connector",
    "log.jsonl",
    "training_args.bin",
    "recipe.yaml",
)
RESULTS_FILE = "shapes_results.json"


def shapes(
    out: Path,
    quick: bool,
    variants: list[str] | None,
    recipe: Path | None,
    overrides: list[str],
    ship: bool,
) -> None:
    """Train and evaluate the ShapesVQA models (the bundled default model and the budget study)."""
    from .shapes import run_shapes
    from .shapes_recipe import load_shapes_recipe

    config = load_shapes_recipe(recipe, overrides, quick)
    payload = run_shapes(out, config, variants)
    print((Path(out) / "results.md").read_text(), end="")
    print(f"seconds: {json.dumps(payload['seconds'])}")
    first = next(iter(payload["results"]))
    compare_with_bundled(payload["results"][first])
    if ship:
        ship_model(Path(out) / first, payload["results"][first])


def compare_with_bundled(results: dict[str, dict[str, float]]) -> None:
    """Prints, per question type, this run's accuracy at m = M minus the bundled model's."""
    from ..inference.pipeline import BUNDLED_MODEL_DIR

    path = BUNDLED_MODEL_DIR / RESULTS_FILE
    if not path.is_file():
        return
    shipped = json.loads(path.read_text())["results"]
    m = str(max(int(k) for k in shipped))
    if m not in results:
        return
    rows = [
        f"{t}: {results[m][t]:.1f} vs {v:.1f}" for t, v in shipped[m].items() if t in results[m]
    ]
    worst = max(abs(results[m][t] - v) for t, v in shipped[m].items() if t in results[m])
    print(f"vs the bundled model at m={m} (this run vs bundled): " + "; ".join(rows))
    print(f"largest difference: {worst:.1f} points")


def ship_model(folder: Path, results: dict[str, dict[str, float]]) -> Path:
    """Copies a trained model folder into the package as the bundled default model."""
    from ..inference.pipeline import BUNDLED_MODEL_DIR

    if BUNDLED_MODEL_DIR.exists():
        shutil.rmtree(BUNDLED_MODEL_DIR)
    shutil.copytree(folder, BUNDLED_MODEL_DIR, ignore=shutil.ignore_patterns(*_NOT_SHIPPED))
    if (folder.parent / "recipe.yaml").is_file():  # how it was made
        shutil.copy2(folder.parent / "recipe.yaml", BUNDLED_MODEL_DIR / "shapes_recipe.yaml")
    if (folder / "recipe.yaml").is_file():  # its stage 2, as `mqt-llava train` ran it
        shutil.copy2(folder / "recipe.yaml", BUNDLED_MODEL_DIR / "train_recipe.yaml")
    payload = {"source": str(folder), "results": results}
    (BUNDLED_MODEL_DIR / RESULTS_FILE).write_text(json.dumps(payload, indent=1) + "\n")
    print(f"shipped {folder} as the bundled model in {BUNDLED_MODEL_DIR}")
    return BUNDLED_MODEL_DIR


def _variants(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated variant names")
    return names


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds `experiment shapes`."""
    experiment = subparsers.add_parser(
        "experiment", help="reproducible experiments built on the library"
    )
    sub = experiment.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    summary = (shapes.__doc__ or "").strip().splitlines()[0]
    p = sub.add_parser(
        "shapes",
        help=summary,
        description=summary
        + " Generates ShapesVQA, builds a tokenizer and a random model, pretrains the vision "
        "encoder (stage 0), trains stage 1 (captions, m = M) and stage 2 (questions) for each "
        "variant, and evaluates every variant at every budget on the test split. Finished "
        "stages in --out are reused. See docs/shapes.md.",
    )
    p.add_argument("--out", type=Path, default=Path("runs/shapes"), help="output folder")
    p.add_argument("--quick", action="store_true", help="tiny settings: a smoke run of seconds")
    p.add_argument(
        "--variants",
        type=_variants,
        default=None,
        help="comma-separated variants to train (default: all of the recipe's; the first, "
        "matryoshka, is the bundled model): matryoshka,fixed-64,fixed-4,content-keys",
    )
    p.add_argument("--recipe", type=Path, default=None, help="recipe YAML (default: bundled)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe key, e.g. --set stage2.steps=500; repeatable",
    )
    p.add_argument(
        "--ship",
        action="store_true",
        help="copy the first variant's model into mqt_llava/assets/default-model",
    )
    p.set_defaults(run=lambda a: shapes(a.out, a.quick, a.variants, a.recipe, a.overrides, a.ship))
