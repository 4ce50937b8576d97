"""Streaming detokenization: token ids in, text pieces out, honouring stop strings and limits."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence


class StreamDecoder:
    """Turns one answer's tokens, as they are generated, into text pieces.

    Decoding is incremental (as vLLM does it): each new token's text is the decoding of a short
    window of recent tokens minus that of the window without it, appended once it no longer ends
    mid-way through a multi-byte character. The answer *is* the concatenation of these pieces, so
    a streamed answer and a whole one are the same string, even where decoding all tokens at once
    would group byte tokens differently. Text that could be the start of a stop string is held
    back until ruled out; a stop string ends the answer and is not part of it (as in OpenAI's API).

    Args:
        tokenizer: Decodes token ids (`decode(ids, skip_special_tokens=True)`).
        eos_ids: Token ids that end the answer.
        stops: Stop strings.
        max_tokens: The answer's length limit in tokens.
        on_text: Receives each new piece of text.
        on_finish: Receives the finish reason ("stop" or "length") and the number of tokens.
        cancelled: When set, the decoder goes quiet and reports done.
    """

    def __init__(
        self,
        tokenizer,
        eos_ids: set[int],
        stops: Sequence[str],
        max_tokens: int,
        on_text: Callable[[str], None],
        on_finish: Callable[[str, int], None],
        cancelled: threading.Event | None = None,
    ):
        self.tokenizer, self.eos_ids, self.stops = tokenizer, eos_ids, tuple(stops)
        self.max_tokens, self.on_text, self.on_finish = max_tokens, on_text, on_finish
        self.cancelled = cancelled or threading.Event()
        self.ids: list[int] = []  # the answer's tokens, end-of-sequence excluded
        self.count = 0  # tokens generated, end-of-sequence included
        self.prefix_offset = self.read_offset = 0  # the decoding window is ids[prefix_offset:]
        self.text = ""  # decoded so far
        self.sent = 0  # characters of `text` already passed to on_text
        self.done = False

    def push(self, token: int) -> None:
        """Takes the next generated token."""
        if self.done or self.cancelled.is_set():
            self.done = True
            return
        self.count += 1
        if token in self.eos_ids:
            self.finish("stop")
            return
        self.ids.append(token)
        self._decode(final=False)
        if self._stopped():
            return
        if self.count >= self.max_tokens:
            self.finish("length")
        else:
            self._send(len(self.text) - held_back(self.text, self.stops))

    def finish(self, reason: str) -> None:
        """Ends the answer (no-op once done): flushes what was held back, reports `reason`."""
        if self.done or self.cancelled.is_set():
            self.done = True
            return
        self._decode(final=True)
        if not self._stopped():
            self._send(len(self.text))
            self._finished(reason)

    def _decode(self, final: bool) -> None:
        decode = self.tokenizer.decode
        before = decode(self.ids[self.prefix_offset : self.read_offset], skip_special_tokens=True)
        after = decode(self.ids[self.prefix_offset :], skip_special_tokens=True)
        if len(after) > len(before) and (final or not after.endswith("\ufffd")):
            piece = after[len(before) :]
            self.text += piece if self.text else piece.lstrip()
            self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)

    def _stopped(self) -> bool:
        start = max(0, self.sent - max((len(s) for s in self.stops), default=0))
        hits = [i for i in (self.text.find(s, start) for s in self.stops) if i >= 0]
        if hits:
            self._send(min(hits))
            self._finished("stop")
        return bool(hits)

    def _finished(self, reason: str) -> None:
        self.done = True
        self.on_finish(reason, self.count)

    def _send(self, end: int) -> None:
        if end > self.sent:
            piece = self.text[self.sent : end]
            self.sent = end
            self.on_text(piece)


def held_back(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters of `text` could still begin a stop string."""
    longest = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:k]):
                longest = k
                break
    return longest
