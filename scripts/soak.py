"""A bounded soak test of `mqt-llava serve`: many clients of several kinds for a fixed time.

Starts `mqt-llava serve` in a child process on a free 127.0.0.1 port (or in this process with
`--in-process`), then runs `--clients` clients for `--duration` seconds, on loopback only:

- workers (60 %): closed loop, each request with a random budget, with or without an image,
  streamed or not, 1 to `--max-tokens` tokens;
- leavers (20 %): ask for a long answer (streamed or not) and hang up after 0.05 to 1 s;
- idlers (20 %): open a connection and send nothing (half of them trickle a request head a byte
  a second); when the server closes it, they count the closure and open another.

It prints the workers' errors (anything but 200 and 429), their p50/p99 latency, how many
connections the server closed, the jobs it cancelled, and its RSS and open file descriptors
before and after. Exit status 1 if any worker saw an error or the server stopped answering.

    python scripts/soak.py --model mqt_llava/assets/default-model --clients 50 --duration 60
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_test import ServerProcess, image_uri, percentile


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Soak:
    """The clients and their tallies."""

    def __init__(self, url: str, model: str, budgets: list[int], max_tokens: int, stop_at: float):
        self.url, self.model, self.budgets, self.max_tokens = url, model, budgets, max_tokens
        self.stop_at = stop_at
        self.host, self.port = url.split("//")[1].split(":")
        self.images = [image_uri(64, seed) for seed in range(4)]
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.statuses: Counter = Counter()
        self.errors: Counter = Counter()
        self.left = self.closed_idle = 0

    def body(self, rng: random.Random, max_tokens: int, stream: bool) -> dict:
        parts = [{"type": "text", "text": "What shape is in the picture?"}]
        if rng.random() < 0.7:
            parts.insert(0, {"type": "image_url", "image_url": {"url": rng.choice(self.images)}})
        return {
            "model": self.model,
            "messages": [{"role": "user", "content": parts}],
            "max_tokens": max_tokens,
            "num_visual_tokens": rng.choice(self.budgets),
            "stream": stream,
        }

    def worker(self, seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=self.url, timeout=120) as client:
            while time.monotonic() < self.stop_at:
                stream = rng.random() < 0.3
                body = self.body(rng, rng.randint(1, self.max_tokens), stream)
                start = time.perf_counter()
                try:
                    if stream:
                        with client.stream("POST", "/v1/chat/completions", json=body) as r:
                            text = "".join(r.iter_text())
                            status = r.status_code
                            if status == 200 and not text.rstrip().endswith("[DONE]"):
                                status = "stream-incomplete"
                            elif status == 200 and '"error"' in text:
                                status = "stream-error"
                    else:
                        r = client.post("/v1/chat/completions", json=body)
                        status = r.status_code
                except httpx.HTTPError as err:
                    status = type(err).__name__
                elapsed = time.perf_counter() - start
                with self.lock:
                    self.statuses[status] += 1
                    if status == 200:
                        self.latencies.append(elapsed)
                    elif status != 429:
                        self.errors[status] += 1
                if status == 429:
                    time.sleep(1)

    def leaver(self, seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < self.stop_at:
            body = json.dumps(self.body(rng, self.max_tokens * 8, rng.random() < 0.5)).encode()
            try:
                with socket.create_connection((self.host, int(self.port)), timeout=10) as sock:
                    sock.sendall(
                        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                        % len(body)
                        + body
                    )
                    time.sleep(rng.uniform(0.05, 1.0))
            except OSError:
                pass
            with self.lock:
                self.left += 1

    def idler(self, seed: int) -> None:
        trickle = seed % 2 == 1
        head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        while time.monotonic() < self.stop_at:
            try:
                sock = socket.create_connection((self.host, int(self.port)), timeout=1)
            except OSError:
                time.sleep(0.5)
                continue
            with sock:
                sent = 0
                while time.monotonic() < self.stop_at:
                    try:
                        if trickle:
                            sock.sendall(head[sent % len(head) : sent % len(head) + 1])
                            sent += 1
                        if sock.recv(4096) == b"":
                            with self.lock:
                                self.closed_idle += 1
                            break
                    except TimeoutError:
                        continue
                    except OSError:
                        with self.lock:
                            self.closed_idle += 1
                        break


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="model folder to serve")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds (at most 600)")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--budgets", default="1,4,16,64,256", help="clipped to the model's M")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the server")
    parser.add_argument("--in-process", action="store_true", help="serve in this process")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 600 or not 1 <= args.clients <= 200:
        parser.error("--duration must be in (0, 600] and --clients in [1, 200] (bounded run)")

    if args.in_process:
        import torch

        from mqt_llava.inference import load
        from mqt_llava.serving.background import BackgroundServer
        from mqt_llava.serving.engine import Engine
        from mqt_llava.serving.server import ServerSettings, create_app

        torch.set_num_threads(args.threads)
        engine = Engine(load(args.model, device="cpu"), max_queue=64, max_batch=8)
        server = BackgroundServer(create_app(engine, ServerSettings(model_name="soak")))
        server.__enter__()
        url, pid = server.url, os.getpid()
    else:
        server = ServerProcess(args.model, 64, 8, args.threads)
        url = server.start()
        pid = server.proc.pid
    try:
        card = httpx.get(f"{url}/v1/models", timeout=30).json()["data"][0]
        model, M = card["id"], card["max_visual_tokens"]
        budgets = sorted({min(int(b), M) for b in args.budgets.split(",")})
        httpx.post(f"{url}/v1/chat/completions", timeout=120, json={  # warm-up, not counted
            "model": model, "max_tokens": 2,
            "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
        rss_before, fds_before = rss_mb(pid), open_fds(pid)
        stats_before = httpx.get(f"{url}/health").json()["stats"]
        soak = Soak(url, model, budgets, args.max_tokens, time.monotonic() + args.duration)
        kinds = [soak.worker] * (args.clients * 6 // 10)
        kinds += [soak.leaver] * (args.clients * 2 // 10)
        kinds += [soak.idler] * (args.clients - len(kinds))
        threads = [
            threading.Thread(target=kind, args=(args.seed * 1000 + i,), daemon=True)
            for i, kind in enumerate(kinds)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(args.duration + 180)
        time.sleep(1)  # let the last cancellations land
        health = httpx.get(f"{url}/health", timeout=30).json()
        after = httpx.post(f"{url}/v1/chat/completions", timeout=120, json={
            "model": model, "max_tokens": 2,
            "messages": [{"role": "user", "content": "still there?"}]})  # fmt: skip
        stats = health["stats"]
        counts = Counter(k.__name__ for k in kinds)
        print(f"model {model} (M={M}), {args.clients} clients ({counts['worker']} workers, "
              f"{counts['leaver']} leavers, {counts['idler']} idlers), {args.duration:.0f} s, "
              f"budgets {budgets}, max_tokens 1-{args.max_tokens}, torch threads {args.threads}, "
              f"server {'in-process' if args.in_process else 'child process'}")  # fmt: skip
        ok = soak.statuses[200]
        print(
            f"worker requests: {sum(soak.statuses.values())} ({ok} ok, "
            f"{soak.statuses[429]} 429, {sum(soak.errors.values())} errors {dict(soak.errors)})"
        )
        print(
            f"latency of ok requests: p50 {percentile(soak.latencies, 50) * 1000:.0f} ms, "
            f"p99 {percentile(soak.latencies, 99) * 1000:.0f} ms"
        )
        print(
            f"leavers hung up {soak.left} times; jobs cancelled by the server: "
            f"{stats['cancelled'] - stats_before['cancelled']}"
        )
        print(f"idle connections closed by the server: {soak.closed_idle}")
        print(
            f"server RSS: {rss_before:.0f} MB before, {rss_mb(pid):.0f} MB after; open fds: "
            f"{fds_before} before, {open_fds(pid)} after"
        )
        print(
            f"health after: {health['status']}, failed {stats['failed']}; a request after: "
            f"{after.status_code}"
        )
        failed = bool(soak.errors) or after.status_code != 200 or health["status"] != "ok"
        print("verdict:", "FAIL" if failed else "ok")
        return 1 if failed else 0
    finally:
        server.__exit__(None, None, None)


if __name__ == "__main__":
    sys.exit(main())
