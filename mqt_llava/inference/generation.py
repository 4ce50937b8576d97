"""Encode once at M, slice per budget: batched answering with precomputed visual tokens.

The vision tower and the connector run once per image at the largest budget of a sweep
(`encode_images`); each budget m then reuses the first m tokens of every image, which is exact by
the connector's prefix property (SPEC §1.2). Prompts are left-padded so that a batch generates
in lock-step. Used by `MQTLlava.ask_budgets`, the evaluation runner and its adapters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mqt_llava.model import MQTLlavaForConditionalGeneration, MQTLlavaProcessor
from mqt_llava.model.images import ImageInput
from mqt_llava.model.padding import pad_batch


@torch.inference_mode()
def encode_images(
    model: MQTLlavaForConditionalGeneration,
    processor: MQTLlavaProcessor,
    images: Sequence[ImageInput],
    num_visual_tokens: int,
) -> torch.Tensor:
    """Visual tokens of the images at one budget (the largest of a sweep).

    Returns:
        (I, m, D) visual tokens; ``[:, :k]`` are the tokens at budget k <= m.
    """
    pixel_values = processor.preprocess_images(list(images)).to(model.device)  # (I, 3, H, W)
    return model.get_image_features(pixel_values, num_visual_tokens)  # (I, m, D)


def generation_kwargs(
    max_new_tokens: int, temperature: float = 0.0, top_p: float | None = None
) -> dict[str, Any]:
    """`generate` keyword arguments of a decoding setting, checked.

    Args:
        max_new_tokens: Generation limit, at least 1.
        temperature: 0 for greedy decoding, otherwise the sampling temperature.
        top_p: Nucleus mass when sampling (1.0 when None).

    Raises:
        ValueError: For `max_new_tokens < 1` or a negative temperature.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}.")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}.")
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": temperature > 0}
    if temperature > 0:
        kwargs.update(temperature=temperature, top_p=1.0 if top_p is None else top_p)
    return kwargs


@torch.inference_mode()
def generate_answers(
    model: MQTLlavaForConditionalGeneration,
    processor: MQTLlavaProcessor,
    prompts: Sequence[str],
    visual_tokens: torch.Tensor | None,
    num_visual_tokens: int,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float | None = None,
) -> list[str]:
    """Answers a batch of rendered prompts.

    Args:
        model: The model, in eval mode.
        processor: Its processor.
        prompts: Full chat-template prompts; each ``<image>`` stands for one image, in order.
        visual_tokens: (I, >= m, D) tokens of the prompts' images in reading order (sliced to
            ``num_visual_tokens`` here), or None when no prompt has an image.
        num_visual_tokens: The budget m of every image in the batch.
        max_new_tokens: Generation limit.
        temperature: 0 for greedy decoding (the release's evaluation setting).
        top_p: Nucleus mass when sampling.

    Returns:
        The decoded answers, special tokens dropped and stripped, as the release decodes them.

    Raises:
        ValueError: The prompts' ``<image>`` count differs from the number of images given.
    """
    token = processor.image_token
    counts = [prompt.count(token) for prompt in prompts]
    n_images = 0 if visual_tokens is None else visual_tokens.shape[0]
    if sum(counts) != n_images:
        raise ValueError(
            f"The prompts hold {sum(counts)} {token} placeholders but {n_images} images' visual "
            "tokens were given."
        )
    ids = [
        processor.tokenize_prompt(prompt, [num_visual_tokens] * count)
        for prompt, count in zip(prompts, counts, strict=True)
    ]
    pad_id = processor.tokenizer.pad_token_id
    input_ids, attention_mask = pad_batch(ids, pad_id, "left")
    kwargs = {
        "input_ids": input_ids.to(model.device),
        "attention_mask": attention_mask.to(model.device),
        "pad_token_id": pad_id,
        **generation_kwargs(max_new_tokens, temperature, top_p),
    }
    if n_images:
        tokens = visual_tokens[:, :num_visual_tokens]  # (I, m, D): the prefix property
        kwargs["visual_tokens"] = tokens.reshape(-1, tokens.shape[-1])  # (I * m, D)
    output = model.generate(**kwargs)
    texts = processor.batch_decode(output[:, input_ids.shape[1] :], skip_special_tokens=True)
    return [text.strip() for text in texts]
