"""One LLaVA-JSON record into token ids and labels, in the release's prompt templates.

A record is `{"id", "image": relative path (optional; a list for several images),
"conversations": [{"from": "human" | "gpt", "value": ...}, ...]}` with one `<image>` per image
in the human turns. The templates:

- `plain` (stage 1, `preprocess_plain`): `<image>` + caption + `"\\n"`; the human text is dropped
  and only the caption and the newline carry loss.
- `llava_v1` (stage 2, `preprocess_v1`): the Vicuna v1 conversation; the system prompt and user
  turns are masked, each assistant answer and its `</s>` carry loss. The mask is computed with the
  release's round arithmetic so that it is identical to the release's on any tokenizer.
- `chatml`: the tokenizer's own chat template (e.g. SmolLM2's ChatML, see docs/pretrained.md);
  each assistant answer and its end-of-turn token carry loss, everything else is masked.

A sample keeps ONE placeholder id per image; the trainer expands it to the step's budget m
(:func:`mqt_llava.data.collator.expand_image_placeholders`), so one sample serves every budget.
The dataset that reads record files is :mod:`mqt_llava.data.llava_json`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

IGNORE_INDEX = -100
IMAGE_TOKEN = "<image>"
TEMPLATES = ("plain", "llava_v1", "chatml")
ROLES = {"human": "user", "gpt": "assistant"}


class BadRecordError(ValueError):
    """A record that cannot be trained on; the message names the record id and the reason."""


@dataclass
class Sample:
    """One tokenized record, images not yet loaded.

    Attributes:
        input_ids: Token ids with ONE `image_token_id` per image.
        labels: Targets aligned with `input_ids` (`IGNORE_INDEX` where no loss is taken).
        images: Absolute image paths, in placeholder order.
        record_id: The record's `id`.
    """

    input_ids: list[int]
    labels: list[int]
    images: list[Path]
    record_id: str


def image_paths(record: dict, image_folder: Path | None) -> list[Path]:
    image = record.get("image")
    if image is None:
        return []
    names = [image] if isinstance(image, str) else image
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise BadRecordError(f"'image' must be a path or a list of paths, got {image!r}")
    folder = image_folder or Path(".")
    return [folder / name for name in names]


def record_turns(record: dict) -> list[tuple[str, str]]:
    """(role, text) pairs, checked: human/gpt alternating, starting with human."""
    conversations = record.get("conversations")
    if not isinstance(conversations, list) or not conversations:
        raise BadRecordError("no conversation ('conversations' is missing or empty)")
    turns = []
    for turn in conversations:
        if not isinstance(turn, dict) or turn.get("from") not in ROLES:
            raise BadRecordError(f"a turn is not {{'from': 'human'|'gpt', 'value': str}}: {turn!r}")
        if not isinstance(turn.get("value"), str):
            raise BadRecordError(f"a turn's 'value' is not a string: {turn!r}")
        turns.append((ROLES[turn["from"]], turn["value"]))
    if turns[0][0] == "assistant":  # the release skips a leading gpt turn
        turns = turns[1:]
    for i, (role, _) in enumerate(turns):
        if role != ("user" if i % 2 == 0 else "assistant"):
            raise BadRecordError("turns must alternate human, gpt, human, gpt, ...")
    if len(turns) < 2:
        raise BadRecordError("no assistant answer to learn from")
    return turns


def build_plain(turns: list[tuple[str, str]], num_images: int) -> str:
    """The release's `preprocess_plain` text: `<image>` + caption + newline."""
    if len(turns) != 2 or num_images != 1 or IMAGE_TOKEN not in turns[0][1]:
        raise BadRecordError(
            "the plain template needs exactly one image, one human turn holding <image> and one "
            "caption"
        )
    return IMAGE_TOKEN + turns[1][1] + "\n"


def build_llava_v1(turns: list[tuple[str, str]], processor: Any) -> str:
    """The release's Vicuna v1 conversation, `<image>` moved to the front of its turn."""
    return processor.apply_template(_messages(turns), "llava_v1", add_generation_prompt=False)


def _messages(turns: list[tuple[str, str]]) -> list[dict]:
    """Chat messages of `turns`, each turn's `<image>`s moved in front of its text."""
    messages = []
    for role, text in turns:
        count = text.count(IMAGE_TOKEN)
        if role == "assistant" and count:
            raise BadRecordError("an assistant turn holds <image>")
        # The release's preprocess_multimodal: strip <image> from the text, put it in front.
        content = [{"type": "image"}] * count
        content.append({"type": "text", "text": text.replace(IMAGE_TOKEN, "").strip()})
        messages.append({"role": role, "content": content})
    return messages


def build_chatml(turns: list[tuple[str, str]], processor: Any) -> str:
    """The conversation in the tokenizer's own chat template (images first in their turn)."""
    return processor.apply_template(_messages(turns), "chatml", add_generation_prompt=False)


def labels_chatml(processor: Any, turns: list[tuple[str, str]], input_ids: list[int]) -> list[int]:
    """Loss on each assistant answer and the token that ends it, nothing else.

    Each answer's span is found by rendering the conversation up to its generation prompt and up
    to its end; the template's end-of-turn markers are special tokens, so those renderings are
    token prefixes of the whole. A template where they are not is refused.
    """
    messages = _messages(turns)
    labels = [IGNORE_INDEX] * len(input_ids)
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        head = processor.apply_template(messages[:i], "chatml", add_generation_prompt=True)
        # the newline after the end-of-turn token is not learned
        done = processor.apply_template(messages[: i + 1], "chatml", add_generation_prompt=False)
        done = done.rstrip("\n")
        head_ids, done_ids = (
            processor.tokenize_prompt(text, [1] * text.count(IMAGE_TOKEN)) for text in (head, done)
        )
        start, end = len(head_ids), len(done_ids)
        if input_ids[:start] != head_ids or input_ids[:end] != done_ids:
            raise BadRecordError("the chat template's turns are not token prefixes of the whole")
        labels[start:end] = input_ids[start:end]
    return labels


def _token_count(processor: Any, text: str) -> int:
    return len(processor.tokenize_prompt(text, [1] * text.count(IMAGE_TOKEN)))


def labels_plain(processor: Any, prompt: str, input_ids: list[int]) -> list[int]:
    """`preprocess_plain`'s targets: everything after `tokenize("<image>")` is learned."""
    masked = _token_count(processor, IMAGE_TOKEN)
    return [IGNORE_INDEX] * masked + list(input_ids[masked:])


def labels_llava_v1(processor: Any, prompt: str, input_ids: list[int]) -> list[int]:
    """`preprocess_v1`'s targets, by the release's round arithmetic.

    The conversation is split at `</s>` into rounds and each round at `" ASSISTANT: "`; per round,
    the instruction's token count minus 2 (its BOS, and the trailing space that merges into the
    answer's first token) is masked. Where the arithmetic does not add up to the sequence length
    the release masks the whole sample with a warning; we refuse the record instead.
    """
    sep = " ASSISTANT: "
    labels = list(input_ids)
    cur = 1
    labels[:cur] = [IGNORE_INDEX]
    for rnd in prompt.split("</s>"):
        if rnd == "":
            break
        parts = rnd.split(sep)
        if len(parts) != 2:
            break
        round_len = _token_count(processor, rnd)
        instruction_len = _token_count(processor, parts[0] + sep) - 2
        labels[cur : cur + instruction_len] = [IGNORE_INDEX] * len(
            labels[cur : cur + instruction_len]
        )
        cur += round_len
    labels[cur:] = [IGNORE_INDEX] * len(labels[cur:])
    if cur != len(input_ids):
        raise BadRecordError(
            f"tokenization mismatch: the release's round arithmetic gives {cur} tokens, the "
            f"conversation has {len(input_ids)} (the release would mask the whole sample)"
        )
    return labels


def tokenize_record(
    record: dict,
    processor: Any,
    template: Literal["plain", "llava_v1", "chatml"],
    image_folder: Path | None = None,
    max_length: int | None = None,
    max_visual_tokens: int = 1,
) -> Sample:
    """Turns one record into token ids and labels with one placeholder per image.

    Args:
        record: A LLaVA-JSON record.
        processor: An [`MQTLlavaProcessor`] (tokenizer, templates, `image_token_id`).
        template: `"plain"` or `"llava_v1"`.
        image_folder: Folder that record image paths are relative to.
        max_length: Longest sequence once every image is expanded to `max_visual_tokens`; longer
            text is cut at the end (as the release does), never through an image.
        max_visual_tokens: M, the largest budget a step may draw.

    Raises:
        BadRecordError: For a record that cannot be trained on (the message says why).
    """
    turns = record_turns(record)
    images = image_paths(record, image_folder)
    num_placeholders = sum(text.count(IMAGE_TOKEN) for _, text in turns)
    if num_placeholders != len(images):
        raise BadRecordError(
            f"{len(images)} image(s) given but the conversation holds {num_placeholders} "
            f"{IMAGE_TOKEN}: put one {IMAGE_TOKEN} in a human turn per image"
        )
    if template == "plain":
        prompt = build_plain(turns, len(images))
        label_fn = labels_plain
    elif template == "llava_v1":
        prompt = build_llava_v1(turns, processor)
        label_fn = labels_llava_v1
    elif template == "chatml":
        prompt = build_chatml(turns, processor)
        label_fn = lambda proc, _prompt, ids: labels_chatml(proc, turns, ids)  # noqa: E731
    else:
        raise ValueError(f"Unknown template {template!r}; accepted: {', '.join(TEMPLATES)}.")
    input_ids = processor.tokenize_prompt(prompt, [1] * len(images))
    labels = label_fn(processor, prompt, input_ids)
    image_id = processor.image_token_id
    labels = [IGNORE_INDEX if t == image_id else y for t, y in zip(input_ids, labels, strict=True)]
    if max_length is not None:
        keep = max_length - len(images) * (max_visual_tokens - 1)
        if keep < len(input_ids):
            if keep <= 0 or input_ids[:keep].count(image_id) != len(images):
                raise BadRecordError(
                    f"too long: {len(input_ids) + len(images) * (max_visual_tokens - 1)} tokens "
                    f"at m={max_visual_tokens} exceed max_length={max_length} before the last image"
                )
            input_ids, labels = input_ids[:keep], labels[:keep]
    if all(y == IGNORE_INDEX for y in labels):
        raise BadRecordError("no token carries loss (empty answer, or cut by max_length)")
    return Sample(input_ids, labels, images, str(record.get("id", "?")))
