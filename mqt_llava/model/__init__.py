"""The model layer: configuration, connector, modeling, processing and checkpoint conversion.

Importing it registers the model with the `transformers` Auto classes, so that
`AutoConfig`, `AutoModelForImageTextToText`, `AutoModelForCausalLM` and `AutoProcessor` load a
saved MQT-LLaVA folder.
"""

from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
)

from .configuration import MQTLlavaConfig, check_num_visual_tokens, resolve_num_visual_tokens
from .modeling import MQTLlavaCausalLMOutput, MQTLlavaForConditionalGeneration
from .processing import MQTLlavaProcessor
from .query_transformer import MatryoshkaQueryTransformer, sincos_2d_table
from .tokenization import LlavaLlamaTokenizer

AutoConfig.register(MQTLlavaConfig.model_type, MQTLlavaConfig, exist_ok=True)
AutoModelForImageTextToText.register(
    MQTLlavaConfig, MQTLlavaForConditionalGeneration, exist_ok=True
)
AutoModelForCausalLM.register(MQTLlavaConfig, MQTLlavaForConditionalGeneration, exist_ok=True)
AutoProcessor.register(MQTLlavaConfig, MQTLlavaProcessor, exist_ok=True)
# Converted release checkpoints name this class in tokenizer_config.json (tokenizer.model kept).
AutoTokenizer.register(MQTLlavaConfig, tokenizer_class=LlavaLlamaTokenizer, exist_ok=True)

__all__ = [
    "LlavaLlamaTokenizer",
    "MQTLlavaCausalLMOutput",
    "MQTLlavaConfig",
    "MQTLlavaForConditionalGeneration",
    "MQTLlavaProcessor",
    "MatryoshkaQueryTransformer",
    "check_num_visual_tokens",
    "resolve_num_visual_tokens",
    "sincos_2d_table",
]
