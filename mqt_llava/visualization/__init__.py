"""Seeing what each visual token looks at: Grad-CAM of single tokens and the connector's attention.

>>> from mqt_llava.visualization import gradcam, connector_attention
>>> result = gradcam(model, processor, "image.png", "What colour is the circle?", [8, 64])
>>> result[8][0]                       # (rows, cols) map of visual token 0 at 8 tokens
>>> connector_attention(model, [8])    # {8: (8, rows, cols)}, the same for every image
"""

from .attention import connector_attention
from .gradcam import GradCAMResult, Target, gradcam, model_view, parse_target

__all__ = [
    "GradCAMResult",
    "Target",
    "connector_attention",
    "gradcam",
    "model_view",
    "parse_target",
]
