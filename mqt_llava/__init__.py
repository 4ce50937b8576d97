"""mqt-llava: vision-language models with an elastic visual-token budget.

    >>> import mqt_llava
    >>> vlm = mqt_llava.load("path/to/model")          # or load() for the bundled default model
    >>> vlm.ask("image.png", "What colour is the circle?", num_visual_tokens=16)

Names are imported lazily, so that light subcommands (`score`, `data`) do not pay for torch.
`import mqt_llava` registers the model with the `transformers` Auto classes: at once if
`transformers` is already imported, otherwise right after it is, so that
`AutoModelForImageTextToText.from_pretrained(folder)` works in either import order.
"""

import importlib.abc
import importlib.machinery
import sys
from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "MQTLlava": "mqt_llava.inference",
    "load": "mqt_llava.inference",
    "MQTLlavaConfig": "mqt_llava.model",
    "MQTLlavaForConditionalGeneration": "mqt_llava.model",
    "MQTLlavaProcessor": "mqt_llava.model",
    "MatryoshkaQueryTransformer": "mqt_llava.model",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mqt_llava' has no attribute {name!r}")


def _register_auto_classes() -> None:
    import_module("mqt_llava.model")  # registers on import


class _RegisterAfterTransformers(importlib.abc.MetaPathFinder):
    """Runs the Auto-class registration once `transformers` has been imported."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "transformers":
            return None
        sys.meta_path.remove(self)  # once; and lets the real finders locate transformers
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            _register_auto_classes()

        spec.loader.exec_module = exec_module
        return spec


if "transformers" in sys.modules:
    _register_auto_classes()
elif not any(isinstance(f, _RegisterAfterTransformers) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterTransformers())
