"""The latency benchmark on a tiny configuration, one repetition; the memory counter."""

from __future__ import annotations

import json

import pytest
import torch
from test_flops import tiny_config

from mqt_llava.cli import main
from mqt_llava.perf.acceptance import BenchThresholds, checks
from mqt_llava.perf.latency import build_models, decode_step_seconds, run_latency
from mqt_llava.perf.memory import PeakTensorMemory
from mqt_llava.perf.report import format_latency


@pytest.fixture(scope="module")
def result():
    return run_latency(
        tiny_config(), budgets=[1, 16], prompt_tokens=8, new_tokens=3, repeats=1, warmup=0
    )


def test_one_repetition_gives_every_figure(result):
    names = [row["name"] for row in result["rows"]]
    assert names == ["m=1", "m=16"]
    base = result["baseline"]
    assert base["name"] == "llava-64" and base["context_tokens"] == 8 + 64
    assert [row["context_tokens"] for row in result["rows"]] == [9, 24]
    for row in [*result["rows"], base]:
        for key in ("prefill_ms", "vision_ms", "connector_ms", "llm_ms", "decode_ms_per_token"):
            assert row[key] > 0, key
        assert row["vision_ms"] + row["connector_ms"] + row["llm_ms"] <= row["prefill_ms"] * 1.01
        assert 0 < row["connector_share"] < 1
        assert row["peak_activation_mb"] > 0
        assert row["flop_ratio"] == pytest.approx(base["gflops"] / row["gflops"])
    assert base["time_ratio"] == base["flop_ratio"] == 1.0
    assert result["rows"][0]["gflops"] < result["rows"][1]["gflops"] < base["gflops"]
    conditions = result["conditions"]
    assert conditions["threads"] == 1 and conditions["clock"] == "cpu"
    assert len(conditions["loadavg_before"]) == 3


def test_run_restores_the_thread_count():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        result = run_latency(tiny_config(), [16], 4, new_tokens=2, repeats=1, warmup=0)
        assert result["conditions"]["threads"] == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_table_and_checks(result):
    verdicts = checks(result)
    assert len(verdicts) == 4 and all(isinstance(ok, bool) for _, ok, _ in verdicts)
    text = format_latency(result, verdicts)
    assert "llava-64" in text and "load average" in text
    for name, passed, detail in verdicts:
        assert f"[{'ok' if passed else 'FAIL'}] {name}: {detail}" in text


def _result(time_over_flop: float, connector_share: float, decode: float) -> dict:
    row = {
        "name": "m=16",
        "num_visual_tokens": 16,
        "time_over_flop_ratio": time_over_flop,
        "connector_share": connector_share,
        "decode_vs_plain_llm": decode,
        "llm_ms_per_context_token": 1.0,
        "ms_per_context_token": 1.0,
        "ms_per_gflop": 1.0,
    }
    return {"rows": [row], "baseline": {**row, "name": "llava-64", "decode_vs_plain_llm": 1.0}}


def test_the_default_thresholds_are_the_documented_contract():
    names = [name for name, _, _ in checks(_result(1.0, 0.01, 1.0))]
    assert names[:3] == [
        "prefill time ratio within 1.15x of the FLOP ratio for m >= 16",
        "connector <= 3 % of prefill time at every budget",
        "decode per token within 5 % of the bare LLM at the same context",
    ]
    edges = checks(_result(1.15, 0.03, 0.95))  # on the limits: accepted
    assert [ok for _, ok, _ in edges] == [True, True, True, True]
    beyond = checks(_result(1 / 1.16, 0.031, 1.051))
    assert [ok for _, ok, _ in beyond] == [False, False, False, True]


def test_thresholds_can_be_loosened():
    loose = BenchThresholds(time_over_flop=1.2, connector_share=0.05, decode_deviation=0.1)
    verdicts = checks(_result(1 / 1.16, 0.031, 1.051), loose)
    assert [ok for _, ok, _ in verdicts] == [True, True, True, True]
    assert verdicts[1][0] == "connector <= 5 % of prefill time at every budget"


def test_stock_llava_shares_our_backbones():
    ours, stock = build_models(tiny_config())
    assert stock.model.vision_tower is ours.vision_tower
    assert stock.lm_head is ours.language_model.get_output_embeddings()
    assert stock.model.multi_modal_projector.linear_1.weight.device.type == "cpu"
    ids = torch.randint(3, 900, (1, 5))
    with torch.no_grad():
        a = ours(input_ids=ids).logits
        b = stock(input_ids=ids).logits
    torch.testing.assert_close(a, b)  # text-only: the same language model


def test_decode_steps_are_timed_per_token():
    ours, _ = build_models(tiny_config())
    ids = torch.randint(3, 900, (1, 6))
    steps = decode_step_seconds(ours.language_model, {"input_ids": ids}, new_tokens=4)
    assert len(steps["wall"]) == len(steps["cpu"]) == 3
    assert all(s > 0 for s in steps["wall"])


def test_peak_memory_counts_new_storages_only():
    linear = torch.nn.Linear(256, 1024)
    x = torch.randn(8, 256)
    with torch.no_grad(), PeakTensorMemory(ignore=[*linear.parameters(), x]) as memory:
        y = linear(x)
    assert memory.peak_bytes == y.numel() * 4  # the weights and the input are not counted
    with PeakTensorMemory() as memory:
        a = torch.ones(1000)
        del a
        b = torch.ones(500)
    assert memory.peak_bytes == 4000 and memory.current_bytes == b.numel() * 4


def test_bad_arguments():
    with pytest.raises(ValueError, match="repeats"):
        run_latency(tiny_config(), [1], repeats=0)
    with pytest.raises(ValueError, match="between 1 and 16"):
        run_latency(tiny_config(), [17])


def test_cli_bench_json(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "bench.json"
    argv = ["bench", "--model", str(tiny_model_dir), "--budgets", "4", "--prompt-tokens", "5"]
    argv += ["--new-tokens", "2", "--repeats", "1", "--warmup", "0", "--json", "--out", str(out)]
    status = main(argv)
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert printed == json.loads(out.read_text())
    assert printed["rows"][0]["num_visual_tokens"] == 4
    assert printed["baseline"]["num_visual_tokens"] == 64
    # One noisy repetition of a tiny model may fail the timing checks: then the exit status says so.
    failed = [name for name, passed, _ in checks(printed) if not passed]
    assert status == (1 if failed else 0)
    assert ("check(s) failed" in captured.err) == bool(failed)


def test_cli_bench_exits_non_zero_when_a_check_fails(tiny_model_dir, capsys, monkeypatch):
    from mqt_llava.perf import acceptance

    fail = [("decode speed", False, "slow")]
    monkeypatch.setattr(acceptance, "checks", lambda result, thresholds: fail)
    argv = ["bench", "--model", str(tiny_model_dir), "--budgets", "4", "--prompt-tokens", "5"]
    argv += ["--new-tokens", "2", "--repeats", "1", "--warmup", "0"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "[FAIL] decode speed: slow" in captured.out
    assert "mqt-llava: bench: 1 check(s) failed: decode speed" in captured.err


def test_generate_does_no_image_work_after_the_prefill():
    ours, _ = build_models(tiny_config())
    calls = {"vision": 0, "connector": 0, "llm": 0}
    for name, module in (
        ("vision", ours.vision_tower),
        ("connector", ours.connector),
        ("llm", ours.language_model.get_decoder()),
    ):
        module.register_forward_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
    ids = torch.cat([torch.full((1, 16), 1000), torch.randint(3, 900, (1, 5))], dim=1)
    inputs = {"input_ids": ids, "pixel_values": torch.randn(1, 3, 32, 32), "num_visual_tokens": 16}
    steps = decode_step_seconds(ours, inputs, new_tokens=5)
    assert len(steps["cpu"]) == 4
    assert calls == {"vision": 1, "connector": 1, "llm": 5}
