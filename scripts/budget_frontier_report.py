"""Markdown table and plot of a `budget_frontier.py` result (imported by that script)."""

from __future__ import annotations

from pathlib import Path


def _setting(setting: dict) -> str:
    if "ladder" in setting:
        return f"ladder {'/'.join(map(str, setting['ladder']))}, τ = {setting['threshold']:g}"
    return f"slack {setting['slack']:g}"


def write_report(result: dict, out: Path) -> list[Path]:
    """Writes `frontier.md` and `frontier.png` into `out`."""
    fixed = result["fixed_test"]
    full = fixed[-1]
    lines = [
        "| policy | setting | val acc | test acc | mean m | attempts | prefill GFLOPs | of fixed-M "
        "| LLM GFLOPs | of fixed-M | above fixed curve |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]

    def row(name: str, setting: str, val: str, p: dict, above: str) -> str:
        share = 100 * p["gflops"] / full["gflops"]
        llm_share = 100 * p["llm_gflops"] / full["llm_gflops"]
        return (
            f"| {name} | {setting} | {val} | {p['accuracy']:.2f} | {p['mean_budget']:.1f} "
            f"| {p['mean_attempts']:.2f} | {p['gflops']:.4f} | {share:.1f} % "
            f"| {p['llm_gflops']:.4f} | {llm_share:.1f} % | {above} |"
        )

    for p, v in zip(fixed, result["fixed_val"], strict=True):
        lines.append(row("fixed", f"m = {int(p['mean_budget'])}", f"{v['accuracy']:.2f}", p, "—"))
    for name, rows in result["families"].items():
        for r in rows:
            tag = " **(matched)**" if r["matched"] else ""
            above = "yes" if r["above_fixed_curve_test"] else "no"
            lines.append(
                row(
                    name + tag,
                    _setting(r["setting"]),
                    f"{r['val']['accuracy']:.2f}",
                    r["test"],
                    above,
                )
            )
    for r in result["latency"]:
        above = "yes" if r["above_fixed_curve_test"] else "no"
        lines.append(row("latency target", f"≤ {r['max_prefill_ms']:g} ms", "—", r["test"], above))
    lines.append(row("oracle", "smallest right m", "—", result["oracle_test"], "—"))
    (out / "frontier.md").write_text("\n".join(lines) + "\n", encoding="utf-8")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for ax, key, label in (
        (axes[0], "gflops", "mean prefill GFLOPs per question (vision + connector + LLM)"),
        (axes[1], "llm_gflops", "mean LLM prefill GFLOPs per question (all attempts)"),
    ):
        ax.plot(
            [p[key] for p in fixed],
            [p["accuracy"] for p in fixed],
            "o-",
            color="black",
            label="fixed m",
        )
        for p in fixed:
            ax.annotate(
                f"{int(p['mean_budget'])}",
                (p[key], p["accuracy"]),
                textcoords="offset points",
                xytext=(-4, -12),
                fontsize=8,
            )
        for (name, rows), marker in zip(
            result["families"].items(), ("s--", "^--", "D--"), strict=False
        ):
            ax.plot(
                [r["test"][key] for r in rows],
                [r["test"]["accuracy"] for r in rows],
                marker,
                label=name,
            )
        if result["latency"]:
            ax.plot(
                [r["test"][key] for r in result["latency"]],
                [r["test"]["accuracy"] for r in result["latency"]],
                "x",
                color="grey",
                label="latency target",
            )
        o = result["oracle_test"]
        ax.plot(
            [o[key]],
            [o["accuracy"]],
            "*",
            markersize=14,
            color="gold",
            markeredgecolor="black",
            label="oracle",
        )
        ax.set_xlabel(label)
        ax.set_ylabel("ShapesVQA test accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle("num_visual_tokens='auto': accuracy against prefill work (bundled model, M = 64)")
    fig.tight_layout()
    path = out / "frontier.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [out / "frontier.md", path]
