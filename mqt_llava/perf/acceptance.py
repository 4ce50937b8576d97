"""The pass/fail contract of `mqt-llava bench`: its thresholds, named in one place, and the checks
that apply them to a latency result (`mqt_llava.perf.latency.run_latency`).

The defaults are the issue's acceptance criteria for the connector's cost; `mqt-llava bench`
exits with status 1 when one check fails. Its `--max-*` options override the three thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchThresholds:
    """What `mqt-llava bench` accepts.

    Attributes:
        time_over_flop: The prefill time ratio (LLaVA / ours) may differ from the FLOP ratio by at
            most this factor either way, for budgets of at least `time_ratio_min_budget` (below,
            fixed overheads dominate and time cannot follow FLOPs).
        time_ratio_min_budget: The smallest budget the time/FLOP check applies to.
        connector_share: The connector's largest share of the prefill time, at every budget.
        decode_deviation: Our decode step time may differ from the bare LLM's at the same
            context length by at most this fraction either way.
    """

    time_over_flop: float = 1.15
    time_ratio_min_budget: int = 16
    connector_share: float = 0.03
    decode_deviation: float = 0.05


def checks(result: dict, thresholds: BenchThresholds | None = None) -> list[tuple[str, bool, str]]:
    """The acceptance checks on a latency result: (criterion, passed, figures) each.

    The fourth, that the largest budget is not slower per context token than LLaVA in the LLM
    part, has no threshold: it compares the same modules on two prompt lengths.
    """
    t = thresholds or BenchThresholds()
    rows, base = result["rows"], result["baseline"]
    out = []
    big = [r for r in rows if r["num_visual_tokens"] >= t.time_ratio_min_budget]
    if big:
        value = max((r["time_over_flop_ratio"] for r in big), key=lambda x: max(x, 1 / x))
        worst = next(r for r in big if r["time_over_flop_ratio"] == value)
        out.append(
            (
                f"prefill time ratio within {t.time_over_flop:g}x of the FLOP ratio for "
                f"m >= {t.time_ratio_min_budget}",
                1 / t.time_over_flop <= value <= t.time_over_flop,
                f"time/FLOP ratio {min(r['time_over_flop_ratio'] for r in big):.3f}"
                f"..{max(r['time_over_flop_ratio'] for r in big):.3f} (worst {worst['name']})",
            )
        )
    share = max(rows, key=lambda r: r["connector_share"])
    out.append(
        (
            f"connector <= {100 * t.connector_share:g} % of prefill time at every budget",
            share["connector_share"] <= t.connector_share,
            f"max {100 * share['connector_share']:.2f} % at {share['name']}",
        )
    )
    decode = [*rows, base]
    lo = min(decode, key=lambda r: r["decode_vs_plain_llm"])
    hi = max(decode, key=lambda r: r["decode_vs_plain_llm"])
    out.append(
        (
            f"decode per token within {100 * t.decode_deviation:g} % of the bare LLM at the same "
            "context",
            lo["decode_vs_plain_llm"] >= 1 - t.decode_deviation
            and hi["decode_vs_plain_llm"] <= 1 + t.decode_deviation,
            f"ratio {lo['decode_vs_plain_llm']:.3f} ({lo['name']}).."
            f"{hi['decode_vs_plain_llm']:.3f} ({hi['name']})",
        )
    )
    top = max(rows, key=lambda r: r["num_visual_tokens"])
    out.append(
        (
            f"{top['name']} not slower per context token than {base['name']} (LLM part)",
            top["llm_ms_per_context_token"] <= base["llm_ms_per_context_token"],
            f"LLM {top['llm_ms_per_context_token']:.3f} vs {base['llm_ms_per_context_token']:.3f}"
            f" ms/token; whole prefill {top['ms_per_context_token']:.3f} vs "
            f"{base['ms_per_context_token']:.3f} ms/token; {top['ms_per_gflop']:.2f} vs "
            f"{base['ms_per_gflop']:.2f} ms/GFLOP",
        )
    )
    return out
