"""`scripts/budget_frontier.py`: which calibrated setting it marks *matched*, and `--band`."""

from __future__ import annotations

import pytest
from script_loader import load_script

from mqt_llava.inference.policies.simulate import Point


@pytest.fixture(scope="module")
def frontier():
    return load_script("budget_frontier")


def _candidates():
    """Three settings on the val Pareto front: (setting, replay), replay(table) -> Point."""
    points = {  # name: (val accuracy, test accuracy, GFLOPs)
        "cheap": (76.0, 75.5, 0.40),
        "near": (77.9, 76.4, 0.44),
        "costly": (78.7, 78.3, 0.63),
    }

    def replay(name):
        val, test, gflops = points[name]
        return lambda table: Point(name, val if table == "val" else test, gflops, gflops / 2, 16)

    return [({"name": name}, replay(name)) for name in points]


@pytest.mark.parametrize(("band", "matched"), [(0.25, "costly"), (1.0, "near"), (3.0, "cheap")])
def test_matched_is_the_cheapest_setting_within_the_band(frontier, band, matched):
    fixed_m_val = 78.81
    rows = frontier.calibrate("val", "test", _candidates(), 7, fixed_m_val - band)
    assert [r["setting"]["name"] for r in rows] == ["cheap", "near", "costly"]
    assert [r["setting"]["name"] for r in rows if r["matched"]] == [matched]
    assert {r["setting"]["name"]: r["test"]["accuracy"] for r in rows}["near"] == 76.4


def test_no_setting_is_matched_when_none_reaches_the_band(frontier):
    rows = frontier.calibrate("val", "test", _candidates(), 7, 79.0)
    assert not any(r["matched"] for r in rows)


def test_a_negative_band_is_refused_before_any_work(frontier, tmp_path, capsys):
    argv = ["--data", str(tmp_path), "--router-data", str(tmp_path), "--out", str(tmp_path / "o")]
    with pytest.raises(SystemExit) as exit_info:
        frontier.main([*argv, "--band", "-1"])
    assert exit_info.value.code == 2
    assert "--band must be >= 0 points of accuracy, got -1.0" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
