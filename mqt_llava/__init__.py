"""mqt-llava: vision-language models with an elastic visual-token budget.

    >>> import mqt_llava
    >>> vlm = mqt_llava.load("path/to/model")          # or load() for the bundled default model
    >>> vlm.ask("image.png", "What colour is the circle?", num_visual_tokens=16)

Names are imported lazily, so that light subcommands (`score`, `data`) do not pay for torch.
Importing `mqt_llava.model` registers the model with the `transformers` Auto classes.
"""

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
