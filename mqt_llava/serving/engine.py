"""The generation engine: one worker thread owns the model; requests wait in a bounded queue.

Requests are *batched* when they can share one `generate` call: every greedy request is
compatible with every other (each row has its own prompt, images, budget, `max_tokens` and stop
strings; left padding keeps the rows independent), and sampled requests without a seed are
compatible when their temperature and top_p agree. A request with a seed runs alone so that its
answer depends on the seed only. A batch takes the oldest waiting request and up to
`max_batch - 1` compatible ones behind it, in arrival order.

Each request receives its answer as events through its own `sink`: [`Delta`] pieces of text as
they are decoded (stop strings held back until they are ruled out), then one [`Finished`] or
[`Failed`].
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from ..inference import MQTLlava
from ..inference.generation import generation_kwargs
from ..model.configuration import resolve_num_visual_tokens
from ..model.padding import pad_batch
from .detokenize import StreamDecoder

logger = logging.getLogger(__name__)


class QueueFullError(RuntimeError):
    """The engine's queue is full; the client should retry later."""


class ContextLengthError(ValueError):
    """The prompt plus the requested answer do not fit in the language model's context."""


@dataclass
class Delta:
    text: str


@dataclass
class Finished:
    reason: str  # "stop" (end of sequence or stop string) or "length" (max_tokens reached)
    completion_tokens: int


@dataclass
class Failed:
    error: BaseException


Event = Delta | Finished | Failed


@dataclass(frozen=True)
class SamplingParams:
    """How to generate one answer (validated by the caller)."""

    max_tokens: int | None = None  # None: as many as the context allows, up to the default
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(eq=False)
class Job:
    """One prepared request: token ids, images and where to send its answer."""

    input_ids: list[int]
    pixel_values: torch.Tensor | None  # (I, 3, H, W)
    budgets: list[int]
    params: SamplingParams
    max_tokens: int
    sink: Callable[[Event], None]
    cancelled: threading.Event = field(default_factory=threading.Event)
    key: tuple = ()  # jobs with equal keys may share a generate call
    finished: bool = False  # set by the worker once Finished was sent
    prompt: str = ""  # the rendered prompt
    auto: bool = False  # num_visual_tokens "auto": chosen by serving.auto_budget
    budget_usage: dict | None = None  # the chosen budget and the prefill work, once known

    @property
    def prompt_tokens(self) -> int:
        """Prompt length in tokens, visual tokens included."""
        return len(self.input_ids)

    @property
    def visual_tokens(self) -> int:
        return sum(self.budgets)

    def cancel(self) -> None:
        """Stops this job's generation at the next token (harmless once finished)."""
        self.cancelled.set()


class Engine:
    """Owns a model in one worker thread and serves jobs from a bounded queue.

    Args:
        vlm: The loaded model and processor.
        max_queue: Jobs allowed to wait; one more is refused with [`QueueFullError`].
        max_batch: Jobs generated together in one call (1 disables batching).
        default_max_tokens: Answer length when a request sets none.
        template: The chat template of prompts.
    """

    def __init__(
        self,
        vlm: MQTLlava,
        max_queue: int = 64,
        max_batch: int = 8,
        default_max_tokens: int = 256,
        template: str = "llava_v1",
    ):
        if max_queue < 1 or max_batch < 1:
            raise ValueError(f"max_queue and max_batch must be >= 1, got {max_queue}, {max_batch}.")
        self.vlm, self.max_queue, self.max_batch = vlm, max_queue, max_batch
        self.default_max_tokens, self.template = default_max_tokens, template
        self.processor = vlm.processor
        self.model = vlm.model
        config = self.model.config
        self.context_length = getattr(config.text_config, "max_position_embeddings", None)
        eos = self.model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        self.eos_ids = (set(eos) | {self.processor.tokenizer.eos_token_id}) - {None}
        self._waiting: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        # Tokenization runs in request threads; the tokenizer's state is not thread-safe.
        self._prep_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._ids = itertools.count()
        self.stats = {"completed": 0, "cancelled": 0, "failed": 0, "batches": 0, "largest_batch": 0}

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> Engine:
        if self._thread is None or not self._thread.is_alive():
            self._stopping = False
            self._thread = threading.Thread(target=self._loop, name="mqt-engine", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def waiting(self) -> int:
        """Jobs waiting whose clients are still there (abandoned ones hold no place)."""
        return sum(not job.cancelled.is_set() for job in list(self._waiting))

    # -- requests ---------------------------------------------------------------------------------
    def prepare(
        self,
        messages: list[dict],
        images: list,
        num_visual_tokens: int | None,
        params: SamplingParams,
        sink: Callable[[Event], None],
        pixel_values: torch.Tensor | None = None,
    ) -> Job:
        """Renders the conversation, tokenizes it and checks it fits the context.

        Images are preprocessed outside the tokenizer's lock, so that a large image never makes
        a text-only request wait; a caller may also pass them preprocessed (`pixel_values`).

        Args:
            messages: Chat-template messages (`{"type": "image"}` parts in place of images).
            images: The images (PIL), one per image part, in order.
            num_visual_tokens: The budget for every image; the model's default when `None`.
            params: Sampling parameters.
            sink: Receives the job's events, from the worker thread.
            pixel_values: `processor.preprocess_images(images)`, when the caller has it.

        Raises:
            ValueError: Bad budget, placeholder/image mismatch, or a prompt longer than the
                tokenizer accepts.
            ContextLengthError: The prompt and answer do not fit in the context.
        """
        processor = self.processor
        if images and pixel_values is None:
            pixel_values = processor.preprocess_images(images)
        count = len(images) if images else (0 if pixel_values is None else len(pixel_values))
        prompt = processor.apply_template(messages, self.template)
        if prompt.count(processor.image_token) != count:
            raise ValueError(
                f"The conversation holds {prompt.count(processor.image_token)} image placeholders "
                f"but {count} images were given."
            )
        auto = num_visual_tokens == "auto"
        if auto:  # the context must fit the largest budget the policy may choose
            num_visual_tokens = self.model.config.num_queries
        budgets = resolve_num_visual_tokens(
            num_visual_tokens, count, processor.num_queries, processor.num_visual_tokens
        )
        with self._prep_lock:
            ids = processor.tokenize_prompt(prompt, budgets)
        limit = processor.tokenizer.model_max_length
        if limit is not None and limit < 1e9 and len(ids) > limit:
            raise ValueError(
                f"The prompt is {len(ids)} tokens long (visual tokens included) but the model "
                f"takes at most {limit}: shorten the text or lower num_visual_tokens."
            )
        budgets = budgets if count else []
        room = (self.context_length or 10**9) - len(ids)
        max_tokens = params.max_tokens or min(self.default_max_tokens, room)
        if max_tokens > room or room < 1:
            raise ContextLengthError(
                f"The prompt is {len(ids)} tokens ({sum(budgets)} of them visual) and the answer "
                f"may take {max_tokens}, but the model's context is {self.context_length} tokens: "
                "shorten the conversation, lower num_visual_tokens or max_tokens."
            )
        job = Job(ids, pixel_values if count else None, budgets, params, max_tokens, sink)
        job.prompt, job.auto = prompt, auto
        if auto:
            job.budgets = []  # known once the policy has chosen
        sampled = params.temperature > 0
        if not sampled:
            job.key = ("greedy",)
        elif params.seed is None:
            job.key = ("sample", params.temperature, params.top_p)
        else:  # alone: its answer must depend on its seed, not on its batch-mates
            job.key = ("seeded", next(self._ids))
        return job

    def submit(self, job: Job) -> None:
        """Queues a prepared job; raises [`QueueFullError`] if `max_queue` jobs already wait."""
        with self._cond:
            if not self.alive:
                raise RuntimeError("The engine's worker is not running.")
            if len(self._waiting) >= self.max_queue:  # cancelled jobs give their places back
                kept = [job for job in self._waiting if not job.cancelled.is_set()]
                self.stats["cancelled"] += len(self._waiting) - len(kept)
                self._waiting = collections.deque(kept)
            if len(self._waiting) >= self.max_queue:
                raise QueueFullError(
                    f"The server is busy ({len(self._waiting)} requests waiting); retry later."
                )
            self._waiting.append(job)
            self._cond.notify()

    # -- worker -----------------------------------------------------------------------------------
    def _next_batch(self) -> list[Job]:
        with self._cond:
            while not self._stopping:
                while self._waiting and self._waiting[0].cancelled.is_set():
                    self._waiting.popleft()
                    self.stats["cancelled"] += 1  # its client left while it waited
                if self._waiting:
                    break
                self._cond.wait()
            if self._stopping:
                return []
            first = self._waiting.popleft()
            batch = [first]
            for job in list(self._waiting):
                if len(batch) >= self.max_batch:
                    break
                if job.key == first.key and not job.cancelled.is_set():
                    self._waiting.remove(job)
                    batch.append(job)
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if not batch:
                return
            try:
                self._generate(batch)
                cancelled = sum(not job.finished for job in batch)  # clients that went away
                self.stats["cancelled"] += cancelled
                self.stats["completed"] += len(batch) - cancelled
            except Exception as err:  # one bad batch must not end the worker
                logger.exception("generation failed for a batch of %d", len(batch))
                self.stats["failed"] += len(batch)
                for job in batch:
                    if not job.finished:
                        _emit(job, Failed(err))

    @torch.inference_mode()
    def _generate(self, batch: list[Job]) -> None:
        self.stats["batches"] += 1
        self.stats["largest_batch"] = max(self.stats["largest_batch"], len(batch))
        if any(job.auto for job in batch):  # fixed and automatic budgets, answered together
            from .auto_budget import generate_jobs

            return generate_jobs(self, batch)
        device = self.model.device
        pad = self.processor.tokenizer.pad_token_id
        # Left padding: every row's answer starts at the same position.
        input_ids, attention_mask = pad_batch([job.input_ids for job in batch], pad, "left")
        inputs = {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}
        pixels = [job.pixel_values for job in batch if job.pixel_values is not None]
        if pixels:
            inputs["pixel_values"] = torch.cat(pixels).to(device)
            inputs["num_visual_tokens"] = [m for job in batch for m in job.budgets]
        params = batch[0].params
        config = GenerationConfig(
            **generation_kwargs(
                max(job.max_tokens for job in batch), params.temperature, params.top_p
            ),
            pad_token_id=pad,
            eos_token_id=sorted(self.eos_ids) or None,
        )
        if params.seed is not None:
            torch.manual_seed(params.seed)  # only this thread draws random numbers
        decoders = [self._decoder(job) for job in batch]
        self.model.generate(
            **inputs,
            generation_config=config,
            streamer=_BatchStreamer(decoders),
            stopping_criteria=StoppingCriteriaList([_RowsDone(decoders)]),
        )
        for decoder in decoders:
            decoder.finish("length")

    def _decoder(self, job: Job) -> StreamDecoder:
        def on_finish(reason: str, tokens: int) -> None:
            job.finished = True
            _emit(job, Finished(reason, tokens))

        return StreamDecoder(
            self.processor.tokenizer, self.eos_ids, job.params.stop, job.max_tokens,
            on_text=lambda text: _emit(job, Delta(text)), on_finish=on_finish,
            cancelled=job.cancelled,
        )  # fmt: skip


def _emit(job: Job, event: Event) -> None:
    try:
        job.sink(event)
    except Exception:  # a client that went away must not take the worker with it
        job.cancel()


class _BatchStreamer(BaseStreamer):
    """Receives each step's (B,) new tokens from `generate` and hands them to the rows."""

    def __init__(self, decoders: list[StreamDecoder]):
        self.decoders = decoders
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate first passes the prompt
            self.prompt_seen = True
            return
        for decoder, token in zip(self.decoders, value.reshape(-1).tolist(), strict=True):
            decoder.push(token)

    def end(self) -> None:
        pass


class _RowsDone(StoppingCriteria):
    """Stops each row once its decoder is done (stop string, max_tokens, cancelled)."""

    def __init__(self, decoders: list[StreamDecoder]):
        self.decoders = decoders

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.BoolTensor:
        done = [d.done or d.cancelled.is_set() for d in self.decoders]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
