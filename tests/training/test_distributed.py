"""torchrun with DDP and with FSDP2 (gloo, 2 processes) matches a single process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_distributed.py"


@pytest.mark.slow
def test_ddp_and_fsdp_losses_match_one_process_within_1e_5():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--steps", "4", "--tolerance", "1e-5"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "budgets identical across runs: True" in done.stdout
    assert "parameters are DTensors" in done.stdout
