"""Training: the budget sampler, the Trainer, YAML recipes for the release's two stages.

`mqt-llava train RECIPE.yaml [--set key=value ...]`, or from Python::

    from mqt_llava.training import load_recipe, train
    result = train(load_recipe("stage2", ["data.train_json=mix665k.json"]))
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "BudgetSampler": ".sampler",
    "load_recipe": ".config",
    "RecipeConfig": ".config",
    "train": ".recipe",
    "TrainResult": ".recipe",
    "MQTTrainer": ".trainer",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_LAZY)
