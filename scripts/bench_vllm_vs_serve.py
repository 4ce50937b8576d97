"""vLLM against `mqt-llava serve`: the same model folder, the same loopback load, one run.

Starts each server in turn in a child process on a free 127.0.0.1 port (never both at once, so
they do not share the CPU), then for 1, 4 and 16 closed-loop clients sends a fixed number of
(non-streamed) chat completions, each with a PNG data-URI image and a budget cycling over
`--budgets` (so batches mix budgets), greedy, `--max-tokens` each. Prints requests/s and p50/p99
latency per server and client count, with the CPU model and thread count. Each request has a new
image by default (`--image-pool N` cycles over N images instead, where vLLM's processor, encoder
and prefix caches hit and our server recomputes). Run it in the vLLM venv (`make vllm-env`),
which also holds mqt-llava:

    .venv-vllm/bin/python scripts/bench_vllm_vs_serve.py --model DIR
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(1, int(np.ceil(q / 100 * len(ordered)))) - 1]


def image_uri(side: int, seed: int) -> str:
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


class Server:
    """One server in a child process; `url` once healthy, stopped on exit."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], health: str):
        self.name, self.argv, self.env, self.health = name, argv, env, health
        self.log = tempfile.TemporaryFile()  # noqa: SIM115  (the child writes until it ends)
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 600
        while self.proc.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(self.health, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.log.seek(0)
        raise RuntimeError(f"{self.name} did not start:\n{self.log.read().decode()[-3000:]}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def run_level(url: str, body_for, clients: int, requests: int, first: int) -> dict:
    """`requests` chat completions (numbered from `first`) from `clients` closed-loop clients;
    latencies of the 200s."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()
    counter = iter(range(first, first + requests))

    def client() -> None:
        with httpx.Client(base_url=url, timeout=600) as http:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                start = time.perf_counter()
                try:
                    status = str(http.post("/v1/chat/completions", json=body_for(i)).status_code)
                except httpx.HTTPError as err:
                    status = type(err).__name__
                elapsed = time.perf_counter() - start
                with lock:
                    if status == "200":
                        latencies.append(elapsed)
                    else:
                        errors[status] = errors.get(status, 0) + 1

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {
        "ok": len(latencies),
        "errors": errors,
        "p50": 1000 * percentile(latencies, 50),
        "p99": 1000 * percentile(latencies, 99),
        "rps": len(latencies) / wall,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="model folder")
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--requests", type=int, default=32, help="requests per client count")
    parser.add_argument("--budgets", default="1,4,16", help="cycled; each in [1, M]")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--image-side", type=int, default=64)
    parser.add_argument(
        "--image-pool",
        type=int,
        default=0,
        help="cycle over this many images (vLLM's caches then hit); 0: a new image per request",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads per server")
    parser.add_argument("--servers", default="mqt-llava,vllm")
    parser.add_argument(
        "--ours-python", default=sys.executable, help="python of the venv running mqt-llava serve"
    )
    args = parser.parse_args(argv)
    budgets = [int(b) for b in args.budgets.split(",")]
    levels = [int(c) for c in args.clients.split(",")]

    def image(i: int) -> str:
        return image_uri(args.image_side, i % args.image_pool if args.image_pool else i)

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}

    def messages(i: int) -> list[dict]:
        return [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": image(i)}},
            {"type": "text", "text": f"Question {i}: what is in the picture?"}]}]  # fmt: skip

    def common(i: int) -> dict:
        return {"model": "bench", "messages": messages(i), "max_tokens": args.max_tokens,
                "temperature": 0}  # fmt: skip

    port = free_port()
    servers = {
        "mqt-llava": (
            Server("mqt-llava serve",
                   [args.ours_python, "-m", "mqt_llava.cli", "serve", "--model", str(args.model),
                    "--port", str(port), "--model-name", "bench"],
                   env, f"http://127.0.0.1:{port}/health"),
            lambda i: {**common(i), "num_visual_tokens": budgets[i % len(budgets)]},
        ),
        "vllm": (
            Server("vLLM",
                   [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model",
                    str(args.model), "--served-model-name", "bench", "--host", "127.0.0.1",
                    "--port", str(port), "--dtype", "float32", "--max-model-len", "1024",
                    "--trust-request-mm-kwargs", "--chat-template",
                    str(args.model / "chat_template.jinja")],
                   {**env, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_LOGGING_LEVEL": "WARNING"},
                   f"http://127.0.0.1:{port}/health"),
            lambda i: {**common(i),
                       "mm_processor_kwargs": {"num_visual_tokens": budgets[i % len(budgets)]}},
        ),
    }  # fmt: skip
    print(f"model {args.model.name}, budgets {budgets}, max_tokens {args.max_tokens}, "
          f"{args.requests} requests per level, {args.image_side}x{args.image_side} PNG "
          f"({f'pool of {args.image_pool}' if args.image_pool else 'a new one per request'}), "
          f"{args.threads} thread(s) per server, CPU: {cpu_model()} ({os.cpu_count()} cores), "
          f"load average {os.getloadavg()[0]:.1f}, "
          f"mqt-llava serve on {args.ours_python}")  # fmt: skip
    print(f"{'server':<16} {'clients':>7} {'ok':>4} {'err':>4} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'req/s':>6}")  # fmt: skip
    failed = False
    for name in args.servers.split(","):
        server, body_for = servers[name]
        started = time.perf_counter()
        with server:
            startup = time.perf_counter() - started
            url = f"http://127.0.0.1:{port}"
            run_level(url, body_for, 1, 2, first=10**6)  # warm-up, not reported
            for n, clients in enumerate(levels):
                # The same requests for both servers; images distinct across levels too.
                r = run_level(url, body_for, clients, args.requests, first=n * args.requests)
                err = sum(r["errors"].values())
                print(f"{server.name:<16} {clients:>7} {r['ok']:>4} {err:>4} {r['p50']:>8.1f} "
                      f"{r['p99']:>8.1f} {r['rps']:>6.2f}", flush=True)  # fmt: skip
                if err:
                    print(f"  errors: {r['errors']}")
                failed |= bool(err)
        print(f"{server.name:<16} started in {startup:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
