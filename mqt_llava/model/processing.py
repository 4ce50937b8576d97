"""MQTLlavaProcessor: images and prompts in, model inputs out, at any visual-token budget."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import BatchFeature, ProcessorMixin

from .chat_templates import CHAT_TEMPLATES
from .configuration import resolve_num_visual_tokens
from .images import ImageInput, expand_to_square, load_image


class MQTLlavaProcessor(ProcessorMixin):
    """Wraps the backbone's image processor and the LM's tokenizer.

    It pads images to a square (the release's "pad" aspect handling) before the backbone's own
    preprocessing, tokenizes the text around each `<image>` separately (as the release did, so
    that prompts match what the released model was trained on) and expands each `<image>` into m
    placeholder tokens, m being that image's budget.

    Args:
        image_processor: The vision backbone's image processor (e.g. `CLIPImageProcessor`).
        tokenizer: The language model's tokenizer; `<image>` is added as a special token if absent.
        chat_template: Jinja template(s); defaults to the release's `llava_v1` and `plain`.
        num_queries: M, the largest budget (the model's `config.num_queries`).
        num_visual_tokens: Default budget (the model's `config.num_visual_tokens`).
        image_aspect_ratio: `"pad"` (the release) or `"none"` (the backbone's processing alone).
        image_token: The placeholder string in prompts.
    """

    attributes = ["image_processor", "tokenizer"]

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        chat_template: str | dict[str, str] | None = None,
        num_queries: int = 256,
        num_visual_tokens: int = 256,
        image_aspect_ratio: str = "pad",
        image_token: str = "<image>",
        **kwargs,
    ):
        if image_aspect_ratio not in ("pad", "none"):
            raise ValueError(
                f"image_aspect_ratio must be 'pad' or 'none', got {image_aspect_ratio!r}."
            )
        self.num_queries = num_queries
        self.num_visual_tokens = num_visual_tokens
        self.image_aspect_ratio = image_aspect_ratio
        self.image_token = image_token
        if image_token not in tokenizer.get_vocab():
            tokenizer.add_special_tokens({"additional_special_tokens": [image_token]})
        self.image_token_id = tokenizer.convert_tokens_to_ids(image_token)
        if tokenizer.pad_token_id is None:  # the release pads with <unk> (LLaMA has no pad token)
            tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
        if chat_template is None:  # an LM's own template (SmolLM2's ChatML) wins over ours
            chat_template = tokenizer.chat_template or dict(CHAT_TEMPLATES)
        if not tokenizer.chat_template:
            tokenizer.chat_template = chat_template
        super().__init__(image_processor, tokenizer, chat_template=chat_template, **kwargs)

    # -- images -----------------------------------------------------------------------------------
    @property
    def pad_color(self) -> tuple[int, int, int]:
        """The "pad" canvas colour: the image processor's mean, as the release computes it."""
        return tuple(int(255 * x) for x in self.image_processor.image_mean)

    def preprocess_images(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """Loads, converts to RGB, pads to square and preprocesses images.

        Returns:
            (I, 3, H, W) float32 pixel values.
        """
        pil = [load_image(image) for image in images]
        if self.image_aspect_ratio == "pad":
            pil = [expand_to_square(image, self.pad_color) for image in pil]
        return self.image_processor(pil, return_tensors="pt")["pixel_values"]

    # -- text -------------------------------------------------------------------------------------
    def tokenize_prompt(self, prompt: str, budgets: Sequence[int]) -> list[int]:
        """Token ids of one prompt, each `<image>` expanded into m_i placeholder ids.

        The pieces around `<image>` are tokenized separately, each with the tokenizer's special
        tokens; a leading BOS is kept once, as the release's `tokenizer_image_token` does.
        """
        pieces = [self.tokenizer(p).input_ids for p in prompt.split(self.image_token)]
        bos = self.tokenizer.bos_token_id
        # Only a BOS that the tokenizer adds itself is dropped: ChatML tokenizers (SmolLM2) add
        # none, and their bos_token `<|im_start|>` is prompt text that must stay.
        adds_bos = bos is not None and self.tokenizer("").input_ids[:1] == [bos]
        strip = int(adds_bos and bool(pieces[0]) and pieces[0][0] == bos)
        ids = pieces[0][:1] if strip else []
        for i, piece in enumerate(pieces):
            if i > 0:
                ids.extend([self.image_token_id] * budgets[i - 1])
            ids.extend(piece[strip:])
        return ids

    def __call__(
        self,
        images: ImageInput | Sequence[ImageInput] | Sequence[Sequence[ImageInput]] | None = None,
        text: str | Sequence[str] | None = None,
        num_visual_tokens: int | Sequence[int] | None = None,
        padding_side: str | None = None,
        return_tensors: str = "pt",
        **kwargs: Any,
    ) -> BatchFeature:
        """Builds model inputs.

        Args:
            images: The images, in the order their `<image>` placeholders appear across the batch
                (a flat list, or one list per prompt).
            text: One prompt or a batch of prompts, each with one `<image>` per image.
            num_visual_tokens: One budget for every image, or one per image (in [1, M]); the
                default budget when `None`.
            padding_side: `"right"` (the release, training) or `"left"` (batched generation);
                the tokenizer's setting when `None`.
            return_tensors: Only `"pt"` is supported.

        Returns:
            `BatchFeature` with `input_ids`, `attention_mask`, and for images `pixel_values` and
            `num_visual_tokens` (one budget per image).

        Raises:
            ValueError: For a bad budget, or prompts whose `<image>` count differs from the
                number of images, or a prompt longer than the tokenizer's `model_max_length`.
        """
        if kwargs:
            raise TypeError(f"Unexpected arguments: {sorted(kwargs)}.")
        if return_tensors != "pt":
            raise ValueError(f"Only return_tensors='pt' is supported, got {return_tensors!r}.")
        if text is None:
            raise ValueError("text is required: a prompt with one <image> per image.")
        prompts = [text] if isinstance(text, str) else list(text)
        flat_images = _flatten_images(images)
        counts = [p.count(self.image_token) for p in prompts]
        if sum(counts) != len(flat_images):
            raise ValueError(
                f"The prompts hold {sum(counts)} {self.image_token} placeholders "
                f"({counts} per prompt) but {len(flat_images)} images were given: "
                f"put one {self.image_token} in the text per image."
            )
        budgets = resolve_num_visual_tokens(
            num_visual_tokens, len(flat_images), self.num_queries, self.num_visual_tokens
        )
        ids, start = [], 0
        for prompt, count in zip(prompts, counts, strict=True):
            ids.append(self.tokenize_prompt(prompt, budgets[start : start + count]))
            start += count
        self._check_length(ids)
        data = self._pad(ids, padding_side or self.tokenizer.padding_side)
        if flat_images:
            data["pixel_values"] = self.preprocess_images(flat_images)
            data["num_visual_tokens"] = torch.tensor(budgets, dtype=torch.long)
        return BatchFeature(data=data, tensor_type=None)

    def _check_length(self, ids: list[list[int]]) -> None:
        limit = self.tokenizer.model_max_length
        longest = max(len(x) for x in ids)
        if limit is not None and limit < 1e9 and longest > limit:
            raise ValueError(
                f"The prompt is {longest} tokens long (visual tokens included) but the model takes "
                f"at most {limit}: shorten the text or lower num_visual_tokens."
            )

    def _pad(self, ids: list[list[int]], side: str) -> dict[str, torch.Tensor]:
        if side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {side!r}.")
        length = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), length), self.tokenizer.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(ids), length), dtype=torch.long)
        for row, seq in enumerate(ids):
            span = slice(length - len(seq), length) if side == "left" else slice(0, len(seq))
            input_ids[row, span] = torch.tensor(seq, dtype=torch.long)
            attention_mask[row, span] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    # -- prompts and decoding ---------------------------------------------------------------------
    def build_prompt(
        self,
        question: str,
        num_images: int = 1,
        template: str = "llava_v1",
        answer: str | None = None,
    ) -> str:
        """The prompt of a single-turn question in one of the chat templates.

        Args:
            question: The user's text.
            num_images: How many images precede the question.
            template: A chat template name (`llava_v1`, `plain`, ...).
            answer: An assistant answer to append (for training or scoring); otherwise the
                generation prompt is added.
        """
        content = [{"type": "image"}] * num_images + [{"type": "text", "text": question}]
        messages = [{"role": "user", "content": content}]
        if answer is not None:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
        return self.apply_template(messages, template, add_generation_prompt=answer is None)

    def apply_template(
        self, messages: list[dict], template: str = "llava_v1", add_generation_prompt: bool = True
    ) -> str:
        """Renders messages with a named chat template of the tokenizer."""
        templates = self.tokenizer.chat_template
        if isinstance(templates, dict) and template not in templates:
            raise ValueError(f"Unknown chat template {template!r}; available: {sorted(templates)}.")
        return self.tokenizer.apply_chat_template(
            messages,
            chat_template=template if isinstance(templates, dict) else None,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
        )

    def batch_decode(self, *args, **kwargs):
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs):
        return self.tokenizer.decode(*args, **kwargs)

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values", "num_visual_tokens"]


def _flatten_images(images) -> list[ImageInput]:
    if images is None:
        return []
    if isinstance(images, (list, tuple)):
        flat = []
        for item in images:
            flat.extend(item if isinstance(item, (list, tuple)) else [item])
        return flat
    return [images]
