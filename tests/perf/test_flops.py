"""FLOP counting on the meta device: hand counts, monotonicity, the 7B figures and the CLI."""

from __future__ import annotations

import itertools
import json

import pytest

from mqt_llava.cli import main
from mqt_llava.model import MQTLlavaConfig
from mqt_llava.model.presets import preset_config
from mqt_llava.perf.flops import (
    baseline_config,
    count_llava_flops,
    count_mqt_flops,
    flops_report,
    format_report,
    load_config,
)

ROW_KEYS = {"num_visual_tokens", "vision_tflops", "connector_tflops", "llm_tflops", "total_tflops"}


def tiny_config(num_queries: int = 16, key_source: str = "position") -> MQTLlavaConfig:
    """Vision width C = 32 (4 heads), 8x8 = 64 patches, LM width D = 48, vocab 1000."""
    return preset_config("tiny", num_queries=num_queries, key_source=key_source)


def connector_hand_count(m: int, n: int, c: int, d: int) -> int:
    """Matmul FLOPs (2 per multiply-add) of the connector on one image."""
    projections = 2 * c * c * (m + n + n + m)  # q (m rows), k (N), v (N), out-proj (m)
    attention = 2 * m * n * c + 2 * m * n * c  # scores q k^T and weights @ v, all heads
    return projections + attention + 2 * m * c * d  # + the (C, D) projection


@pytest.mark.parametrize("key_source", ["position", "content"])
def test_connector_flops_match_a_hand_count(key_source):
    rows = count_mqt_flops(tiny_config(key_source=key_source), budgets=[1, 5, 16], prompt_tokens=4)
    for row in rows:
        expected = connector_hand_count(row.num_visual_tokens, n=64, c=32, d=48)
        assert row.connector_tflops * 1e12 == pytest.approx(expected, rel=1e-9)


def test_llava_projector_flops_match_a_hand_count():
    row = count_llava_flops(baseline_config(tiny_config()), prompt_tokens=4)
    assert row.num_visual_tokens == 64
    assert row.connector_tflops * 1e12 == 2 * 64 * 32 * 48 + 2 * 64 * 48 * 48


def test_llm_flops_are_positive_and_grow_with_the_budget():
    rows = count_mqt_flops(tiny_config(), budgets=[1, 2, 4, 8, 16], prompt_tokens=10)
    llm = [row.llm_tflops for row in rows]
    assert all(x > 0 for x in llm)
    assert all(a < b for a, b in itertools.pairwise(llm))
    assert len({row.vision_tflops for row in rows}) == 1  # the image costs the same at any m
    for row in rows:
        parts = row.vision_tflops + row.connector_tflops + row.llm_tflops
        assert row.total_tflops == pytest.approx(parts)


def test_same_sequence_length_gives_the_same_llm_and_vision_flops_as_the_baseline():
    # With M = N = 64, our model at m = 64 feeds the LLM as many tokens as LLaVA does.
    config = tiny_config(num_queries=64)
    ours = count_mqt_flops(config, budgets=[64], prompt_tokens=7)[0]
    base = count_llava_flops(baseline_config(config), prompt_tokens=7)
    assert ours.llm_tflops == base.llm_tflops
    assert ours.vision_tflops == base.vision_tflops
    assert ours.connector_tflops != base.connector_tflops


def test_prompt_tokens_add_llm_flops_only():
    short, long = (count_mqt_flops(tiny_config(), [4], p)[0] for p in (4, 40))
    assert long.llm_tflops > short.llm_tflops
    assert long.vision_tflops == short.vision_tflops
    assert long.connector_tflops == short.connector_tflops


def test_7b_preset_reproduces_the_published_compute():
    """SPEC §3: ≈8.74 / 4.51 / 1.34 TFLOPs (LLaVA-1.5 at 576, m = 256, m = 16); 8.5x LLM, 6.5x."""
    report = flops_report(preset_config("mqt-llava-7b"), budgets=[16, 256], prompt_tokens=60)
    by_m = {row["num_visual_tokens"]: row for row in report["rows"]}
    base = report["baseline"]
    assert base["num_visual_tokens"] == 576
    for got, published in (
        (base["total_tflops"], 8.74),
        (by_m[256]["total_tflops"], 4.51),
        (by_m[16]["total_tflops"], 1.34),
    ):
        assert got == pytest.approx(published, rel=0.05)
    assert base["llm_tflops"] / by_m[16]["llm_tflops"] == pytest.approx(8.5, rel=0.03)
    assert base["total_tflops"] / by_m[16]["total_tflops"] == pytest.approx(6.5, rel=0.03)


def test_report_defaults_to_budgets_up_to_m_and_formats():
    report = flops_report(tiny_config(), prompt_tokens=3)
    assert [row["num_visual_tokens"] for row in report["rows"]] == [1, 2, 4, 8, 16]
    text = format_report(report)
    assert "LLaVA64" in text and text.count("\n") == 7


def test_cli_json_schema(tiny_model_dir, capsys):
    assert main(["flops", "--model", str(tiny_model_dir), "--json", "--budgets", "1,16"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= {"baseline", "rows"}
    assert set(report["baseline"]) == ROW_KEYS
    assert [row["num_visual_tokens"] for row in report["rows"]] == [1, 16]
    for row in [*report["rows"], report["baseline"]]:
        assert set(row) == ROW_KEYS
        for key in ROW_KEYS - {"num_visual_tokens"}:
            assert isinstance(row[key], float) and row[key] > 0


def test_bad_inputs_raise_clear_errors(tmp_path, tiny_model_dir, capsys):
    with pytest.raises(ValueError, match="Unknown preset 'llava-13b'"):
        preset_config("llava-13b")
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        load_config(tmp_path)
    with pytest.raises(ValueError, match="between 1 and 16"):
        count_mqt_flops(tiny_config(), budgets=[32])
    with pytest.raises(ValueError, match="prompt_tokens"):
        count_mqt_flops(tiny_config(), budgets=[1], prompt_tokens=-1)
    assert main(["flops", "--model", str(tiny_model_dir), "--budgets", "17"]) == 2
    assert "between 1 and 16" in capsys.readouterr().err
