"""How the torch thread count changes `ask` and a training step, on the bundled model.

Each thread count is timed in turn, `--repeats` times, interleaved in one process
(`torch.set_num_threads` between measurements), and the medians are compared. Two workloads:
- `ask`: one greedy answer (image encoding, prefill, `--new-tokens` decoded tokens) at m = 64;
- a training step: forward and backward of a batch of `--batch` prompts with labels at m = 64.

    python scripts/threads.py                      # 1 thread vs every core
    python scripts/threads.py --threads 1,2,4 --repeats 9

This decides the default of `--threads auto` ($MQT_LLAVA_THREADS): one thread for models under
512 MB of weights. Timings swing with other load on the machine: compare the ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / "mqt_llava" / "assets" / "examples" / "example_large_and_small.png"
QUESTION = "What colour is the square? Answer the question using a single word or phrase."


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default=f"1,{os.cpu_count()}", help="counts to compare")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    counts = [int(x) for x in args.threads.split(",")]

    import torch

    import mqt_llava

    vlm = mqt_llava.load(device="cpu")
    model, processor = vlm.model, vlm.processor
    prompt = processor.build_prompt(QUESTION, answer="blue")
    batch = processor(images=[IMAGE] * args.batch, text=[prompt] * args.batch, num_visual_tokens=64)
    labels = batch["input_ids"].clone()

    def ask() -> None:
        vlm.ask(IMAGE, QUESTION, num_visual_tokens=64, max_new_tokens=args.new_tokens)

    def train_step() -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        model(**batch, labels=labels).loss.backward()
        model.eval()

    times: dict[tuple[str, int], list[float]] = {}
    load_before = os.getloadavg()[0]
    for _ in range(args.repeats):
        for name, work in (("ask", ask), ("train step", train_step)):
            for n in counts:
                torch.set_num_threads(n)
                work()  # warm this thread count's pools
                start = time.perf_counter()
                work()
                times.setdefault((name, n), []).append(time.perf_counter() - start)
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; torch {torch.__version__}, float32; "
          f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")  # fmt: skip
    print(f"bundled model, m = 64; medians of {args.repeats} interleaved repetitions")
    print(f"{'workload':<12} {'threads':>7} {'median ms':>10} {'vs 1 thread':>12}")
    for name in ("ask", "train step"):
        base = statistics.median(times[(name, counts[0])])
        for n in counts:
            median = statistics.median(times[(name, n)])
            print(f"{name:<12} {n:>7} {1e3 * median:>10.1f} {median / base:>11.2f}x")


if __name__ == "__main__":
    main()
