"""The OpenAI response bodies of a chat request: a `chat.completion`, or a stream of
`chat.completion.chunk` server-sent events, built from the engine's events for one job."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator

from .engine import Delta, Failed, Finished, Job
from .protocol import APIError, ChatRequest, bad_request

logger = logging.getLogger(__name__)

GONE = object()  # put in a reply's events when its client hangs up


class Reply:
    """Turns a job's events into a chat.completion or a stream of chat.completion.chunk."""

    def __init__(self, model_name: str, chat: ChatRequest, job: Job):
        self.model_name, self.chat, self.job = model_name, chat, job
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())

    def usage(self, completion_tokens: int) -> dict:
        prompt = self.job.prompt_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens,
            "visual_tokens": self.job.visual_tokens,  # counted in prompt_tokens
            **(self.job.budget_usage or {}),  # "auto": the budget chosen, the prefill work
        }

    def _envelope(self, obj: str) -> dict:
        budget = self.job.budgets[0] if self.job.budgets else None
        return {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.model_name,
            "num_visual_tokens": budget,
        }

    async def _next(self, events: asyncio.Queue, timeout: float):
        try:
            event = await asyncio.wait_for(events.get(), timeout)
        except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
            raise APIError(
                503, f"No answer within {timeout} s.", type="server_error", code="timeout"
            ) from None
        if event is GONE:  # nobody will read this answer (nginx's "client closed request")
            raise APIError(499, "The client closed the request.", code="client_closed_request")
        if isinstance(event, Failed):
            if isinstance(event.error, ValueError):
                raise bad_request(str(event.error), "messages")
            raise event.error
        return event

    async def complete(self, events: asyncio.Queue, timeout: float) -> dict:
        pieces: list[str] = []
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            while True:
                left = max(0.0, deadline - asyncio.get_running_loop().time())
                if isinstance(event := await self._next(events, left), Finished):
                    break
                pieces.append(event.text)
        finally:
            self.job.cancel()  # frees the worker at once if the client went away
        message = {"role": "assistant", "content": "".join(pieces)}
        choice = {"index": 0, "message": message, "finish_reason": event.reason, "logprobs": None}
        return {
            **self._envelope("chat.completion"),
            "choices": [choice],
            "usage": self.usage(event.completion_tokens),
        }

    def _chunk(self, delta: dict, finish_reason: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return sse({**self._envelope("chat.completion.chunk"), "choices": [choice]})

    async def stream(self, events: asyncio.Queue, timeout: float) -> AsyncIterator[str]:
        try:
            yield self._chunk({"role": "assistant", "content": ""})
            while True:
                try:
                    event = await self._next(events, timeout)
                except APIError as err:  # headers are sent: report in-band, as OpenAI does
                    yield sse(err.body())
                    break
                except Exception as err:
                    logger.error("generation failed: %r", err)
                    yield sse(APIError(500, "Internal server error.", "server_error").body())
                    break
                if isinstance(event, Delta):
                    yield self._chunk({"content": event.text})
                    continue
                yield self._chunk({}, event.reason)
                if self.chat.include_usage:
                    usage = {"choices": [], "usage": self.usage(event.completion_tokens)}
                    yield sse({**self._envelope("chat.completion.chunk"), **usage})
                break
            yield "data: [DONE]\n\n"
        finally:
            self.job.cancel()


def sse(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"
