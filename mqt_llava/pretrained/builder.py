"""An MQT-LLaVA made of the cached pretrained backbones and a fresh connector.

DINOv2 ViT-S/14 (224 px, a 16x16 grid of 384-wide patch features) feeds a Matryoshka Query
Transformer whose tokens go to SmolLM2-135M-Instruct (width 576). The model goes through the same
generic path as any other backbone pair (`training.builder.build_from_parts`): the tower and the
LM load with their own `from_pretrained`, only the connector is new.
"""

from __future__ import annotations

from pathlib import Path

from ..model import MQTLlavaForConditionalGeneration, MQTLlavaProcessor
from .assemble import DINOV2_DIR, SMOLLM2_DIR, backbones_dir

# DINOv2 ViT-S: 384-wide features, 64-wide heads as in the tower itself.
CONNECTOR_HEADS = 6
# The second-to-last layer's patch tokens (pre-LayerNorm), as LLaVA takes CLIP's and Prismatic
# takes DINOv2's; CLS dropped ("default").
FEATURE_LAYER = -2


def build_pretrained_model(
    backbones: Path | str | None = None,
    num_queries: int = 64,
    num_visual_tokens: int | None = None,
    vision_feature_layer: int = FEATURE_LAYER,
    key_source: str = "position",
) -> tuple[MQTLlavaForConditionalGeneration, MQTLlavaProcessor]:
    """DINOv2 + a fresh Matryoshka connector with `num_queries` queries + SmolLM2.

    Args:
        backbones: The assembled backbones folder (`mqt-llava backbones`); the default location
            when `None`.
        num_queries: M, the largest visual-token budget (a perfect square).
        num_visual_tokens: Default budget; M when `None`.
        vision_feature_layer: Which of DINOv2's hidden states feeds the connector.
        key_source: The connector's keys: `position` (the release) or `content`.

    Returns:
        `(model, processor)`; the processor uses SmolLM2's chat template (with `<image>` parts) and
        has `<image>` added to the tokenizer.

    Raises:
        FileNotFoundError: If the backbones have not been assembled.
    """
    from ..training.builder import build_from_parts
    from ..training.config import ModelInit

    folder = backbones_dir(backbones)
    spec = ModelInit(
        vision=str(folder / DINOV2_DIR),
        text=str(folder / SMOLLM2_DIR),
        connector={
            "num_queries": num_queries,
            "num_heads": CONNECTOR_HEADS,
            "key_source": key_source,
        },
        vision_feature_layer=vision_feature_layer,
        vision_feature_select_strategy="default",
        num_visual_tokens=num_visual_tokens,
        image_aspect_ratio="pad",
    )
    model, parts_processor = build_from_parts(spec)
    tokenizer = parts_processor.tokenizer
    # One template, SmolLM2's (image-aware), for the processor too: saved with the model it is
    # what a reload uses, whatever template name a caller asks for (`llava_v1`, `plain`, ...).
    processor = MQTLlavaProcessor(
        parts_processor.image_processor,
        tokenizer,
        chat_template=tokenizer.chat_template,
        num_queries=parts_processor.num_queries,
        num_visual_tokens=parts_processor.num_visual_tokens,
        image_aspect_ratio=parts_processor.image_aspect_ratio,
    )
    return model.eval(), processor
