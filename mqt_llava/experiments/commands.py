"""`mqt-llava experiment shapes`: the ShapesVQA model and budget study, from nothing.

torch is imported only when the command runs (the module is imported for `--help`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
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
    ship: Path | None,
) -> None:
    """Train and evaluate the ShapesVQA models (the bundled default model and the budget study)."""
    from .shapes import run_shapes
    from .shapes_recipe import load_shapes_recipe

    if ship is not None and Path(out).resolve() in (ship.resolve(), *ship.resolve().parents):
        raise ValueError(f"--ship {ship} is inside --out {out}; give a folder outside the run")
    config = load_shapes_recipe(recipe, overrides, quick)
    payload = run_shapes(out, config, variants)
    print((Path(out) / "results.md").read_text(), end="")
    print(f"seconds: {json.dumps(payload['seconds'])}")
    first = next(iter(payload["results"]))
    compare_with_bundled(payload["results"][first])
    if ship is not None:
        ship_model(Path(out) / first, payload["results"][first], ship)


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


def ship_destination(text: str) -> Path:
    """`--ship DIR`: a new or empty folder, or a model folder (with `config.json`) to replace.

    Checked while the arguments are parsed, hours before the copy: replacing a folder deletes it,
    so anything that does not look like a model folder is refused.
    """
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not (path / "config.json").is_file():
        raise argparse.ArgumentTypeError(
            f"{text} is a folder that holds no model (no config.json); "
            "give a new or empty folder, or a model folder to replace"
        )
    return path


def ship_model(folder: Path, results: dict[str, dict[str, float]], dest: Path) -> Path:
    """Writes a trained model folder, without the trainer's bookkeeping, to `dest`.

    It writes only where it is told: the maintainers refresh the bundled model from a source
    checkout with `--ship mqt_llava/assets/default-model`. The new folder is staged beside `dest`
    and renamed into place, so `dest` holds the old model or the new one, never a mix. A
    `budget_policy.json` in the old `dest` is kept when the new model brings none (it was
    calibrated on the old model: a line says so, and docs/shapes.md says how to recalibrate).

    Args:
        folder: The trained model folder (a variant's folder of a run).
        results: Its accuracy per budget and question type, written as `shapes_results.json`.
        dest: The folder to write: new, empty, or a model folder, which is replaced.

    Returns:
        `dest`.
    """
    from ..inference.budget import POLICY_FILE

    dest = Path(dest)
    try:  # again: the folder may have changed while the run trained
        ship_destination(str(dest))
    except argparse.ArgumentTypeError as err:
        raise ValueError(f"--ship {err}") from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.staging-", dir=dest.parent))
    try:
        staged = staging / dest.name
        shutil.copytree(folder, staged, ignore=shutil.ignore_patterns(*_NOT_SHIPPED))
        if (folder.parent / "recipe.yaml").is_file():  # how it was made
            shutil.copy2(folder.parent / "recipe.yaml", staged / "shapes_recipe.yaml")
        if (folder / "recipe.yaml").is_file():  # its stage 2, as `mqt-llava train` ran it
            shutil.copy2(folder / "recipe.yaml", staged / "train_recipe.yaml")
        payload = {"source": str(folder), "results": results}
        (staged / RESULTS_FILE).write_text(json.dumps(payload, indent=1) + "\n")
        kept_policy = (dest / POLICY_FILE).is_file() and not (staged / POLICY_FILE).exists()
        if kept_policy:
            shutil.copy2(dest / POLICY_FILE, staged / POLICY_FILE)
        if dest.exists():
            previous = staging / "previous"
            dest.rename(previous)
            try:
                staged.rename(dest)
            except OSError:
                previous.rename(dest)  # put the old model back
                raise
        else:
            staged.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"shipped {folder} to {dest}")
    if kept_policy:
        print(
            f"kept {dest / POLICY_FILE} from the model it replaced: it was calibrated on that "
            "model, recalibrate it for this one (docs/shapes.md)"
        )
    return dest


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
        type=ship_destination,
        default=None,
        metavar="DIR",
        help="write the first variant's model (without the trainer's bookkeeping) to DIR, "
        "replacing the model folder there; from a source checkout, "
        "--ship mqt_llava/assets/default-model refreshes the bundled model",
    )
    p.set_defaults(run=lambda a: shapes(a.out, a.quick, a.variants, a.recipe, a.overrides, a.ship))
