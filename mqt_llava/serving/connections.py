"""Connection-level defences of the HTTP server: deadlines, a connection cap, quiet logs.

uvicorn closes a kept-alive connection that stays idle after a response, but not a new
connection that never sends a request, nor one that sends its request head a byte at a time
(each byte re-arms nothing and cancels the keep-alive timer). Enough of them exhaust the file
descriptors. [`GuardedH11Protocol`] adds:

- a deadline for each request head: from the connection (or the end of the last response) to a
  complete head, `header_timeout` seconds, after which the connection is closed;
- a cap on open connections: one over `max_connections` is closed at once, before it costs more
  than its socket (file descriptors run out far later).

Slow bodies are the app's to bound (`ServerSettings.body_timeout`: a 408). Repeated log lines
(e.g. `accept()` failing at thousands per second) are rate-limited by [`RateLimitFilter`].
"""

from __future__ import annotations

import asyncio
import logging
import resource
import threading
import time

from uvicorn.protocols.http.h11_impl import H11Protocol

# Loggers that repeat themselves under attack: asyncio's accept loop, uvicorn's protocol warnings.
NOISY_LOGGERS = ("asyncio", "uvicorn.error", "mqt_llava.serving.server")


def default_max_connections() -> int:
    """256, or fewer when the process may open fewer than 512 files (half stays for the rest)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 256
    return max(8, min(256, soft // 2))


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request-head deadline and a connection cap.

    Configure by subclassing (see [`guarded_protocol`]): uvicorn builds one instance per
    connection with its own arguments.
    """

    header_timeout: float = 10.0
    max_connections: int = 256

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        if len(self.connections) > self.max_connections:
            logging.getLogger("uvicorn.error").warning(
                "Closing a new connection: %d are open (the limit is %d).",
                len(self.connections),
                self.max_connections,
            )
            transport.abort()
            return
        self._arm_head_deadline(None)

    def _arm_head_deadline(self, cycle) -> None:
        self._cancel_head_deadline()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_late, cycle)

    def _cancel_head_deadline(self) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
            self._head_timer = None

    def _head_late(self, cycle) -> None:
        self._head_timer = None
        if self.cycle is cycle and not self.transport.is_closing():  # no new request head yet
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        waiting_for = self.cycle
        super().data_received(data)
        if self.cycle is not waiting_for:  # a complete request head arrived
            self._cancel_head_deadline()

    def on_response_complete(self) -> None:
        finished = self.cycle
        super().on_response_complete()
        # The next request head (or the rest of an unread body) gets the same deadline; a
        # pipelined request already parsed by the call above needs none.
        if not self.transport.is_closing() and self.cycle is finished:
            self._arm_head_deadline(finished)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_deadline()
        super().connection_lost(exc)


def guarded_protocol(header_timeout: float, max_connections: int) -> type[GuardedH11Protocol]:
    """A [`GuardedH11Protocol`] class with these limits, for `uvicorn.Config(http=...)`."""
    return type(
        "GuardedH11Protocol",
        (GuardedH11Protocol,),
        {"header_timeout": header_timeout, "max_connections": max_connections},
    )


class RateLimitFilter(logging.Filter):
    """Lets the same message (logger, level, template) through at most once per `period` seconds.

    The next one let through says how many were suppressed meanwhile.
    """

    def __init__(self, period: float = 10.0):
        super().__init__()
        self.period = period
        self._seen: dict[tuple, list] = {}  # key -> [last time let through, suppressed since]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        now = time.monotonic()
        with self._lock:
            entry = self._seen.get(key)
            if entry is not None and now - entry[0] < self.period:
                entry[1] += 1
                return False
            suppressed = entry[1] if entry is not None else 0
            self._seen[key] = [now, 0]
            if len(self._seen) > 1024:  # bounded memory for messages that vary
                self._seen = {key: self._seen[key]}
        if suppressed:
            record.msg = f"{record.msg} [{suppressed} similar messages suppressed]"
        return True


def install_log_rate_limit(period: float = 10.0) -> None:
    """Adds one [`RateLimitFilter`] to each of `NOISY_LOGGERS` (once per process)."""
    for name in NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RateLimitFilter) for f in logger.filters):
            logger.addFilter(RateLimitFilter(period))
