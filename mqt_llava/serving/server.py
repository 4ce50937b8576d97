"""An OpenAI-compatible HTTP server: `POST /v1/chat/completions`, `GET /v1/models`, `GET /health`.

The request path, in order: Host header (DNS rebinding) → API key → `Content-Type:
application/json` (no CORS-simple requests from web pages) → body size (`Content-Length`, then
the bytes actually read, within `body_timeout`) → JSON → every field
([`protocol`](protocol.py)) → images (sources, bytes, header pixel count, then decoding;
[`image_sources`](image_sources.py)) → tokenization and context length →
the engine's bounded queue (429 when full). Any refusal is a 4xx in OpenAI's error shape;
an unexpected exception is logged and answered 500 without stopping the server.

Images are loaded and preprocessed in at most `image_workers` threads at once; text-only
requests never wait for those slots. A non-streamed answer is cancelled when its client hangs
up, as a stream is. Connection-level limits are in [`connections`](connections.py), the
response bodies (a completion, or a stream of chunks) in [`replies`](replies.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .connections import default_max_connections, guarded_protocol, install_log_rate_limit
from .engine import ContextLengthError, Engine, Job, QueueFullError, SamplingParams
from .guards import HostCheck, check_api_key, check_content_type, read_body
from .image_sources import ImagePolicy, load_request_image
from .protocol import APIError, ChatRequest, Limits, bad_request, parse_chat_request, parse_json
from .replies import GONE, Reply
from .schema import describe_error, first_error, install_openapi, request_model

logger = logging.getLogger(__name__)

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class ServerSettings:
    """What the operator chose (see `mqt-llava serve --help`).

    Args:
        model_name: The id clients pass as `model` and `GET /v1/models` lists.
        api_key: When set, `/v1/*` requires `Authorization: Bearer <api_key>`.
        limits: Request, image and generation limits.
        images: Where images may come from.
        request_timeout: Seconds a whole answer may take (queueing included), and a stream may
            go without a new piece, before a 503.
        allowed_hosts: Host header values (without port) accepted; `None` accepts any. The
            default is loopback's names, which defeats DNS rebinding against a local server.
        body_timeout: Seconds allowed for reading a request body (then 408).
        header_timeout: Seconds allowed for each request head, from the connection or the end of
            the previous response (then the connection is closed).
        keep_alive_timeout: Seconds an idle kept-alive connection stays open.
        max_connections: Open connections; one more is closed at once.
        image_workers: Requests whose images are fetched and decoded at the same time.
    """

    model_name: str
    api_key: str | None = None
    limits: Limits = field(default_factory=Limits)
    images: ImagePolicy = field(default_factory=ImagePolicy)
    request_timeout: float = 600.0
    allowed_hosts: frozenset[str] | None = LOOPBACK_NAMES
    body_timeout: float = 30.0
    header_timeout: float = 10.0
    keep_alive_timeout: float = 5.0
    max_connections: int = field(default_factory=default_max_connections)
    image_workers: int = 4


def create_app(engine: Engine, settings: ServerSettings) -> FastAPI:
    """Builds the FastAPI app; the engine's worker runs while the app does (its lifespan)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine.start()
        yield
        engine.stop()

    app = FastAPI(title="mqt-llava", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.engine, app.state.settings = engine, settings
    created = int(time.time())
    config = engine.model.config
    decoding = asyncio.Semaphore(settings.image_workers)
    if settings.allowed_hosts is not None:
        app.add_middleware(HostCheck, allowed=settings.allowed_hosts)

    @app.exception_handler(APIError)
    async def api_error(request: Request, err: APIError) -> JSONResponse:
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code)
        body = APIError(err.status_code, str(err.detail), code=code).body()
        return JSONResponse(body, status_code=err.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        error = first_error(err.errors())  # its loc starts with body, path or query
        error = APIError(**describe_error({**error, "loc": error["loc"][1:]}, {}))
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, err: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s", request.url.path)
        body = APIError(500, "Internal server error.", type="server_error").body()
        return JSONResponse(body, status_code=500)

    @app.get("/health")
    async def health() -> dict:
        return {
            "status": "ok" if engine.alive else "worker_stopped",
            "model": settings.model_name,
            "queue": {"waiting": engine.waiting, "max": engine.max_queue},
            "max_batch": engine.max_batch,
            "stats": dict(engine.stats),
        }

    def model_card() -> dict:
        return {
            "id": settings.model_name,
            "object": "model",
            "created": created,
            "owned_by": "mqt-llava",
            "max_visual_tokens": config.num_queries,
            "default_visual_tokens": config.num_visual_tokens,
        }

    @app.get("/v1/models")
    async def list_models(request: Request) -> dict:
        check_api_key(request, settings.api_key)
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id}")
    async def get_model(request: Request, model_id: str) -> dict:
        check_api_key(request, settings.api_key)
        if model_id != settings.model_name:
            raise APIError(404, f"The model {model_id!r} does not exist.", code="model_not_found")
        return model_card()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        check_api_key(request, settings.api_key)
        check_content_type(request)
        if engine.waiting >= engine.max_queue:  # refuse before paying for images and tokens
            raise _queue_full()
        body = await read_body(request, settings.limits.max_request_bytes, settings.body_timeout)
        chat = parse_chat_request(
            parse_json(body), settings.model_name, config.num_queries, settings.limits
        )
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()

        def sink(event) -> None:  # called from the worker thread
            loop.call_soon_threadsafe(events.put_nowait, event)

        pixels = None
        if chat.images:  # text-only requests never wait for an image slot
            async with decoding:  # bounds the memory and CPU of images decoded at once
                pixels = await run_in_threadpool(_load_pixels, engine, settings, chat)
        job = await run_in_threadpool(_prepare, engine, chat, pixels, sink)
        try:
            engine.submit(job)
        except QueueFullError:
            raise _queue_full() from None
        reply = Reply(settings.model_name, chat, job)
        if chat.stream:
            stream = reply.stream(events, settings.request_timeout)
            return StreamingResponse(
                stream, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
            )
        watcher = asyncio.create_task(_cancel_on_disconnect(request, job, events))
        try:
            return await reply.complete(events, settings.request_timeout)
        finally:
            watcher.cancel()

    chat_request = request_model(settings.model_name, config.num_queries, settings.limits)
    install_openapi(app, "/v1/chat/completions", chat_request)  # the body it reads itself
    return app


async def _cancel_on_disconnect(request: Request, job: Job, events: asyncio.Queue) -> None:
    """Cancels `job` when the client hangs up (the body is read: the next message says so).

    The reply stops waiting too: a job cancelled while queued never sends another event.
    """
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            job.cancel()
            events.put_nowait(GONE)
            return


def _queue_full() -> APIError:
    return APIError(
        429,
        "The server is busy: its queue is full. Retry later.",
        "rate_limit_error",
        code="queue_full",
        headers={"Retry-After": "1"},
    )


def _load_pixels(engine: Engine, settings: ServerSettings, chat: ChatRequest):
    """Loads and preprocesses the images (in an HTTP worker thread, under an image slot)."""
    images = [load_request_image(ref, settings.images, settings.limits) for ref in chat.images]
    try:
        return engine.processor.preprocess_images(images)
    except ValueError as err:  # InvalidImageError included
        raise bad_request(str(err), "messages", "invalid_image") from None


def _prepare(engine: Engine, chat: ChatRequest, pixels, sink) -> Job:
    """Tokenizes and checks the context (in a worker thread of the HTTP server, not the model's)."""
    params = SamplingParams(
        max_tokens=chat.max_tokens,
        temperature=chat.temperature,
        top_p=chat.top_p,
        stop=tuple(chat.stop),
        seed=chat.seed,
    )
    try:
        return engine.prepare(
            chat.messages, [], chat.num_visual_tokens, params, sink, pixel_values=pixels
        )
    except ContextLengthError as err:
        raise bad_request(str(err), "messages", "context_length_exceeded") from None
    except ValueError as err:
        raise bad_request(str(err), "messages") from None


def uvicorn_options(settings: ServerSettings) -> dict:
    """`uvicorn.Config` keyword arguments for the connection limits of `settings`."""
    install_log_rate_limit()
    return {
        "http": guarded_protocol(settings.header_timeout, settings.max_connections),
        "timeout_keep_alive": settings.keep_alive_timeout,
        "h11_max_incomplete_event_size": 16 * 1024,  # a request head; h11's default too
    }


def serve(
    model: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    model_name: str | None = None,
    settings: ServerSettings | None = None,
    max_queue: int = 64,
    max_batch: int = 8,
    device: str | None = None,
) -> None:
    """Loads a model and serves it until interrupted.

    Args:
        model: A model folder; the bundled default model when `None`.
        host: The interface to bind; loopback by default (anything else warns without a key).
        port: The TCP port.
        api_key: Required as a bearer token on `/v1/*` when set.
        model_name: The model id clients use; the folder's name by default.
        settings: Limits and image policy (its `model_name` and `api_key` are replaced).
        max_queue: Requests allowed to wait; more get 429.
        max_batch: Requests generated together.
        device: cpu, cuda, ... (default: cuda if available).
    """
    import dataclasses
    import sys
    from pathlib import Path

    import uvicorn

    from ..inference import load
    from ..inference.pipeline import default_model_dir

    if host not in ("127.0.0.1", "localhost", "::1") and not api_key:
        print(
            f"warning: serving on {host} without --api-key: anyone who can reach it may use it.",
            file=sys.stderr,
        )
    folder = Path(model) if model is not None else default_model_dir()
    name = model_name or folder.resolve().name
    vlm = load(folder, device=device)
    settings = dataclasses.replace(
        settings or ServerSettings(model_name=name), model_name=name, api_key=api_key or None
    )
    if settings.allowed_hosts == LOOPBACK_NAMES and host not in LOOPBACK_NAMES:
        # Bound to one address: that address too. Bound to every interface: the names clients
        # use are unknown, so no check unless --allowed-hosts lists them.
        wildcard = host in ("", "0.0.0.0", "::")
        allowed = None if wildcard else LOOPBACK_NAMES | {host.strip("[]").lower()}
        settings = dataclasses.replace(settings, allowed_hosts=allowed)
    engine = Engine(
        vlm, max_queue=max_queue, max_batch=max_batch,
        default_max_tokens=settings.limits.default_max_tokens,
    )  # fmt: skip
    app = create_app(engine, settings)
    print(f"Serving {name!r} on http://{host}:{port}/v1 (Ctrl-C to stop)", file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level="info", **uvicorn_options(settings))
