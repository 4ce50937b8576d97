"""A small inference pipeline: load a model folder, ask questions about images at any budget."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, TextIteratorStreamer

from ..model import MQTLlavaForConditionalGeneration, MQTLlavaProcessor, check_num_visual_tokens
from ..model.images import ImageInput
from ..model.presets import BUNDLED_MODEL_DIR
from .generation import encode_images, generate_answers, generation_kwargs


@dataclass
class Answer:
    """One answer of [`MQTLlava.ask_budgets`]."""

    num_visual_tokens: int
    text: str
    seconds: float


def default_model_dir() -> Path:
    """The bundled default model's folder; a clear error if this install has none."""
    if not (BUNDLED_MODEL_DIR / "config.json").is_file():
        raise FileNotFoundError(
            f"No bundled default model at {BUNDLED_MODEL_DIR}: pass --model DIR (a folder written "
            "by `mqt-llava convert` or by training)."
        )
    return BUNDLED_MODEL_DIR


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class MQTLlava:
    """A loaded model and processor with one-line question answering.

    Example:
        >>> import mqt_llava
        >>> vlm = mqt_llava.load("path/to/model")
        >>> vlm.ask("cat.jpg", "What is on the sofa?", num_visual_tokens=16)
    """

    def __init__(
        self,
        model: MQTLlavaForConditionalGeneration,
        processor: MQTLlavaProcessor,
        template: str = "llava_v1",
    ):
        self.model = model.eval()
        self.processor = processor
        self.template = template

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        template: str = "llava_v1",
        load_in_8bit: bool = False,
        load_in_4bit: bool = False,
        revision: str | None = None,
        token: str | bool | None = None,
    ) -> MQTLlava:
        """Loads a model folder or hub id (the bundled default model when `path` is None).

        Args:
            path: A local folder, or a hub id such as `gordonhu/MQT-LLaVA-7b` (downloaded
                through the hub cache; a repository in the original release's layout is
                converted once and the conversion reused). Local folders never download.
            device: `cpu`, `cuda`, `cuda:1`, ..., or `"auto"` (`device_map="auto"`). Defaults to
                CUDA when available, else CPU.
            dtype: `bf16`/`fp16`/`fp32` or a torch dtype; bfloat16 on CUDA, float32 on CPU.
            template: Chat template used to wrap questions.
            load_in_8bit: 8-bit language-model weights (bitsandbytes; needs an NVIDIA GPU).
            load_in_4bit: 4-bit (NF4) language-model weights (bitsandbytes; NVIDIA GPU).
            revision: Hub branch, tag or commit.
            token: Hub token; `huggingface_hub`'s own lookup (`HF_TOKEN`, login) when None.
        """
        from ..hub.loading import current_options, merge, model_kwargs
        from ..hub.resolve import resolve_model

        options = merge(
            current_options(),
            device=None if device is None else str(device),
            dtype=dtype,
            load_in_8bit=load_in_8bit,
            load_in_4bit=load_in_4bit,
            revision=revision,
        )
        kwargs, move_to = model_kwargs(
            options.device, options.dtype, options.load_in_8bit, options.load_in_4bit
        )  # option errors come before any download
        folder = (
            default_model_dir() if path is None else resolve_model(path, options.revision, token)
        )
        model = AutoModelForImageTextToText.from_pretrained(folder, **kwargs)
        if "quantization_config" in kwargs:
            model.connector.float()  # the connector stays in full precision
        elif move_to is not None:
            model = model.to(move_to)
        processor = AutoProcessor.from_pretrained(folder)
        return cls(model, processor, template=template)

    @property
    def max_visual_tokens(self) -> int:
        return self.model.config.num_queries

    def _inputs(self, image: ImageInput, question: str, num_visual_tokens: int | None):
        if num_visual_tokens is not None:
            num_visual_tokens = check_num_visual_tokens(num_visual_tokens, self.max_visual_tokens)
        prompt = self.processor.build_prompt(question, num_images=1, template=self.template)
        inputs = self.processor(images=[image], text=prompt, num_visual_tokens=num_visual_tokens)
        return inputs.to(self.model.device)

    def _generate_kwargs(self, max_new_tokens: int, temperature: float, top_p: float | None):
        return generation_kwargs(max_new_tokens, temperature, top_p)

    @torch.inference_mode()
    def ask(
        self,
        image: ImageInput,
        question: str,
        num_visual_tokens: int | str | None = None,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        top_p: float | None = None,
        budget_policy=None,
    ) -> str:
        """Answers a question about an image.

        Args:
            image: A path, bytes, PIL image or uint8 array.
            question: The question, without `<image>` (the template places the image).
            num_visual_tokens: The budget m in [1, M]; the model's default when `None`;
                `"auto"`: chosen by `budget_policy` (see `mqt_llava.inference.budget`).
            max_new_tokens: Upper bound on the answer's length in tokens.
            temperature: 0 for greedy decoding, otherwise the sampling temperature.
            top_p: Nucleus sampling mass when sampling.
            budget_policy: For `"auto"`: a policy, its JSON file or dict; default: the model
                folder's `budget_policy.json`, else escalation.

        Returns:
            The answer text; with `"auto"`, an `AutoAnswer` (a `str`) whose
            `num_visual_tokens` is the budget used.
        """
        if isinstance(num_visual_tokens, str) and num_visual_tokens.strip().lower() == "auto":
            from .auto import ask_auto

            return ask_auto(self, image, question, max_new_tokens, temperature, budget_policy)
        inputs = self._inputs(image, question, num_visual_tokens)
        output = self.model.generate(
            **inputs, **self._generate_kwargs(max_new_tokens, temperature, top_p)
        )
        new_tokens = output[0, inputs["input_ids"].shape[1] :]
        return self.processor.decode(new_tokens, skip_special_tokens=True).strip()

    def stream(
        self,
        image: ImageInput,
        question: str,
        num_visual_tokens: int | None = None,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        top_p: float | None = None,
    ) -> Iterator[str]:
        """Like [`ask`], but yields the answer's text piece by piece as it is generated.

        The pieces join to exactly what [`ask`] returns: leading whitespace (a word-start
        space) is dropped and trailing whitespace is held back until more text follows.
        """
        inputs = self._inputs(image, question, num_visual_tokens)
        streamer = TextIteratorStreamer(
            self.processor.tokenizer, skip_prompt=True, skip_special_tokens=True
        )
        kwargs = {**inputs, **self._generate_kwargs(max_new_tokens, temperature, top_p)}
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(**kwargs, streamer=streamer)
            except BaseException as err:  # surfaced in the caller's thread below
                errors.append(err)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        yield from _stripped(streamer)
        thread.join()
        if errors:
            raise errors[0]

    @torch.inference_mode()
    def ask_budgets(
        self,
        image: ImageInput,
        question: str,
        budgets: Sequence[int],
        max_new_tokens: int = 64,
        temperature: float = 0.0,
    ) -> list[Answer]:
        """Answers the same question at several budgets, encoding the image once.

        The vision tower and the connector run once, at the largest budget; each budget m then
        answers from the first m visual tokens, which equal what encoding at m gives (the
        connector's prefix property). The answers are those of [`ask`] at each budget.

        Returns:
            One [`Answer`] per budget, in the order given. `seconds` is that budget's answer
            (prompt and generation); the one shared image encoding is not in any of them.
        """
        budgets = [check_num_visual_tokens(m, self.max_visual_tokens) for m in budgets]
        generation_kwargs(max_new_tokens, temperature)  # setting errors before any model work
        prompt = self.processor.build_prompt(question, num_images=1, template=self.template)
        visual = encode_images(self.model, self.processor, [image], max(budgets))  # (1, M', D)
        answers = []
        for m in budgets:
            start = time.perf_counter()
            (text,) = generate_answers(
                self.model, self.processor, [prompt], visual, m, max_new_tokens, temperature
            )
            answers.append(Answer(m, text, time.perf_counter() - start))
        return answers


def _stripped(pieces: Iterator[str]) -> Iterator[str]:
    """The pieces of a text, joined they equal the whole text's `.strip()`."""
    pending = ""
    started = False
    for piece in pieces:
        text = pending + piece
        if not started:
            text = text.lstrip()
            started = bool(text)
        body = text.rstrip()
        pending = text[len(body) :]
        if body:
            yield body


def load(
    path: str | Path | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    **kwargs,
) -> MQTLlava:
    """Loads a model folder or hub id (or the bundled default model) for question answering.

    Keyword arguments (`load_in_8bit`, `load_in_4bit`, `revision`, `token`, `template`) are
    those of [`MQTLlava.from_pretrained`].
    """
    return MQTLlava.from_pretrained(path, device=device, dtype=dtype, **kwargs)
