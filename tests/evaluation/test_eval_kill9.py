"""A real `kill -9` of `mqt-llava eval` at a random moment, then the same command again: the
files are byte for byte those of an uninterrupted run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import benchmark_fixtures as fx
from test_runner_resume import FILES, argv

from mqt_llava.cli import main


def test_killed_at_a_random_moment_then_rerun(tiny_model_dir, tmp_path):
    data = fx.pope(tmp_path)  # 6 questions
    reference = tmp_path / "reference"
    assert main(argv(tiny_model_dir, data, reference, batch_size="1")) == 0

    out = tmp_path / "run"
    command = [sys.executable, "-m", "mqt_llava.cli", *argv(tiny_model_dir, data, out, "1")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    notes = []
    for attempt in range(2):  # two kills, each after the run has written something
        proc = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        delay = random.uniform(0.0, 0.6)
        try:
            deadline = time.monotonic() + 240
            first = out / "answers_m2.jsonl"
            while not (first.exists() and first.stat().st_size) and proc.poll() is None:
                assert time.monotonic() < deadline, "eval never wrote an answer"
                time.sleep(0.01)
            time.sleep(delay)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(60)
        notes.append(f"kill {attempt + 1}: {delay:.2f} s after the first answer")

    assert main(argv(tiny_model_dir, data, out, batch_size="1")) == 0
    for name in FILES:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), (name, notes)
