"""MQT-LLaVA: any Hugging Face vision backbone + Matryoshka Query Transformer + any causal LM."""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoModel, AutoModelForCausalLM, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache
from transformers.utils import ModelOutput

from .configuration import MQTLlavaConfig, check_num_visual_tokens, resolve_num_visual_tokens
from .query_transformer import MatryoshkaQueryTransformer

IGNORE_INDEX = -100


def labelled_columns(labels: torch.Tensor) -> torch.Tensor:
    """The columns whose next token is labelled in some row: the logits a loss reads.

    Passed as `logits_to_keep` with `labels`, they give the full next-token loss while the
    vocabulary projection runs only there (a short answer in a long prompt needs a few columns).
    """
    return (labels[:, 1:] != IGNORE_INDEX).any(dim=0).nonzero().squeeze(1)


def _is_meta(tensor: torch.Tensor) -> bool:
    return tensor.device.type == "meta"


def _any(mask: torch.Tensor, *, on_meta: bool) -> bool:
    """`mask.any()` as a Python bool; `on_meta` for meta tensors, which hold no values."""
    return on_meta if _is_meta(mask) else bool(mask.any())


@dataclass
class MQTLlavaCausalLMOutput(ModelOutput):
    """Output of [`MQTLlavaForConditionalGeneration.forward`].

    Args:
        loss: Mean next-token cross-entropy over labelled positions, when `labels` are given.
        logits: (B, L, V) language-model logits.
        cache: The language model's KV cache, for generation.
        hidden_states: The language model's hidden states, with `output_hidden_states=True`.
        attentions: The language model's attention maps, with `output_attentions=True`.
        image_features: (total visual tokens, D) the spliced visual tokens, when images were given.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    cache: Cache | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    image_features: torch.FloatTensor | None = None


class MQTLlavaPreTrainedModel(PreTrainedModel):
    config: MQTLlavaConfig
    base_model_prefix = ""
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_compile_fullgraph = False  # the number of image tokens is data-dependent
    _no_split_modules = ["MatryoshkaQueryTransformer"]

    def _init_weights(self, module: nn.Module) -> None:
        # The backbones are PreTrainedModels and initialise themselves; the connector is ours.
        if isinstance(module, MatryoshkaQueryTransformer):
            module.reset_parameters(init)


def build_connector(config: MQTLlavaConfig) -> MatryoshkaQueryTransformer:
    """The connector `config` describes: M queries from the vision width to the LM width."""
    return MatryoshkaQueryTransformer(
        num_queries=config.num_queries,
        query_grid=tuple(config.query_grid),
        feature_grid=config.feature_grid,
        vision_dim=config.vision_config.hidden_size,
        output_dim=config.text_config.hidden_size,
        num_heads=config.num_heads,
        layer_norm_eps=config.connector_layer_norm_eps,
        key_source=config.key_source,
    )


class MQTLlavaForConditionalGeneration(MQTLlavaPreTrainedModel, GenerationMixin):
    """MQT-LLaVA: an image becomes any number m <= M of visual tokens, chosen per call.

    The model composes three parts: `vision_tower` (any `AutoModel` vision backbone),
    `connector` (the [`MatryoshkaQueryTransformer`]) and `language_model` (any
    `AutoModelForCausalLM`). `input_ids` carry one `image_token_id` per visual token (the
    processor expands each `<image>` into m of them); the model fills those positions with the
    connector's output by one masked assignment.
    """

    def __init__(self, config: MQTLlavaConfig):
        super().__init__(config)
        self.vision_tower = AutoModel.from_config(config.vision_config)
        self.connector = build_connector(config)
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        self.post_init()

    # -- plumbing that generation, resizing and PEFT rely on ------------------------------------
    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def get_decoder(self) -> nn.Module:
        return self.language_model.get_decoder()

    # -- images ---------------------------------------------------------------------------------
    def get_vision_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The vision tower's features that feed the connector.

        Args:
            pixel_values: (B, 3, H, W) preprocessed images.

        Returns:
            (B, N, C) hidden states of `config.vision_feature_layer`, CLS (and register tokens,
            `vision_config.num_register_tokens`) dropped for the `"default"` strategy.
            Gradients flow (nothing here runs under no-grad).
        """
        dtype = next(self.vision_tower.parameters()).dtype
        # Only the selected layer's hidden states are kept (transformers captures by index).
        layer = self.config.vision_feature_layer
        outputs = self.vision_tower(pixel_values.to(dtype), output_hidden_states=layer)
        features = outputs.hidden_states[self.config.vision_feature_layer]  # (B, N(+1), C)
        if self.config.vision_feature_select_strategy == "default":
            # CLS, plus the register tokens of backbones that have them (DINOv2 with registers)
            prefix = 1 + getattr(self.config.vision_config, "num_register_tokens", 0)
            features = features[:, prefix:]
        return features

    def get_image_features(
        self, pixel_values: torch.Tensor, num_visual_tokens: int | None = None
    ) -> torch.Tensor:
        """Encodes images into visual tokens in the language model's embedding space.

        Args:
            pixel_values: (B, 3, H, W) preprocessed images.
            num_visual_tokens: m in [1, M]; the config's default when `None`.

        Returns:
            (B, m, D) visual tokens. By the prefix property, `[:, :k]` of the result is the
            result for budget k.
        """
        if num_visual_tokens is None:
            num_visual_tokens = self.config.num_visual_tokens
        m = check_num_visual_tokens(num_visual_tokens, self.config.num_queries)
        features = self.get_vision_features(pixel_values)  # (B, N, C)
        tokens = self.connector(features.to(self.connector.query.dtype), m)  # (B, m, D)
        return tokens.to(self.get_input_embeddings().weight.dtype)

    def _visual_tokens_for_batch(
        self, pixel_values: torch.Tensor, num_visual_tokens
    ) -> tuple[torch.Tensor, list[int]]:
        """All images' visual tokens, flattened in order: (sum of budgets, D)."""
        budgets = resolve_num_visual_tokens(
            num_visual_tokens,
            pixel_values.shape[0],
            self.config.num_queries,
            self.config.num_visual_tokens,
        )
        m_max = max(budgets)
        tokens = self.get_image_features(pixel_values, m_max)  # (I, m_max, D)
        if min(budgets) == m_max:
            return tokens.flatten(0, 1), budgets
        # Mixed budgets: encode once at the largest and keep each image's prefix.
        keep = (
            torch.arange(m_max, device=tokens.device)[None]
            < torch.tensor(budgets, device=tokens.device)[:, None]
        )  # (I, m_max)
        return tokens[keep], budgets

    def merge_image_features(
        self,
        input_ids: torch.Tensor,
        inputs_embeds: torch.Tensor,
        image_features: torch.Tensor,
        budgets: list[int] | None = None,
    ) -> torch.Tensor:
        """Writes the visual tokens into the placeholder positions, in reading order.

        Args:
            input_ids: (B, L) ids with `image_token_id` at every visual-token position.
            inputs_embeds: (B, L, D) text embeddings.
            image_features: (T, D) visual tokens of all images, in order.
            budgets: Per-image budgets, only used to word the error.

        Returns:
            (B, L, D) embeddings with the visual tokens spliced in.

        Raises:
            ValueError: If the number of placeholders differs from the number of visual tokens.
        """
        image_mask = input_ids == self.config.image_token_id  # (B, L)
        # Meta tensors (shape inference, `init_empty_weights`) hold no values to count.
        n_placeholders = image_features.shape[0] if _is_meta(input_ids) else int(image_mask.sum())
        if n_placeholders != image_features.shape[0]:
            detail = f" (budgets per image: {budgets})" if budgets is not None else ""
            raise ValueError(
                f"The prompt holds {n_placeholders} image placeholder tokens but the images give "
                f"{image_features.shape[0]} visual tokens{detail}. Build inputs with "
                "MQTLlavaProcessor using the same num_visual_tokens as the model call, with one "
                "<image> per image."
            )
        mask = image_mask.unsqueeze(-1).expand_as(inputs_embeds)
        return inputs_embeds.masked_scatter(mask, image_features.to(inputs_embeds.dtype))

    # -- forward ----------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        num_visual_tokens: int | list[int] | torch.Tensor | None = None,
        visual_tokens: torch.FloatTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> MQTLlavaCausalLMOutput:
        """Runs the language model on text with the images' visual tokens spliced in.

        Args:
            input_ids: (B, L) token ids; each image contributes m_i `image_token_id` entries.
            pixel_values: (I, 3, H, W) the images, in the order their placeholders appear.
            num_visual_tokens: One budget for all images or one per image (each in [1, M]);
                the config's default when `None`.
            visual_tokens: Precomputed visual tokens instead of `pixel_values`: (T, D) for all
                images in order, e.g. `get_image_features(pixels, M)` sliced per budget (the
                prefix property makes that exact). Ignored on steps without placeholders
                (decoding).
            attention_mask: (B, L) 1 for real tokens, 0 for padding.
            position_ids: (B, L) optional positions.
            cache: KV cache of earlier steps (generation).
            inputs_embeds: (B, L, D) alternative to `input_ids` for text-only calls.
            labels: (B, L) targets; placeholder positions are ignored in the loss.
            use_cache: Return a KV cache.
            logits_to_keep: Compute logits for the last k positions only (0 = all), or for the
                columns in a 1-D tensor. With `labels`, a tensor's loss is over those columns'
                next-token targets: give every column whose next token is labelled (see
                [`labelled_columns`]) and it equals the full loss, without the vocabulary
                projection of the other positions (training on short answers).

        Returns:
            [`MQTLlavaCausalLMOutput`].
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids and inputs_embeds.")
        if pixel_values is not None and visual_tokens is not None:
            raise ValueError("Pass pixel_values or visual_tokens, not both.")
        image_features = None
        if input_ids is not None:
            image_mask = input_ids == self.config.image_token_id
            has_images = pixel_values is not None or visual_tokens is not None
            if not has_images and cache is None and _any(image_mask, on_meta=False):
                raise ValueError(
                    f"input_ids hold {int(image_mask.sum())} image placeholder tokens but no "
                    "pixel_values were given."
                )
            # Placeholder ids may lie outside the LM vocabulary: embed a harmless id instead.
            inputs_embeds = self.get_input_embeddings()(input_ids.masked_fill(image_mask, 0))
            if labels is not None:
                labels = labels.masked_fill(image_mask, IGNORE_INDEX)
        if pixel_values is not None:
            if input_ids is None:
                raise ValueError(
                    "pixel_values need input_ids, whose placeholders locate the images."
                )
            image_features, budgets = self._visual_tokens_for_batch(pixel_values, num_visual_tokens)
            inputs_embeds = self.merge_image_features(
                input_ids, inputs_embeds, image_features, budgets
            )
        elif visual_tokens is not None and input_ids is not None and _any(image_mask, on_meta=True):
            image_features = visual_tokens.reshape(-1, visual_tokens.shape[-1])
            inputs_embeds = self.merge_image_features(input_ids, inputs_embeds, image_features)
        self._check_context_length(inputs_embeds.shape[1], cache)
        # the LM shifts labels against all of its logits: kept columns need the loss here
        columns = isinstance(logits_to_keep, torch.Tensor) and labels is not None
        outputs = self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            labels=None if columns else labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )
        loss = outputs.loss
        if columns:
            targets = nn.functional.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)
            loss = self.language_model.loss_function(
                logits=outputs.logits,
                labels=None,
                shift_labels=targets[:, logits_to_keep.to(targets.device)],
                vocab_size=self.config.text_config.vocab_size,
                **kwargs,
            )
        return MQTLlavaCausalLMOutput(
            loss=loss,
            logits=outputs.logits,
            cache=getattr(outputs, "cache", None),
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            image_features=image_features,
        )

    def _check_context_length(self, new_tokens: int, cache: Cache | None) -> None:
        limit = getattr(self.config.text_config, "max_position_embeddings", None)
        if limit is None:
            return
        total = new_tokens + (cache.get_seq_length() if cache is not None else 0)
        if total > limit:
            raise ValueError(
                f"The sequence has {total} tokens (visual tokens included) but the language model "
                f"takes at most {limit}: shorten the prompt, lower num_visual_tokens or "
                "max_new_tokens."
            )
