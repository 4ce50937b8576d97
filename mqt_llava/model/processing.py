"""MQTLlavaProcessor: images and prompts in, model inputs out, at any visual-token budget."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import BatchFeature, ProcessorMixin

from .chat_templates import CHAT_TEMPLATES
from .configuration import resolve_num_visual_tokens
from .images import ImageInput, expand_to_square, load_image
from .padding import pad_batch, padded_length


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

    def preprocess_images(self, images: Sequence[ImageInput], **kwargs: Any) -> torch.Tensor:
        """Loads, converts to RGB, pads to square and preprocesses images.

        Returns:
            (I, 3, H, W) float32 pixel values.
        """
        pil = [load_image(image) for image in images]
        if self.image_aspect_ratio == "pad":
            pil = [expand_to_square(image, self.pad_color) for image in pil]
        return self.image_processor(pil, return_tensors="pt", **kwargs)["pixel_values"]

    # -- text -------------------------------------------------------------------------------------
    def tokenize_prompt(
        self, prompt: str, budgets: Sequence[int], add_special_tokens: bool = True
    ) -> list[int]:
        """Token ids of one prompt, each `<image>` expanded into m_i placeholder ids.

        The pieces around `<image>` are tokenized separately, each with the tokenizer's special
        tokens; a leading BOS is kept once, as the release's `tokenizer_image_token` does.
        """
        pieces = [
            self.tokenizer(p, add_special_tokens=add_special_tokens).input_ids
            for p in prompt.split(self.image_token)
        ]
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
        padding: bool | str = "longest",
        padding_side: str | None = None,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        return_tensors: str | None = "pt",
        return_attention_mask: bool | None = None,
        add_special_tokens: bool = True,
        text_kwargs: dict[str, Any] | None = None,
        images_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        """Builds model inputs; takes the arguments users pass to `LlavaProcessor`.

        Args:
            images: The images, in the order their `<image>` placeholders appear across the batch
                (a flat list, or one list per prompt).
            text: One prompt or a batch of prompts, each with one `<image>` per image.
            num_visual_tokens: One budget for every image, or one per image (in [1, M]); the
                default budget when `None`.
            padding: `True`/`"longest"` (the default: pad to the longest prompt),
                `"max_length"` (pad to `max_length`), or `False`/`"do_not_pad"`.
            padding_side: `"right"` (the release, training) or `"left"` (batched generation);
                the tokenizer's setting when `None`.
            truncation: `True`/`"longest_first"`/`"only_first"` cuts prompts longer than
                `max_length` on the tokenizer's `truncation_side`, if no visual token is cut.
            max_length: The length for `padding="max_length"` and `truncation`.
            pad_to_multiple_of: Pad lengths up to a multiple of this.
            return_tensors: `"pt"` (the default), `"np"`, or `None` for lists.
            return_attention_mask: Leave out `attention_mask` when `False`.
            add_special_tokens: `False` leaves out the BOS token.
            text_kwargs: Any of the text arguments above, as a dict (the transformers style).
            images_kwargs: Arguments of the image processor (e.g. `do_normalize`).

        Returns:
            `BatchFeature` with `input_ids`, `attention_mask`, and for images `pixel_values` and
            `num_visual_tokens` (one budget per image).

        Raises:
            ValueError: For a bad budget, prompts whose `<image>` count differs from the number
                of images, a prompt longer than `model_max_length`, or settings that cannot apply
                (truncation that would cut visual tokens, ragged prompts without padding as
                tensors).
            TypeError: For an argument the processor does not take.
        """
        for name in ("videos", "audio", "verbose", "return_token_type_ids"):
            if not kwargs.get(name):
                kwargs.pop(name, None)  # None or False: nothing to do (apply_chat_template passes)
        if text_kwargs:
            text_kwargs = dict(text_kwargs)
            text = _pick(text_kwargs, "text", text)
            padding = _pick(text_kwargs, "padding", padding)
            padding_side = _pick(text_kwargs, "padding_side", padding_side)
            truncation = _pick(text_kwargs, "truncation", truncation)
            max_length = _pick(text_kwargs, "max_length", max_length)
            pad_to_multiple_of = _pick(text_kwargs, "pad_to_multiple_of", pad_to_multiple_of)
            return_attention_mask = _pick(
                text_kwargs, "return_attention_mask", return_attention_mask
            )
            add_special_tokens = _pick(text_kwargs, "add_special_tokens", add_special_tokens)
            kwargs.update(text_kwargs)  # whatever is left is refused below
        if kwargs:
            raise TypeError(
                f"Unexpected arguments: {sorted(kwargs)}. MQTLlavaProcessor takes images, text, "
                "num_visual_tokens, padding, padding_side, truncation, max_length, "
                "pad_to_multiple_of, return_tensors, return_attention_mask, add_special_tokens, "
                "text_kwargs and images_kwargs."
            )
        if return_tensors not in ("pt", "np", None):
            raise ValueError(f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}.")
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
            ids.append(
                self.tokenize_prompt(prompt, budgets[start : start + count], add_special_tokens)
            )
            start += count
        if truncation not in (None, False, "do_not_truncate"):
            ids = [self._truncate(x, truncation, max_length) for x in ids]
        self._check_length(ids)
        length = padded_length([len(x) for x in ids], padding, max_length, pad_to_multiple_of)
        if length is None and return_tensors is not None and len({len(x) for x in ids}) > 1:
            raise ValueError(
                "The prompts have different lengths and padding is off: pass padding=True "
                "(or return_tensors=None for lists)."
            )
        input_ids, attention_mask = pad_batch(
            ids, self.tokenizer.pad_token_id, padding_side or self.tokenizer.padding_side, length
        )
        data = {"input_ids": input_ids, "attention_mask": attention_mask}
        if length is None and return_tensors is None:  # unpadded lists, as the tokenizer gives
            data = {"input_ids": ids, "attention_mask": [[1] * len(x) for x in ids]}
        if return_attention_mask is False:
            data.pop("attention_mask")
        if flat_images:
            data["pixel_values"] = self.preprocess_images(flat_images, **(images_kwargs or {}))
            data["num_visual_tokens"] = torch.tensor(budgets, dtype=torch.long)
        if return_tensors != "pt":
            data = {k: _convert(v, return_tensors) for k, v in data.items()}
        return BatchFeature(data=data, tensor_type=None)

    def _truncate(
        self, ids: list[int], truncation: bool | str, max_length: int | None
    ) -> list[int]:
        if truncation not in (True, "longest_first", "only_first"):
            raise ValueError(
                "truncation must be True, 'longest_first', 'only_first' or False, "
                f"got {truncation!r}."
            )
        if max_length is None:
            raise ValueError("truncation needs max_length (the number of tokens to keep).")
        if len(ids) <= max_length:
            return ids
        if getattr(self.tokenizer, "truncation_side", "right") == "right":
            kept, cut = ids[:max_length], ids[max_length:]
        else:
            kept, cut = ids[-max_length:], ids[:-max_length]
        if self.image_token_id in cut:
            raise ValueError(
                f"Truncating the prompt ({len(ids)} tokens, visual tokens included) to "
                f"max_length={max_length} would cut visual tokens: raise max_length or lower "
                "num_visual_tokens."
            )
        return kept

    def _check_length(self, ids: list[list[int]]) -> None:
        limit = self.tokenizer.model_max_length
        longest = max(len(x) for x in ids)
        if limit is not None and limit < 1e9 and longest > limit:
            raise ValueError(
                f"The prompt is {longest} tokens long (visual tokens included) but the model takes "
                f"at most {limit}: shorten the text or lower num_visual_tokens."
            )

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


def _pick(options: dict[str, Any], name: str, default: Any) -> Any:
    return options.pop(name) if name in options else default


def _convert(value: Any, return_tensors: str | None) -> Any:
    if not isinstance(value, torch.Tensor):
        return value
    return value.numpy() if return_tensors == "np" else value.tolist()
