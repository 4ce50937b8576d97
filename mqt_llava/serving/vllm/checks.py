"""Checks that run in vLLM's front-end process, before any worker starts."""

from __future__ import annotations

from typing import Any

from ...model import MQTLlavaConfig


class UnsupportedHeadSizeError(NotImplementedError):
    """The platform's attention cannot run this head size.

    Not a `ValueError`: vLLM's pydantic configs would wrap that in a multi-line
    `ValidationError`; this one reaches the caller as our one line.
    """


def text_head_size(config: MQTLlavaConfig) -> int:
    """The language model's attention head size."""
    text = config.text_config
    head = getattr(text, "head_dim", None)
    return int(head) if head else text.hidden_size // text.num_attention_heads


def check_head_size(config: MQTLlavaConfig) -> None:
    """Refuses, in one line, a head size the current platform's attention cannot run.

    vLLM's CPU attention runs head sizes 32, 64, 80, ... only (the bundled ShapesVQA model has
    40, the original-code parity fixture 16).

    Raises:
        UnsupportedHeadSizeError: On CPU, for a head size outside the CPU backend's list.
    """
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return
    from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

    supported = CPUAttentionBackend.get_supported_head_sizes()
    head = text_head_size(config)
    if head not in supported:
        raise UnsupportedHeadSizeError(
            f"mqt-llava: this model's language model has head size {head}, which vLLM's CPU "
            f"attention does not support (supported: {', '.join(map(str, supported))}); serve "
            "it with `mqt-llava serve`, or on a GPU."
        )


class MQTLlavaConfigCheck:
    """vLLM's per-architecture config hook: runs in the front-end process, before any worker."""

    @staticmethod
    def verify_and_update_config(vllm_config: Any) -> None:
        check_head_size(vllm_config.model_config.hf_config)

    @staticmethod
    def verify_and_update_model_config(model_config: Any) -> None:
        return
