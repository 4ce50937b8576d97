"""Medians, ratios and the acceptance checks of a latency run, as a dict and as a text table."""

from __future__ import annotations

import statistics
from typing import Any


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarize(variants: list, flops: dict[str, Any], conditions: dict, clock: str) -> dict:
    """Medians per variant, with time and FLOP ratios against the stock LLaVA (the last variant).

    Args:
        variants: The measured `latency.Variant`s, the stock LLaVA last.
        flops: A `flops.flops_report` for the same budgets and prompt.
        conditions: Machine, threads, load, ... (copied into the result).
        clock: `"cpu"` (thread CPU time) or `"wall"`: the clock the ratios use.

    Returns:
        `{"rows": [...], "baseline": {...}, "conditions": {...}}`; times in ms.
    """
    gflops = {row["num_visual_tokens"]: 1e3 * row["total_tflops"] for row in flops["rows"]}
    llm_gflops = {row["num_visual_tokens"]: 1e3 * row["llm_tflops"] for row in flops["rows"]}
    base_gflops = 1e3 * flops["baseline"]["total_tflops"]
    base_llm_gflops = 1e3 * flops["baseline"]["llm_tflops"]
    rows = []
    for i, v in enumerate(variants):
        is_base = i == len(variants) - 1
        s = v.samples
        context = v.inputs["input_ids"].shape[1]
        prefill = _median(s[("prefill", clock)])
        shares = zip(s[("connector", clock)], s[("prefill", clock)], strict=True)
        llm = _median(s[("llm", clock)])
        rows.append(
            {
                "name": v.name,
                "num_visual_tokens": v.num_visual_tokens,
                "context_tokens": context,
                "prefill_ms": 1e3 * prefill,
                "prefill_wall_ms": 1e3 * _median(s[("prefill", "wall")]),
                "vision_ms": 1e3 * _median(s[("vision", clock)]),
                "connector_ms": 1e3 * _median(s[("connector", clock)]),
                "llm_ms": 1e3 * llm,
                "connector_share": _median([c / t for c, t in shares]),
                "gflops": base_gflops if is_base else gflops[v.num_visual_tokens],
                "llm_gflops": base_llm_gflops if is_base else llm_gflops[v.num_visual_tokens],
                "ms_per_context_token": 1e3 * prefill / context,
                "llm_ms_per_context_token": 1e3 * llm / context,
                "decode_ms_per_token": 1e3 * _median(s[("decode", clock)]),
                "plain_llm_decode_ms_per_token": 1e3 * _median(s[("plain_decode", clock)]),
                "peak_activation_mb": v.peak_bytes / 2**20,
            }
        )
    base = rows[-1]
    for row in rows:
        row["time_ratio"] = base["prefill_ms"] / row["prefill_ms"]
        row["flop_ratio"] = base["gflops"] / row["gflops"]
        row["time_over_flop_ratio"] = row["time_ratio"] / row["flop_ratio"]
        row["ms_per_gflop"] = row["prefill_ms"] / row["gflops"]
        row["decode_tokens_per_s"] = 1e3 / row["decode_ms_per_token"]
        plain = row["plain_llm_decode_ms_per_token"]
        row["decode_vs_plain_llm"] = row["decode_ms_per_token"] / plain
    return {"rows": rows[:-1], "baseline": base, "conditions": {**conditions, "clock": clock}}


def format_latency(result: dict, verdicts: list[tuple[str, bool, str]] = ()) -> str:
    """The result as a text table, followed by the run's conditions and the checks' `verdicts`
    (`mqt_llava.perf.acceptance.checks`)."""
    c = result["conditions"]
    header = (
        f"{'variant':>10} {'ctx':>4} {'prefill':>8} {'vision':>7} {'conn':>6} {'conn%':>6}"
        f" {'LLM':>7} {'GFLOP':>7} {'t-ratio':>7} {'F-ratio':>7} {'t/F':>5} {'ms/tok':>6}"
        f" {'dec ms':>6} {'tok/s':>6} {'vs LLM':>6} {'peak MB':>7}"
    )
    lines = [
        f"Prefill and decode, medians of {c['repeats']} interleaved repetitions "
        f"({c['clock']} time, ms); ratios = LLaVA baseline / variant",
        header,
    ]
    for r in [*result["rows"], result["baseline"]]:
        lines.append(
            f"{r['name']:>10} {r['context_tokens']:>4} {r['prefill_ms']:8.1f} {r['vision_ms']:7.1f}"
            f" {r['connector_ms']:6.2f} {100 * r['connector_share']:5.2f}% {r['llm_ms']:7.1f}"
            f" {r['gflops']:7.2f} {r['time_ratio']:7.2f} {r['flop_ratio']:7.2f}"
            f" {r['time_over_flop_ratio']:5.2f} {r['ms_per_context_token']:6.2f}"
            f" {r['decode_ms_per_token']:6.1f} {r['decode_tokens_per_s']:6.1f}"
            f" {r['decode_vs_plain_llm']:6.3f} {r['peak_activation_mb']:7.1f}"
        )
    params = {name: count / 1e6 for name, count in c["parameters"].items()}
    lines += [
        "",
        f"machine: {c['cpu']}, {c['cores']} cores; torch {c['torch']}, {c['threads']} thread(s), "
        f"{c['dtype']}; load average {c['loadavg_before']} before, {c['loadavg_after']} after; "
        f"{c['seconds']} s",
        f"parameters: vision {params['vision']:.1f}M, connector {params['connector']:.2f}M"
        f" (LLaVA MLP {params['llava_projector']:.2f}M), LLM {params['llm']:.1f}M; "
        f"prompt {c['prompt_tokens']} text tokens + visual tokens; decode {c['new_tokens']} tokens",
        "peak MB: live tensor bytes during the prefill beyond the weights (activations + KV cache),"
        f" counted over storages by a TorchDispatchMode; process max RSS {c['max_rss_mb']} MB",
        "",
    ]
    for name, passed, detail in verdicts:
        lines.append(f"[{'ok' if passed else 'FAIL'}] {name}: {detail}")
    return "\n".join(lines)
