"""MQT-LLaVA on vLLM: an out-of-tree model whose visual-token budget is chosen per request.

Installing `mqt-llava[vllm]` declares a `vllm.general_plugins` entry point that calls
[`register`] in every vLLM process, so that a folder written by `mqt-llava convert` or `train`
runs with `vllm.LLM(model=DIR)` or vLLM's OpenAI server, with no code from the user. The budget
of a prompt is `mm_processor_kwargs={"num_visual_tokens": m}` (offline, per prompt) or
`extra_body={"mm_processor_kwargs": {"num_visual_tokens": m}}` (OpenAI server, per request; the
server needs `--trust-request-mm-kwargs`); the config's default when absent.

Nothing here imports vLLM until [`register`] runs, so the package imports without it.
"""

from __future__ import annotations

ARCHITECTURE = "MQTLlavaForConditionalGeneration"


def register() -> None:
    """Registers our config with `transformers` and our model (and processor) with vLLM.

    Called by vLLM through the entry point; calling it again is harmless.
    """
    from vllm import ModelRegistry
    from vllm.model_executor.models.config import MODELS_CONFIG_MAP

    import mqt_llava.model  # noqa: F401  (registers MQTLlavaConfig with AutoConfig)

    from .checks import MQTLlavaConfigCheck

    if ARCHITECTURE not in ModelRegistry.get_supported_archs():
        ModelRegistry.register_model(ARCHITECTURE, "mqt_llava.serving.vllm.model:MQTLlavaForVLLM")
    # vLLM's per-architecture hook: refuses an unsupported head size before any worker starts.
    MODELS_CONFIG_MAP.setdefault(ARCHITECTURE, MQTLlavaConfigCheck)
