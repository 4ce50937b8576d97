"""scripts/load_test.py runs bounded, on loopback only, and reports what it promises."""

from __future__ import annotations

import pytest
from script_loader import load_script


@pytest.fixture(scope="module")
def load_test():
    return load_script("load_test")


def test_reports_latency_and_errors_per_level(load_test, tiny_model_dir, capsys):
    argv = ["--model", str(tiny_model_dir), "--in-process", "--requests", "6",
            "--concurrency", "1,3", "--max-tokens", "2",
            "--max-queue", "4", "--max-batch", "2"]  # fmt: skip
    assert load_test.main(argv) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [row[0] for row in rows] == ["1", "3"]
    for row in rows:  # clients ok 429 other p50 p99 req/s batches avg-batch
        assert int(row[1]) == 6 and int(row[2]) == 0 and int(row[3]) == 0
        assert 0 < float(row[4]) <= float(row[5])
    assert "budgets [1, 16]" in out and "verdict: ok" in out


def test_refuses_non_loopback_targets_and_unbounded_runs(load_test):
    with pytest.raises(SystemExit):
        load_test.main(["--url", "http://example.com:8000"])
    with pytest.raises(SystemExit):
        load_test.main(["--model", "x", "--requests", "0"])


def test_percentile_is_nearest_rank(load_test):
    values = [float(v) for v in range(1, 101)]
    assert load_test.percentile(values, 50) == 50 and load_test.percentile(values, 99) == 99
    assert load_test.percentile([3.0], 99) == 3.0
