"""Seeing what each visual token looks at: Grad-CAM of single tokens and the connector's attention.

    >>> from mqt_llava.visualization import gradcam, connector_attention
    >>> result = gradcam(model, processor, "image.png", "What colour is the circle?", [8, 64])
    >>> result[8][0]                       # (rows, cols) map of visual token 0 at 8 tokens
    >>> connector_attention(model, [8])    # {8: (8, rows, cols)}, the same for every image

Names are imported lazily, so that `mqt-llava --help` (which imports `.commands`) stays torch-free.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "GradCAMResult": ".grad_cam",
    "Target": ".grad_cam",
    "gradcam": ".grad_cam",
    "model_view": ".grad_cam",
    "parse_target": ".grad_cam",
    "connector_attention": ".attention",
    "hit_rates": ".pointing",
    "pointing_game": ".pointing",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
