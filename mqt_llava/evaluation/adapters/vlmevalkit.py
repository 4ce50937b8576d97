"""A VLMEvalKit model class: run VLMEvalKit's benchmarks on MQT-LLaVA at a chosen budget.

VLMEvalKit (``vlmeval``, installed from its repository) calls ``model.generate(message,
dataset)`` with ``message`` a list of ``{"type": "image" | "text", "value": path or text}``; its
``BaseModel.generate`` checks the message and hands it to ``generate_inner``. `MQTLlavaVLM`
derives from VLMEvalKit's ``BaseModel`` when ``vlmeval`` is importable (built on first access, so
``mqt_llava`` works without it) and otherwise from `BaseModelShim`, a copy of that contract.

Registering, in a script that then calls VLMEvalKit's runner::

    from functools import partial
    from vlmeval.config import supported_VLM
    from mqt_llava.evaluation.adapters.vlmevalkit import MQTLlavaVLM

    supported_VLM["MQT-LLaVA-m16"] = partial(MQTLlavaVLM, model_path="DIR", num_visual_tokens=16)

For multiple-choice datasets the prompt is LLaVA's (VLMEvalKit's own LLaVA wrapper builds the
same): hint, question, ``A. option`` lines, ``Answer with the option's letter from the given
choices directly.``.
"""

from __future__ import annotations

import string
from typing import Any

_OPTION_LETTER = "Answer with the option's letter from the given choices directly."


class BaseModelShim:
    """The parts of VLMEvalKit's ``BaseModel`` a model relies on, for use without ``vlmeval``:
    ``generate`` accepts a string, a dict, a list of strings or a list of ``{"type", "value"}``
    dicts, normalises it to the list of dicts and calls ``generate_inner``."""

    INTERLEAVE = False
    allowed_types = ("text", "image")

    def use_custom_prompt(self, dataset: str | None) -> bool:
        return False

    def dump_image(self, line, dataset: str | None) -> list[str]:
        """The row's image files (``image_path``); VLMEvalKit's version also decodes ``image``."""
        if "image_path" not in line:
            raise ValueError("without vlmeval, rows must give their images as 'image_path'")
        paths = line["image_path"]
        return list(paths) if isinstance(paths, (list, tuple)) else [paths]

    def generate(self, message, dataset: str | None = None) -> str:
        if isinstance(message, str):
            message = [{"type": "text", "value": message}]
        elif isinstance(message, dict):
            message = [message]
        elif isinstance(message, list) and all(isinstance(m, str) for m in message):
            message = [{"type": "text", "value": m} for m in message]
        if not isinstance(message, list) or not all(
            isinstance(m, dict) and "type" in m and "value" in m for m in message
        ):
            raise ValueError(f"Invalid input type: {message!r:.80}")
        for item in message:
            if item["type"] not in self.allowed_types:
                raise ValueError(f"Invalid input type: {item['type']}")
        return self.generate_inner(message, dataset)


class MQTLlavaVLMCore:
    """MQT-LLaVA behind VLMEvalKit's model interface, at one visual-token budget.

    Args:
        model_path: Model folder (None: the bundled default model).
        num_visual_tokens: The budget m for every image (default: the model's default budget).
        max_new_tokens: Generation limit (VLMEvalKit's LLaVA wrapper uses 512).
        device: cpu, cuda, ... (default: cuda if available).
        template: Chat template ("llava_v1", the release's).
    """

    INTERLEAVE = False

    def __init__(
        self,
        model_path: str | None = None,
        num_visual_tokens: int | None = None,
        max_new_tokens: int = 512,
        device: str | None = None,
        template: str = "llava_v1",
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise ValueError(
                f"unknown MQTLlavaVLM arguments {sorted(kwargs)}; accepted: model_path, "
                "num_visual_tokens, max_new_tokens, device, template"
            )
        from mqt_llava.inference import load
        from mqt_llava.model import check_num_visual_tokens

        vlm = load(model_path, device=device)
        self.model, self.processor, self.template = vlm.model, vlm.processor, template
        budget = num_visual_tokens
        if budget is None:
            budget = vlm.model.config.num_visual_tokens
        self.num_visual_tokens = check_num_visual_tokens(budget, vlm.model.config.num_queries)
        self.max_new_tokens = int(max_new_tokens)

    def use_custom_prompt(self, dataset: str | None) -> bool:
        """LLaVA's prompt for multiple-choice datasets (VLMEvalKit's ``DATASET_TYPE == "MCQ"``)."""
        if dataset is None:
            return False
        try:
            from vlmeval.dataset import DATASET_TYPE
        except ImportError:
            return False
        return DATASET_TYPE(dataset) == "MCQ"

    def build_prompt(self, line, dataset: str | None = None) -> list[dict[str, str]]:
        """The message of a multiple-choice row (a pandas Series or a dict with ``question``,
        optional ``hint``, options ``A``, ``B``, ...), its images dumped by ``dump_image``."""
        question = str(line["question"])
        hint = line.get("hint") if hasattr(line, "get") else None
        if _present(hint):
            question = f"{hint}\n{question}"
        for letter in string.ascii_uppercase:
            if letter in line and _present(line[letter]):
                question += f"\n{letter}. {line[letter]}"
        prompt = f"{question}\n{_OPTION_LETTER}"
        images = self.dump_image(line, dataset)
        images = images if isinstance(images, list) else [images]
        return [*({"type": "image", "value": p} for p in images), {"type": "text", "value": prompt}]

    def generate_inner(self, message: list[dict[str, str]], dataset: str | None = None) -> str:
        """Answers one message: its images (files) first, as the release places them, then its
        text parts joined by newlines."""
        from mqt_llava.inference.generation import encode_images, generate_answers

        images = [m["value"] for m in message if m["type"] == "image"]
        text = "\n".join(m["value"] for m in message if m["type"] == "text")
        prompt = self.processor.build_prompt(text, num_images=len(images), template=self.template)
        m = self.num_visual_tokens
        features = encode_images(self.model, self.processor, images, m) if images else None
        answer = generate_answers(
            self.model, self.processor, [prompt], features, m, self.max_new_tokens
        )
        return answer[0]


def _present(value: Any) -> bool:
    """A cell that pandas would not read as NaN / None."""
    if value is None:
        return False
    if isinstance(value, float) and value != value:  # NaN
        return False
    return str(value).strip().lower() not in ("", "nan", "none")


_CLASS: type | None = None


def __getattr__(name: str) -> Any:
    # The class derives from VLMEvalKit's BaseModel when installed: built on first access.
    global _CLASS
    if name != "MQTLlavaVLM":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _CLASS is None:
        try:
            from vlmeval.vlm.base import BaseModel
        except ImportError:
            BaseModel = BaseModelShim

        class MQTLlavaVLM(MQTLlavaVLMCore, BaseModel):
            __doc__ = MQTLlavaVLMCore.__doc__

        MQTLlavaVLM.__qualname__ = "MQTLlavaVLM"
        _CLASS = MQTLlavaVLM
    return _CLASS
