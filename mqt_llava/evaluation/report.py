"""``mqt-llava report``: a Markdown table benchmark × budget and a PNG of accuracy against the
visual-token budget and against prefill TFLOPs, from the ``metrics.json`` of ``mqt-llava eval``
runs.

Prefill TFLOPs come from a table passed in (the JSON that ``mqt-llava flops --json`` prints, or a
plain ``{"<m>": tflops}``) or, failing that, are counted from the runs' model configuration with
`mqt_llava.perf.flops` when that module is installed (imported only then).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

from mqt_llava.evaluation.answer_files import METRICS_FILE

MARKDOWN_FILE, PLOT_FILE = "results.md", "accuracy_vs_budget.png"


def load_runs(runs: list[Path]) -> list[dict[str, Any]]:
    """Reads the ``metrics.json`` of each run folder (or the file itself).

    Raises:
        FileNotFoundError: A run has no ``metrics.json``.
    """
    loaded = []
    for run in runs:
        path = run / METRICS_FILE if run.is_dir() else run
        if not path.is_file():
            raise FileNotFoundError(f"{run}: no {METRICS_FILE}; run `mqt-llava eval` first")
        run_metrics = json.loads(path.read_text(encoding="utf-8"))
        # The budget x benchmark table has fixed budgets only: "auto" rows are left out.
        run_metrics["results"] = [
            r for r in run_metrics["results"] if isinstance(r["num_visual_tokens"], int)
        ]
        loaded.append(run_metrics)
    return loaded


def flops_table(flops: dict[str, Any]) -> dict[int, float]:
    """Budget → prefill TFLOPs from ``mqt-llava flops --json`` output or ``{"<m>": tflops}``.

    Raises:
        ValueError: Neither form.
    """
    if isinstance(flops, dict) and isinstance(flops.get("rows"), list):
        try:
            return {int(r["num_visual_tokens"]): float(r["total_tflops"]) for r in flops["rows"]}
        except (KeyError, TypeError, ValueError):
            pass
    else:
        try:
            return {int(m): float(v) for m, v in flops.items()}
        except (AttributeError, TypeError, ValueError):
            pass
    raise ValueError(
        "--flops: expected the JSON of `mqt-llava flops --json` ({'rows': [{'num_visual_tokens', "
        "'total_tflops'}...]}) or a mapping {'<budget>': tflops}"
    )


def count_flops(model_dir: str, budgets: list[int], prompt_tokens: int) -> dict[int, float] | None:
    """Prefill TFLOPs of a saved model at each budget, or None if they cannot be counted here."""
    try:
        from mqt_llava.perf.flops import count_mqt_flops, load_config
    except ImportError:
        return None
    try:
        rows = count_mqt_flops(load_config(model_dir), budgets, prompt_tokens)
    except (OSError, ValueError) as err:
        warnings.warn(f"could not count FLOPs for {model_dir}: {err}", stacklevel=2)
        return None
    return {row.num_visual_tokens: row.total_tflops for row in rows}


def _label(run: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    same = [r for r in runs if r["title"] == run["title"]]
    return run["title"] if len(same) == 1 else f"{run['title']} ({Path(run['model']).name})"


def _scores(run: dict[str, Any]) -> dict[int, float]:
    return {r["num_visual_tokens"]: r["score"] for r in run["results"] if r["score"] is not None}


def markdown_table(
    runs: list[dict[str, Any]], flops: dict[int, float] | None, prompt_tokens: int
) -> str:
    """The benchmark × budget table (headline metric per cell) with a prefill-TFLOPs row."""
    budgets = sorted({r["num_visual_tokens"] for run in runs for r in run["results"]})
    lines = [
        "| benchmark (metric) | " + " | ".join(str(m) for m in budgets) + " |",
        "|---|" + "---:|" * len(budgets),
    ]
    for run in runs:
        scores = _scores(run)
        cells = [f"{scores[m]:.1f}" if m in scores else "–" for m in budgets]
        name = f"{_label(run, runs)} ({run['headline']}, n={run['num_questions']})"
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if flops:
        cells = [f"{flops[m]:.3g}" if m in flops else "–" for m in budgets]
        name = f"prefill TFLOPs (1 image + {prompt_tokens} text tokens)"
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(
    runs: list[dict[str, Any]], flops: dict[int, float] | None, path: Path, title: str
) -> Path:
    """Accuracy against budget (log scale), and against prefill TFLOPs when known.

    Percentages share the left axis; scores that are not percentages (MME) get a right axis.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display
        import matplotlib.pyplot as plt
    except ImportError:
        message = "the report's plot needs matplotlib: pip install 'mqt-llava[viz]'"
        raise ValueError(message) from None

    panels = 2 if flops else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.5), squeeze=False)
    budgets = sorted({r["num_visual_tokens"] for run in runs for r in run["results"]})
    for col, axis in enumerate(axes[0]):
        right = None
        for index, run in enumerate(runs):
            scores = _scores(run)
            ms = [m for m in sorted(scores) if col == 0 or m in flops]
            if not ms:
                continue
            xs = ms if col == 0 else [flops[m] for m in ms]
            target = axis
            if not run.get("percent", True):
                right = right or axis.twinx()
                target = right
            style = "o-" if run.get("percent", True) else "s--"
            target.plot(
                xs, [scores[m] for m in ms], style, color=f"C{index}", label=_label(run, runs)
            )  # one colour per run across both axes (a twin axis restarts the colour cycle)
        axis.set_ylabel("accuracy (%)")
        if right is not None:
            right.set_ylabel("score (MME)")
        if col == 0:
            axis.set_xscale("log", base=2)
            axis.set_xticks(budgets, [str(m) for m in budgets])
            axis.set_xlabel("visual tokens per image")
        else:
            axis.set_xlabel("prefill TFLOPs per question")
        axis.grid(alpha=0.3)
        handles = [h for ax in (axis, right) if ax for h in ax.get_legend_handles_labels()[0]]
        axis.legend(handles, [h.get_label() for h in handles], fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(
    runs: list[Path],
    out: Path,
    flops: dict[str, Any] | None = None,
    prompt_tokens: int = 60,
    title: str = "MQT-LLaVA: accuracy against visual-token budget",
) -> list[Path]:
    """Writes ``results.md`` and ``accuracy_vs_budget.png`` into ``out``.

    Args:
        runs: Output folders of ``mqt-llava eval`` (or their ``metrics.json``).
        out: Where to write.
        flops: A prefill-FLOPs table (see `flops_table`); None to count it from the first run's
            model configuration when `mqt_llava.perf.flops` is available.
        prompt_tokens: Text tokens assumed per question when counting FLOPs.
        title: Title of the plot.

    Returns:
        The files written.
    """
    loaded = load_runs(runs)
    if flops is not None:
        table = flops_table(flops)
        if isinstance(flops.get("prompt_tokens"), int):  # the counter's own setting
            prompt_tokens = flops["prompt_tokens"]
    else:
        budgets = sorted({r["num_visual_tokens"] for run in loaded for r in run["results"]})
        model = loaded[0]["model"]
        table = count_flops(model, budgets, prompt_tokens) if Path(model).is_dir() else None
    if table is not None and any(not math.isfinite(v) for v in table.values()):
        raise ValueError("--flops: TFLOPs must be finite numbers")
    out.mkdir(parents=True, exist_ok=True)
    markdown = out / MARKDOWN_FILE
    markdown.write_text(markdown_table(loaded, table, prompt_tokens), encoding="utf-8")
    return [markdown, plot(loaded, table, out / PLOT_FILE, title)]
