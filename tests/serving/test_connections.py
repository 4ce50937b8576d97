"""Connection-level attacks on a real server: idle, slow-header and slow-body connections, too
many connections, clients that hang up on a non-streamed answer, and image hosts that trickle.
Each is bounded by a deadline, and the server keeps answering valid requests meanwhile."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from serving_helpers import MODEL_NAME, png_bytes, running_server, user_message

from mqt_llava.serving.connections import RateLimitFilter
from mqt_llava.serving.image_sources import ImagePolicy

TEXT = {"model": MODEL_NAME, "messages": [user_message("hi")], "max_tokens": 2}


class Trickle(BaseHTTPRequestHandler):
    """An allow-listed image host that sends its PNG a byte every 0.2 s (never times out a read)."""

    def do_GET(self):
        data = png_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        for byte in data:
            try:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.2)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def image_host():
    host = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    host.daemon_threads = True
    thread = threading.Thread(target=host.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{host.server_address[1]}"
    host.shutdown()


@pytest.fixture(scope="module")
def server(tiny_vlm):
    policy = ImagePolicy(allowed_hosts=frozenset({"127.0.0.1"}), fetch_timeout=1.5)
    with running_server(
        tiny_vlm, images=policy, header_timeout=1.0, body_timeout=1.0, keep_alive_timeout=1.0,
        max_connections=8, image_workers=1,
    ) as server:  # fmt: skip
        yield server


def connect(server) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=10)
    return sock


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed `sock` (reading what it sent), or None if it did not."""
    start = time.monotonic()
    sock.settimeout(0.1)
    while time.monotonic() - start < seconds:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - start
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - start
    return None


def rest_of_response(sock: socket.socket, received: bytes, seconds: float = 3.0) -> bytes:
    """`received` completed to the end of its body (by its Content-Length), or to what came
    before the server closed the connection or `seconds` passed."""
    deadline = time.monotonic() + seconds
    sock.settimeout(0.1)
    while time.monotonic() < deadline:
        head, sep, body = received.partition(b"\r\n\r\n")
        if sep:
            lengths = [
                int(line.split(b":", 1)[1])
                for line in head.lower().split(b"\r\n")
                if line.startswith(b"content-length:")
            ]
            if lengths and len(body) >= lengths[0]:
                return received
        try:
            more = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return received
        if not more:
            return received
        received += more
    return received


def post_text(server) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/chat/completions", json=TEXT, timeout=30)


def test_an_idle_connection_is_closed(server):
    sock = connect(server)
    assert closed_within(sock, 5) is not None  # header_timeout is 1 s
    assert post_text(server).status_code == 200


def test_a_slow_request_head_is_closed(server):
    sock = connect(server)
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    start = time.monotonic()
    for byte in head:  # a byte every 0.1 s: each arrival used to cancel every timer
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            break
        time.sleep(0.1)
        if time.monotonic() - start > 4:
            break
    assert closed_within(sock, 3) is not None
    assert time.monotonic() - start < 4
    assert post_text(server).status_code == 200


def test_a_slow_body_gets_a_408(server):
    sock = connect(server)
    body = json.dumps(TEXT).encode()
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:5]
    )
    start = time.monotonic()
    sock.settimeout(0.3)
    answer = b""
    for byte in body[5:]:  # trickle the rest
        try:
            sock.sendall(bytes([byte]))
            answer += sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            break
        if answer:
            break
    answer = rest_of_response(sock, answer)  # the head and the body may come in separate reads
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"code":"body_timeout"' in answer
    assert time.monotonic() - start < 4
    assert post_text(server).status_code == 200


def test_connections_over_the_limit_are_closed_at_once(server):
    socks = [connect(server) for _ in range(12)]  # the limit is 8
    try:
        time.sleep(0.3)
        closed = sum(closed_within(sock, 0.3) is not None for sock in socks)
        assert closed >= 4
    finally:
        for sock in socks:
            sock.close()
    time.sleep(0.2)
    assert post_text(server).status_code == 200


def test_a_non_streamed_answer_stops_when_its_client_hangs_up(server):
    before = httpx.get(f"{server.url}/health").json()["stats"]
    body = json.dumps({**TEXT, "max_tokens": 400, "stop": ["never-said"]}).encode()
    sock = connect(server)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )
    time.sleep(0.3)
    sock.close()  # hang up before the answer
    for _ in range(200):
        stats = httpx.get(f"{server.url}/health").json()["stats"]
        if stats["cancelled"] > before["cancelled"]:
            break
        time.sleep(0.05)
    assert stats["cancelled"] == before["cancelled"] + 1
    assert stats["completed"] == before["completed"]  # stopped, not generated to the end


def test_a_trickling_image_host_is_cut_off_and_text_requests_do_not_wait(server, image_host):
    payload = {**TEXT, "messages": [user_message("What is this?", f"{image_host}/cat.png")]}
    result = {}

    def fetch():
        start = time.monotonic()
        result["response"] = httpx.post(
            f"{server.url}/v1/chat/completions", json=payload, timeout=30
        )
        result["seconds"] = time.monotonic() - start

    thread = threading.Thread(target=fetch)
    thread.start()
    time.sleep(0.3)  # the fetch holds the only image slot (image_workers=1) now
    start = time.monotonic()
    assert post_text(server).status_code == 200
    text_seconds = time.monotonic() - start
    thread.join(30)
    response = result["response"]
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "image_fetch_timeout"
    assert result["seconds"] < 4  # fetch_timeout is 1.5 s in all, not per read
    assert text_seconds < result["seconds"]


def test_repeated_log_lines_are_rate_limited():
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger = logging.getLogger("test.rate-limit")
    logger.propagate = False
    logger.addHandler(Keep())
    logger.addFilter(RateLimitFilter(period=0.5))
    for _ in range(1000):
        logger.error("socket.accept() out of system resource: %s", "Too many open files")
    time.sleep(0.6)
    logger.error("socket.accept() out of system resource: %s", "Too many open files")
    logger.error("another message")
    assert len(records) == 3
    assert "999 similar messages suppressed" in records[1]


def test_a_request_abandoned_while_queued_ends_its_handler(server):
    """A job cancelled in the queue sends no more events: its handler must not wait for one."""
    blocker = {**TEXT, "max_tokens": 400, "temperature": 0.7, "seed": 1, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=blocker, timeout=30) as r:
        lines = r.iter_lines()
        assert next(lines).startswith("data: ")  # the worker is busy with this one now
        body = json.dumps(TEXT).encode()
        sock = connect(server)
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )
        time.sleep(0.3)
        sock.close()  # hang up while queued
    tasks = server.server.server_state.tasks
    for _ in range(100):
        if not tasks:
            break
        time.sleep(0.05)
    assert not tasks  # before: the abandoned handler waited request_timeout (600 s)
    assert post_text(server).status_code == 200
