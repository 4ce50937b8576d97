"""vLLM's multimodal processing for MQT-LLaVA: pixels, prompt ids and m placeholders per image.

vLLM tokenizes a prompt string in one piece; our processor (and the release) tokenizes the text
around each `<image>` separately, which differs for SentencePiece tokenizers (a dummy-prefix
token after each image). `_postprocess_prompt` re-tokenizes the text after each image the
processor's way, so vLLM sees the same ids as `MQTLlavaProcessor` and `generate`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from transformers import BatchFeature
from vllm.config.multimodal import MultiModalDummyOptions
from vllm.inputs import MultiModalDataDict
from vllm.multimodal.inputs import MultiModalFieldConfig, MultiModalKwargsItems
from vllm.multimodal.parse import MultiModalDataItems
from vllm.multimodal.processing import (
    BaseDummyInputsBuilder,
    BaseMultiModalProcessor,
    BaseProcessingInfo,
    ProcessorInputs,
    PromptReplacement,
    PromptUpdate,
)

from ...model import MQTLlavaConfig, MQTLlavaProcessor, check_num_visual_tokens

BUDGET_KEY = "num_visual_tokens"


class MQTLlavaProcessingInfo(BaseProcessingInfo):
    """What vLLM needs to know about our inputs: M, the default budget, the processor."""

    def get_hf_config(self) -> MQTLlavaConfig:
        return self.ctx.get_hf_config(MQTLlavaConfig)

    def get_hf_processor(self, **kwargs: object) -> MQTLlavaProcessor:
        # The budget is a call argument of our processor, never a constructor argument.
        return self.ctx.get_hf_processor(MQTLlavaProcessor)

    def get_supported_mm_limits(self) -> Mapping[str, int | None]:
        return {"image": None}

    def get_mm_max_tokens_per_item(
        self, seq_len: int, mm_counts: Mapping[str, int]
    ) -> Mapping[str, int]:
        return {"image": self.get_hf_config().num_queries}

    def resolve_budget(self, mm_kwargs: Mapping[str, object]) -> int:
        """The request's budget m (server-wide `--mm-processor-kwargs` merged), validated.

        Raises:
            ValueError: Our one-line message when m is not an integer in [1, M] (one integer per
                prompt: it applies to every image of the prompt).
        """
        config = self.get_hf_config()
        merged = self.ctx.get_merged_mm_kwargs(mm_kwargs)
        value = merged.get(BUDGET_KEY)
        if value is None:
            return config.num_visual_tokens
        return check_num_visual_tokens(value, config.num_queries)


class MQTLlavaDummyInputsBuilder(BaseDummyInputsBuilder[MQTLlavaProcessingInfo]):
    """Profiling inputs: `<image>` per image, images at the tower's input size."""

    def get_dummy_text(self, mm_counts: Mapping[str, int]) -> str:
        return self.info.get_hf_processor().image_token * mm_counts.get("image", 0)

    def get_dummy_mm_data(
        self,
        seq_len: int,
        mm_counts: Mapping[str, int],
        mm_options: MultiModalDummyOptions,
    ) -> MultiModalDataDict:
        side = self.info.get_hf_config().vision_config.image_size
        images = self._get_dummy_images(
            width=side,
            height=side,
            num_images=mm_counts.get("image", 0),
            overrides=mm_options.get("image") if mm_options else None,
        )
        return {"image": images}


class MQTLlavaMultiModalProcessor(BaseMultiModalProcessor[MQTLlavaProcessingInfo]):
    """Pixels from our processor; each image's `<image>` becomes m placeholder ids."""

    def get_dummy_inputs(
        self,
        seq_len: int,
        mm_counts: Mapping[str, int],
        mm_options: MultiModalDummyOptions,
    ) -> ProcessorInputs:
        # Profile at the largest budget, M, not at the config's default.
        inputs = super().get_dummy_inputs(seq_len, mm_counts, mm_options)
        budget = {BUDGET_KEY: self.info.get_hf_config().num_queries}
        return dataclasses.replace(inputs, hf_processor_mm_kwargs=budget)

    def apply(self, inputs: ProcessorInputs, timing_ctx: Any):
        # Validate first, so that a bad budget is our message (a 400 from the server).
        self.info.resolve_budget(inputs.hf_processor_mm_kwargs)
        return super().apply(inputs, timing_ctx)

    def _call_hf_processor(
        self, hf_data: Mapping[str, object], hf_kwargs: Mapping[str, object]
    ) -> BatchFeature:
        images = hf_data.get("images") or []
        if not isinstance(images, (list, tuple)):
            images = [images]
        pixels = self.info.get_hf_processor().preprocess_images(list(images))
        budget = self.info.resolve_budget(hf_kwargs)
        # The budget travels with each image: it is part of vLLM's cache key for the item.
        budgets = torch.full((len(images),), budget, dtype=torch.long)
        return BatchFeature({"pixel_values": pixels, BUDGET_KEY: budgets})

    def _get_mm_fields_config(
        self, hf_inputs: BatchFeature, hf_processor_mm_kwargs: Mapping[str, object]
    ) -> Mapping[str, MultiModalFieldConfig]:
        return {
            "pixel_values": MultiModalFieldConfig.batched("image"),
            BUDGET_KEY: MultiModalFieldConfig.batched("image"),
        }

    def _get_prompt_updates(
        self,
        mm_items: MultiModalDataItems,
        hf_processor_mm_kwargs: Mapping[str, object],
        out_mm_kwargs: MultiModalKwargsItems,
    ) -> Sequence[PromptUpdate]:
        image_token_id = self.info.get_hf_config().image_token_id
        items = out_mm_kwargs.get("image", [])

        def replacement(item_idx: int) -> list[int]:
            budget = int(items[item_idx][BUDGET_KEY].data)
            return [image_token_id] * budget

        return [
            PromptReplacement(modality="image", target=[image_token_id], replacement=replacement)
        ]

    def _postprocess_prompt(self, prompt: list[int]) -> list[int]:
        """The ids `MQTLlavaProcessor.tokenize_prompt` gives for the same text.

        The text after each `<image>` is tokenized on its own (decoding the ids vLLM made from the
        whole string, then encoding that piece), and a BOS the tokenizer adds leads the prompt
        once: vLLM's chat path tokenizes without special tokens, our processor adds them.
        """
        image_token_id = self.info.get_hf_config().image_token_id
        if image_token_id not in prompt:
            return prompt
        tokenizer = self.info.get_tokenizer()
        empty = tokenizer.encode("")
        bos = empty[0] if empty else None
        head, *tails = _split(prompt, image_token_id)
        ids = list(head)
        if bos is not None and ids[:1] != [bos]:
            ids.insert(0, bos)
        for tail in tails:
            piece = tokenizer.encode(tokenizer.decode(tail)) if tail else []
            if bos is not None and piece[:1] == [bos]:
                piece = piece[1:]
            ids.append(image_token_id)
            ids.extend(piece)
        return ids


def _split(ids: list[int], separator: int) -> list[list[int]]:
    """`ids` split at each `separator` (dropped): one more part than separators."""
    parts: list[list[int]] = [[]]
    for token in ids:
        if token == separator:
            parts.append([])
        else:
            parts[-1].append(token)
    return parts
