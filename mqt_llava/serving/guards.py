"""Request guards of the HTTP server: the Host header, the API key, the content type, the body read.

A web page can make a browser send "simple" cross-origin requests (`text/plain`, form bodies) to
a loopback server without a preflight, and with DNS rebinding read the answers: [`HostCheck`]
and [`check_content_type`] close both doors. [`read_body`] bounds a body's size and the time
taken to send it.
"""

from __future__ import annotations

import asyncio
import hmac

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from .protocol import APIError, bad_request


class HostCheck:
    """ASGI middleware: refuses a Host header outside the allow-list (421, OpenAI's error shape).

    A web page can make a browser send simple requests to a loopback server, and with DNS
    rebinding read the answers; the browser then sends the attacker's host name, refused here.
    """

    def __init__(self, app, allowed: frozenset[str]):
        self.app, self.allowed = app, frozenset(h.lower() for h in allowed)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            name = _host_name(host)
            if name not in self.allowed:
                body = APIError(
                    421,
                    f"The Host header {host[:100]!r} is not one this server answers to (allowed: "
                    f"{', '.join(sorted(self.allowed))}); see serve --allowed-hosts.",
                    code="invalid_host",
                ).body()
                response = JSONResponse(body, status_code=421)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _host_name(host: str) -> str:
    """`example.com:8000` -> `example.com`; `[::1]:8000` -> `::1`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def check_api_key(request: Request, api_key: str | None) -> None:
    """Refuses a request without `Authorization: Bearer <api_key>` (401), when a key is set."""
    if api_key is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise APIError(
            401,
            "Missing API key: send the header 'Authorization: Bearer <key>'.",
            type="authentication_error",
            code="missing_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(given.strip().encode(), api_key.encode()):
        raise APIError(
            401,
            "Incorrect API key provided.",
            type="authentication_error",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )


def check_content_type(request: Request) -> None:
    """Refuses (415) a request whose body is not declared `application/json`."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise APIError(
            415,
            f"Content-Type must be application/json, got {media[:100] or 'none'!r}.",
            code="unsupported_media_type",
        )


async def read_body(request: Request, limit: int, timeout: float = 30.0) -> bytes:
    """Reads a body of at most `limit` bytes within `timeout` seconds (else 413 or 408)."""
    too_large = APIError(
        413,
        f"The request body is larger than the {limit} bytes accepted.",
        code="request_too_large",
    )
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise bad_request("Invalid Content-Length header.", code="invalid_header")
        if int(declared) > limit:
            raise too_large
    body = bytearray()

    async def read() -> None:
        async for chunk in request.stream():  # also bounds chunked bodies, which declare no length
            body.extend(chunk)
            if len(body) > limit:
                raise too_large

    try:  # a body sent a byte at a time would hold the connection and a task forever
        await asyncio.wait_for(read(), timeout)
    except ClientDisconnect:  # nobody to answer; not a server error
        gone = APIError(499, "The client closed the request.", code="client_closed_request")
        raise gone from None
    except asyncio.TimeoutError:
        raise APIError(
            408, f"The request body was not received within {timeout} s.", code="body_timeout"
        ) from None
    return bytes(body)
