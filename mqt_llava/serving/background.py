"""Running an app with uvicorn in a background thread, on a free loopback port."""

from __future__ import annotations

import socket
import threading
import time

from fastapi import FastAPI


class BackgroundServer:
    """Runs an app with uvicorn in a daemon thread on a free loopback port (tests, benchmarks).

    Example:
        >>> with BackgroundServer(app) as server:
        ...     httpx.get(f"{server.url}/health")
    """

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host, self.port = self.sock.getsockname()[:2]
        from .server import uvicorn_options

        settings = getattr(app.state, "settings", None)
        options = uvicorn_options(settings) if settings is not None else {}
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="on", **options
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("The server did not start.")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
