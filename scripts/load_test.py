"""A bounded load test of `mqt-llava serve`: p50/p99 latency and error counts at 1, 4, 16 clients.

Starts `mqt-llava serve` in a child process on a free 127.0.0.1 port (or in this process with
`--in-process`, or targets `--url`, which must be a loopback address), then for each concurrency
level sends a fixed number of chat completions with an image, spread over that many client
threads, each client sending its next request when the last one is answered (after a 429, once
the Retry-After delay has passed). Budgets cycle over several values, so batches mix budgets.

Expected: no errors at all while the clients fit in the server (concurrency <= max_queue +
max_batch); beyond that, 429s (the bounded queue refusing work) and nothing else. The script
exits with status 1 if it sees anything else.

    python scripts/load_test.py --model build/fixture-model
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank), e.g. q=99; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, int(np.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def image_uri(size: int, seed: int) -> str:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def run_level(
    url: str, model: str, concurrency: int, requests: int, budgets: list[int], max_tokens: int
) -> dict:
    """Sends `requests` requests from `concurrency` closed-loop clients; returns the tallies."""
    images = [image_uri(64, seed) for seed in range(4)]
    latencies: list[float] = []
    statuses: Counter = Counter()
    lock = threading.Lock()
    counter = iter(range(requests))

    def client() -> None:
        with httpx.Client(base_url=url, timeout=300) as http:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                body = {
                    "model": model,
                    "max_tokens": max_tokens,
                    "temperature": 0,
                    "num_visual_tokens": budgets[i % len(budgets)],
                    "messages": [{"role": "user", "content": [
                        {"type": "image_url", "image_url": {"url": images[i % len(images)]}},
                        {"type": "text", "text": f"Question {i}: what is in the picture?"}]}],
                }  # fmt: skip
                start = time.perf_counter()
                try:
                    response = http.post("/v1/chat/completions", json=body)
                    status = response.status_code
                except httpx.HTTPError as err:
                    status, response = type(err).__name__, None
                elapsed = time.perf_counter() - start
                if status == 429:  # a polite client, as the openai SDK: wait as told
                    time.sleep(min(float(response.headers.get("retry-after", 1)), 5))
                with lock:
                    statuses[status] += 1
                    if status == 200:
                        latencies.append(elapsed)

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {
        "concurrency": concurrency,
        "requests": requests,
        "ok": statuses.pop(200, 0),
        "429": statuses.pop(429, 0),
        "other_errors": dict(statuses),
        "p50_ms": 1000 * percentile(latencies, 50),
        "p99_ms": 1000 * percentile(latencies, 99),
        "mean_ms": 1000 * statistics.fmean(latencies) if latencies else float("nan"),
        "throughput": len(latencies) / wall,
    }


class ServerProcess:
    """`mqt-llava serve` in a child process on a free loopback port, stopped on `close`."""

    def __init__(self, model: Path, max_queue: int, max_batch: int, threads: int):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.argv = [sys.executable, "-m", "mqt_llava.cli", "serve", "--model", str(model),
                     "--port", str(self.port), "--model-name", "load-test",
                     "--max-queue", str(max_queue), "--max-batch", str(max_batch)]  # fmt: skip
        self.env = {**os.environ, "OMP_NUM_THREADS": str(threads)}  # torch's intra-op threads
        self.log = tempfile.TemporaryFile()  # noqa: SIM115  (the child writes to it until closed)
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 300) -> str:
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=self.log, stderr=self.log)
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    return url
            except httpx.HTTPError:
                time.sleep(0.2)
        self.log.seek(0)
        raise RuntimeError(f"the server did not start:\n{self.log.read().decode()[-2000:]}")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.log.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="model folder to serve in-process")
    parser.add_argument("--url", help="an already running server (loopback only) instead")
    parser.add_argument("--concurrency", default="1,4,16", help="client counts, e.g. 1,4,16")
    parser.add_argument("--requests", type=int, default=64, help="requests per level (fixed)")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--budgets", default="1,16,64,256", help="cycled; clipped to the model's M")
    parser.add_argument("--max-queue", type=int, default=8)
    parser.add_argument("--max-batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the server")
    parser.add_argument(
        "--in-process", action="store_true", help="run the server in this process (tests)"
    )
    args = parser.parse_args(argv)
    if (args.model is None) == (args.url is None):
        parser.error("give exactly one of --model and --url")
    if not 1 <= args.requests <= 10_000:
        parser.error("--requests must be between 1 and 10000 (the test is bounded)")
    levels = [int(c) for c in args.concurrency.split(",")]

    server = None
    if args.model is not None and args.in_process:  # quick, but clients and server share a GIL
        import torch

        from mqt_llava.inference import load
        from mqt_llava.serving.background import BackgroundServer
        from mqt_llava.serving.engine import Engine
        from mqt_llava.serving.server import ServerSettings, create_app

        torch.set_num_threads(args.threads)
        vlm = load(args.model, device="cpu")
        engine = Engine(vlm, max_queue=args.max_queue, max_batch=args.max_batch)
        app = create_app(engine, ServerSettings(model_name="load-test"))
        server = BackgroundServer(app).__enter__()
        url = server.url
    elif args.model is not None:
        server = ServerProcess(args.model, args.max_queue, args.max_batch, args.threads)
        url = server.start()
    else:
        url = args.url.rstrip("/")
        if urllib.parse.urlsplit(url).hostname not in LOOPBACK:
            parser.error("--url must be a loopback address (127.0.0.1, localhost, ::1)")
    capacity = args.max_queue + args.max_batch if args.model is not None else None
    try:
        card = httpx.get(f"{url}/v1/models", timeout=30).json()["data"][0]
        model, M = card["id"], card["max_visual_tokens"]
        budgets = sorted({min(int(b), M) for b in args.budgets.split(",")})
        run_level(url, model, 1, 2, budgets, args.max_tokens)  # warm-up, not reported
        print(f"model {model} (M={M}), budgets {budgets}, max_tokens {args.max_tokens}, "
              f"{args.requests} requests per level, torch threads {args.threads}, "
              f"max_queue {args.max_queue}, max_batch {args.max_batch}")  # fmt: skip
        print(f"{'clients':>7} {'ok':>4} {'429':>4} {'other':>5} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'req/s':>6} {'batches':>7} {'avg batch':>9}")  # fmt: skip
        failed = False
        for level in levels:
            before = httpx.get(f"{url}/health").json()["stats"]
            r = run_level(url, model, level, args.requests, budgets, args.max_tokens)
            after = httpx.get(f"{url}/health").json()["stats"]
            other = sum(r["other_errors"].values())
            batches = after["batches"] - before["batches"]
            served = after["completed"] - before["completed"]
            print(f"{level:>7} {r['ok']:>4} {r['429']:>4} {other:>5} {r['p50_ms']:>8.1f} "
                  f"{r['p99_ms']:>8.1f} {r['throughput']:>6.1f} "
                  f"{batches:>7} {served / max(batches, 1):>9.1f}")  # fmt: skip
            if other:
                print(f"  errors: {r['other_errors']}")
            unexpected_429 = capacity is not None and level <= capacity and r["429"]
            failed |= bool(other or unexpected_429)
        print("verdict:", "FAIL" if failed else "ok (no errors; 429s only beyond the queue bound)")
        return 1 if failed else 0
    finally:
        if server is not None:
            server.__exit__(None, None, None)


if __name__ == "__main__":
    sys.exit(main())
