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

# Where an installed package keeps its bundled default model (written by the ShapesVQA recipe).
BUNDLED_MODEL_DIR = Path(__file__).resolve().parent.parent / "assets" / "default-model"


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
        dtype: torch.dtype | None = None,
        template: str = "llava_v1",
    ) -> MQTLlava:
        """Loads a model folder (the bundled default model when `path` is None).

        Args:
            path: A local folder or a hub id (hub ids may download; local folders never do).
            device: Defaults to CUDA when available, else CPU.
            dtype: Defaults to bfloat16 on CUDA and float32 on CPU.
            template: Chat template used to wrap questions.
        """
        path = default_model_dir() if path is None else path
        local = isinstance(path, Path) or Path(path).exists()
        if local and not (Path(path) / "config.json").is_file():
            raise FileNotFoundError(f"{path} is not a model folder (no config.json).")
        device = torch.device(device) if device is not None else default_device()
        if dtype is None:
            dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype).to(device)
        processor = AutoProcessor.from_pretrained(path)
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
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}.")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}.")
        kwargs = {"max_new_tokens": max_new_tokens, "do_sample": temperature > 0}
        if temperature > 0:
            kwargs["temperature"] = temperature
            kwargs["top_p"] = top_p if top_p is not None else 1.0
        return kwargs

    @torch.inference_mode()
    def ask(
        self,
        image: ImageInput,
        question: str,
        num_visual_tokens: int | None = None,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        top_p: float | None = None,
    ) -> str:
        """Answers a question about an image.

        Args:
            image: A path, bytes, PIL image or uint8 array.
            question: The question, without `<image>` (the template places the image).
            num_visual_tokens: The budget m in [1, M]; the model's default when `None`.
            max_new_tokens: Upper bound on the answer's length in tokens.
            temperature: 0 for greedy decoding, otherwise the sampling temperature.
            top_p: Nucleus sampling mass when sampling.

        Returns:
            The answer text.
        """
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

    def ask_budgets(
        self,
        image: ImageInput,
        question: str,
        budgets: Sequence[int],
        max_new_tokens: int = 64,
        temperature: float = 0.0,
    ) -> list[Answer]:
        """Answers the same question at several budgets, timing each answer."""
        budgets = [check_num_visual_tokens(m, self.max_visual_tokens) for m in budgets]
        answers = []
        for m in budgets:
            start = time.perf_counter()
            text = self.ask(image, question, m, max_new_tokens, temperature)
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
    dtype: torch.dtype | None = None,
) -> MQTLlava:
    """Loads a model folder (or the bundled default model) for question answering."""
    return MQTLlava.from_pretrained(path, device=device, dtype=dtype)
