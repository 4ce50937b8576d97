"""MQT-LLaVA as a vLLM model: our vision tower and connector, vLLM's own language model.

The language model is whatever vLLM runs for the text config (Llama, Qwen2, ...), so it gets
paged attention, continuous batching and tensor/pipeline parallelism. The vision tower (any
`transformers` vision backbone) and the Matryoshka Query Transformer are our `transformers`
modules, replicated on each rank: small next to the language model.

Each image is encoded at M visual tokens and sliced to its request's m (the prefix property
makes that exact); the M tokens of recent images are kept in a small cache keyed by their
pixels, so a repeated image at another budget skips the vision tower.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel
from vllm.config import VllmConfig
from vllm.model_executor.model_loader.weight_utils import default_weight_loader
from vllm.model_executor.models.interfaces import (
    MultiModalEmbeddings,
    SupportsMultiModal,
    SupportsPP,
)
from vllm.model_executor.models.utils import init_vllm_registered_model, maybe_prefix
from vllm.multimodal import MULTIMODAL_REGISTRY
from vllm.sequence import IntermediateTensors

from ...model import MQTLlavaConfig, MQTLlavaForConditionalGeneration
from ...model.modeling import build_connector
from .checks import check_head_size
from .processing import (
    BUDGET_KEY,
    MQTLlavaDummyInputsBuilder,
    MQTLlavaMultiModalProcessor,
    MQTLlavaProcessingInfo,
)

FEATURE_CACHE_SIZE = 32  # images whose M visual tokens are kept (M x D each)


@MULTIMODAL_REGISTRY.register_processor(
    MQTLlavaMultiModalProcessor,
    info=MQTLlavaProcessingInfo,
    dummy_inputs=MQTLlavaDummyInputsBuilder,
)
class MQTLlavaForVLLM(nn.Module, SupportsMultiModal, SupportsPP):
    """vLLM's view of `MQTLlavaForConditionalGeneration`, loading the same weight files."""

    @classmethod
    def get_placeholder_str(cls, modality: str, i: int) -> str | None:
        if modality.startswith("image"):
            return "<image>"
        raise ValueError(f"MQT-LLaVA takes images only, got modality {modality!r}.")

    def __init__(self, *, vllm_config: VllmConfig, prefix: str = "") -> None:
        super().__init__()
        config: MQTLlavaConfig = vllm_config.model_config.hf_config
        check_head_size(config)
        self.config = config
        # The release's <image> id lies outside the LM vocabulary: vLLM then masks it to 0
        # before the text embedding, as our model does.
        self.configure_mm_token_handling(config.text_config.vocab_size, [config.image_token_id])
        with self._mark_tower_model(vllm_config, "image"):
            self.vision_tower = AutoModel.from_config(config.vision_config)
            self.connector = build_connector(config)
        with self._mark_language_model(vllm_config):
            self.language_model = init_vllm_registered_model(
                vllm_config=vllm_config,
                hf_config=config.text_config,
                prefix=maybe_prefix(prefix, "language_model"),
            )
        self.make_empty_intermediate_tensors = self.language_model.make_empty_intermediate_tensors
        self._dtype = vllm_config.model_config.dtype
        self._features: OrderedDict[str, torch.Tensor] = OrderedDict()

    # -- images -----------------------------------------------------------------------------------
    # The same feature selection as our transformers model (layer, CLS), shared, not copied.
    get_vision_features = MQTLlavaForConditionalGeneration.get_vision_features

    def _tokens_at_m(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(I, M, D) visual tokens of images, from the cache where the pixels were seen."""
        keys = [_pixel_key(p) for p in pixel_values]
        missing = [i for i, key in enumerate(keys) if key not in self._features]
        if missing:
            features = self.get_vision_features(pixel_values[missing])
            tokens = self.connector(
                features.to(self.connector.query.dtype), self.config.num_queries
            )
            for i, row in zip(missing, tokens, strict=True):
                self._features[keys[i]] = row
        for key in keys:
            self._features.move_to_end(key)
        while len(self._features) > FEATURE_CACHE_SIZE:
            self._features.popitem(last=False)
        return torch.stack([self._features[key] for key in keys])

    def embed_multimodal(self, **kwargs: object) -> MultiModalEmbeddings:
        """One (m_i, D) tensor per image, in prompt order: the first m_i of its M tokens."""
        pixel_values = kwargs.get("pixel_values")
        if pixel_values is None:
            return []
        if isinstance(pixel_values, (list, tuple)):
            pixel_values = torch.stack(list(pixel_values))
        budgets = kwargs[BUDGET_KEY]
        budgets = [int(b) for b in (budgets.tolist() if torch.is_tensor(budgets) else budgets)]
        with torch.no_grad():
            tokens = self._tokens_at_m(pixel_values)
        return tuple(t[:m].to(self._dtype) for t, m in zip(tokens, budgets, strict=True))

    # -- text -------------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor | None,
        positions: torch.Tensor,
        intermediate_tensors: IntermediateTensors | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: object,
    ) -> torch.Tensor | IntermediateTensors:
        if intermediate_tensors is not None:
            inputs_embeds = None
        return self.language_model.model(
            input_ids, positions, intermediate_tensors, inputs_embeds=inputs_embeds
        )

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor | None:
        return self.language_model.compute_logits(hidden_states)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        """Loads a folder written by `save_pretrained` (`vision_tower.`, `connector.`,
        `language_model.` keys); the language model's own loader takes its part.

        Raises:
            ValueError: If the folder lacks some of the vision tower's or connector's weights.
        """
        connector = dict(self.connector.named_parameters(prefix="connector"))
        connector.update(self.connector.named_buffers(prefix="connector"))
        tower: dict[str, torch.Tensor] = {}
        loaded: set[str] = set()

        def text_weights() -> Iterable[tuple[str, torch.Tensor]]:
            for name, tensor in weights:
                if name.startswith("language_model."):
                    yield name.removeprefix("language_model."), tensor
                elif name.startswith("vision_tower."):
                    tower[name.removeprefix("vision_tower.")] = tensor
                elif name in connector:
                    default_weight_loader(connector[name], tensor)
                    loaded.add(name)
                # Anything else (e.g. a tower's unused head) is not part of the model.

        loaded |= {f"language_model.{n}" for n in self.language_model.load_weights(text_weights())}
        loaded |= {f"vision_tower.{n}" for n in load_vision_tower(self.vision_tower, tower)}
        missing = sorted(set(connector) - loaded)
        if missing:
            raise ValueError(f"mqt-llava: the model folder lacks connector weights {missing}")
        return loaded


def load_vision_tower(tower: PreTrainedModel, state: dict[str, torch.Tensor]) -> set[str]:
    """Loads a vision tower's weights as `save_pretrained` wrote them; returns the names loaded.

    A tower's weights are saved under its checkpoint names, which transformers 5 may rename at
    load (DINOv2's `attention.attention.query` is the module `attention.q_proj`). The renaming is
    transformers' own, applied by its `from_pretrained`, not copied here.

    Raises:
        ValueError: If `state` lacks some of the tower's weights.
    """
    own = set(tower.state_dict())
    if state and set(state) != own:  # checkpoint names: let transformers map them
        reference, info = type(tower).from_pretrained(
            None,
            config=tower.config,
            state_dict=state,
            dtype=next(iter(state.values())).dtype,
            output_loading_info=True,
        )
        state = {k: v for k, v in reference.state_dict().items() if k not in info["missing_keys"]}
    missing = sorted(own - set(state))
    if missing:
        raise ValueError(
            f"mqt-llava: the model folder lacks {len(missing)} vision tower weights "
            f"(first: vision_tower.{missing[0]})"
        )
    tower.load_state_dict(state, strict=True)
    return set(state)


def _pixel_key(pixels: torch.Tensor) -> str:
    """A content hash of one preprocessed image (its bytes, shape and dtype)."""
    data = pixels.detach().contiguous().cpu()
    digest = hashlib.blake2b(data.view(torch.uint8).numpy().tobytes(), digest_size=16)
    digest.update(f"{tuple(data.shape)}{data.dtype}".encode())
    return digest.hexdigest()
