"""`mqt-llava train RECIPE.yaml [--set key=value ...]` (imports torch only when it runs)."""

from __future__ import annotations

import argparse
import os

from .. import cli_args


def train(recipe: str, overrides: list[str], print_config: bool) -> None:
    """Train one stage of a recipe (YAML file or bundled name: stage1, stage2, stage2-lora)."""
    import yaml

    from .checks import check_applicable
    from .config import load_recipe, to_dict

    # --print-config checks a recipe before its data exist; training needs them
    config = load_recipe(recipe, overrides, require_data=not print_config)
    check_applicable(config)
    if print_config:
        print(yaml.safe_dump(to_dict(config), sort_keys=False), end="")
        return
    from .recipe import train as run
    from .trainer import end_process_group

    result = run(config)
    end_process_group()
    losses = result.losses
    if losses and int(os.environ.get("RANK", "0")) == 0:  # once, not per process
        print(
            f"{config.name}: {result.global_step} steps, loss {losses[0]:.4f} -> {losses[-1]:.4f}; "
            f"outputs in {result.output_dir}"
        )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the `train` subcommand."""
    summary = (train.__doc__ or "").strip().splitlines()[0]
    p = subparsers.add_parser(
        "train",
        help=summary,
        description=summary
        + " Keys of the recipe are overridden with --set, e.g. --set data.train_json=data.json "
        "--set training.learning_rate=2e-5. Under torchrun / accelerate launch every process runs "
        "this same command.",
    )
    p.add_argument("recipe", help="recipe YAML, or stage1 | stage2 | stage2-lora")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe key (dotted path; value parsed as YAML); repeatable",
    )
    p.add_argument("--print-config", action="store_true", help="print the resolved recipe and exit")
    cli_args.add_threads_argument(p)
    p.set_defaults(run=lambda a: train(a.recipe, a.overrides, a.print_config))
