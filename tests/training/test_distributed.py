"""torchrun with DDP and with FSDP2 (gloo, 2 processes) matches a single process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from script_loader import load_script

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


def _flaky_command(counter: Path, failures: int, message: str) -> list[str]:
    """A process that fails with `message` on stderr for its first `failures` runs."""
    code = (
        "import pathlib, sys\n"
        f"p = pathlib.Path({str(counter)!r})\n"
        "n = int(p.read_text()) if p.exists() else 0\n"
        "p.write_text(str(n + 1))\n"
        f"if n < {failures}:\n"
        f"    sys.stderr.write({message!r}); sys.exit(134)\n"
        "print('done', n + 1)\n"
    )
    return [sys.executable, "-c", code]


def test_a_gloo_abort_is_relaunched_after_clearing_and_said(tmp_path, capsys):
    check_distributed = load_script("check_distributed")
    cleared = []
    command = _flaky_command(tmp_path / "runs", 2, check_distributed.GLOO_ABORT)
    done = check_distributed.run_relaunching(
        command, dict(os.environ), label="zero3", before_relaunch=lambda: cleared.append(1)
    )
    assert done.returncode == 0 and done.stdout.strip() == "done 3"
    assert cleared == [1, 1]
    assert capsys.readouterr().err.count("zero3: a rank aborted inside gloo") == 2


def test_other_failures_and_a_last_abort_are_returned_not_retried(tmp_path):
    check_distributed = load_script("check_distributed")
    other = _flaky_command(tmp_path / "other", 5, "ValueError: bad recipe")
    done = check_distributed.run_relaunching(other, dict(os.environ), label="ddp")
    assert done.returncode == 134 and (tmp_path / "other").read_text() == "1"
    aborts = _flaky_command(tmp_path / "aborts", 5, check_distributed.GLOO_ABORT)
    done = check_distributed.run_relaunching(aborts, dict(os.environ), label="ddp", attempts=3)
    assert done.returncode == 134 and (tmp_path / "aborts").read_text() == "3"
