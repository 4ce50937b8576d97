"""mqt-llava: vision-language models with an elastic visual-token budget.

>>> import mqt_llava
>>> vlm = mqt_llava.load("path/to/model")          # or load() for the bundled default model
>>> vlm.ask("image.png", "What colour is the circle?", num_visual_tokens=16)
"""

from .inference import MQTLlava, load
from .model import (
    MatryoshkaQueryTransformer,
    MQTLlavaConfig,
    MQTLlavaForConditionalGeneration,
    MQTLlavaProcessor,
)

__version__ = "0.1.0"

__all__ = [
    "MQTLlava",
    "MQTLlavaConfig",
    "MQTLlavaForConditionalGeneration",
    "MQTLlavaProcessor",
    "MatryoshkaQueryTransformer",
    "__version__",
    "load",
]
