"""Evaluating ShapesVQA models over budgets, and the experiment's table and plots.

Answers come from the project's evaluation runner (`mqt-llava eval --benchmark shapes`: the
image is encoded once per batch, greedy answers, exact match per question type); prefill FLOPs
from `mqt_llava.perf.flops` (PyTorch's FLOP counter on the meta device).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.shapes_questions import QUESTION_TYPES

BUDGETS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
# Types whose accuracy the shipped model must keep >= 95 % at m = M (the bar).
HEADLINE_TYPES: tuple[str, ...] = ("colour", "shape")


def evaluate_budgets(
    model_dir: Path | None,
    dataset_dir: Path,
    out: Path,
    budgets: Sequence[int] = BUDGETS,
    batch_size: int = 64,
    limit: int | None = None,
) -> dict[int, dict[str, float]]:
    """Accuracy (%) on the dataset's test split at each budget, overall and per question type.

    Args:
        model_dir: A model folder (None: the bundled default model).
        dataset_dir: A ShapesVQA folder (its `test.json` is asked).
        out: Where the runner writes answers and `metrics.json` (replaced if present).
        budgets: Budgets m to evaluate.
        batch_size: Questions per generation batch.
        limit: Only the first `limit` questions (smoke tests).

    Returns:
        m -> {"overall": accuracy, <question type>: accuracy, ...}.
    """
    from ..evaluation.runner import evaluate

    metrics = evaluate(
        model_dir,
        "shapes",
        Path(dataset_dir),
        list(budgets),
        Path(out),
        batch_size=batch_size,
        limit=limit,
        max_new_tokens=4,  # answers are one word; "</s>" ends them well before
        overwrite=True,
        progress=False,
    )
    table = {}
    for row in metrics["results"]:
        scores = row["metrics"]
        table[int(row["num_visual_tokens"])] = {
            "overall": scores["accuracy"],
            **scores["per_question_type"],
        }
    return table


def prompt_tokens(dataset_dir: Path, processor: Any, limit: int = 200) -> int:
    """Mean text tokens of a test prompt (llava_v1, without the visual tokens), rounded."""
    records = json.loads((Path(dataset_dir) / "test.json").read_text())[:limit]
    lengths = []
    for record in records:
        question = record["conversations"][0]["value"].replace("<image>", "").strip()
        prompt = processor.build_prompt(question)
        lengths.append(len(processor.tokenize_prompt(prompt, [0])))
    return round(sum(lengths) / len(lengths))


def prefill_flops(model_dir: Path, budgets: Sequence[int], text_tokens: int) -> dict[int, float]:
    """Prefill GFLOPs per question at each budget (vision + connector + LLM, last logits)."""
    from ..perf.flops import count_mqt_flops, load_config

    rows = count_mqt_flops(load_config(model_dir), list(budgets), text_tokens)
    return {row.num_visual_tokens: row.total_tflops * 1e3 for row in rows}


def _types(table: dict[int, dict[str, float]]) -> list[str]:
    present = {t for scores in table.values() for t in scores}
    return ["overall", *[t for t in QUESTION_TYPES if t in present]]


def budget_table(table: dict[int, dict[str, float]], flops: dict[int, float] | None = None) -> str:
    """Markdown: one row per question type (and overall), one column per budget."""
    budgets = sorted(table)
    lines = [
        "| question type | " + " | ".join(f"m={m}" for m in budgets) + " |",
        "|---|" + "---:|" * len(budgets),
    ]
    for name in _types(table):
        cells = [f"{table[m][name]:.1f}" if name in table[m] else "–" for m in budgets]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if flops:
        cells = [f"{flops[m]:.3f}" if m in flops else "–" for m in budgets]
        lines.append("| prefill GFLOPs | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def variants_table(results: dict[str, dict[int, dict[str, float]]]) -> str:
    """Markdown: one row per (variant, question type), one column per budget."""
    budgets = sorted({m for table in results.values() for m in table})
    lines = [
        "| model | question type | " + " | ".join(f"m={m}" for m in budgets) + " |",
        "|---|---|" + "---:|" * len(budgets),
    ]
    for variant, table in results.items():
        for name in _types(table):
            cells = [
                f"{table[m][name]:.1f}" if m in table and name in table[m] else "–" for m in budgets
            ]
            lines.append(f"| {variant} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only
    import matplotlib.pyplot as plt

    return plt


def plot_types(table: dict[int, dict[str, float]], path: Path, title: str) -> Path:
    """Accuracy against budget (log scale), one line per question type."""
    plt = _pyplot()
    budgets = sorted(table)
    fig, axis = plt.subplots(figsize=(7, 4.5))
    for index, name in enumerate(_types(table)):
        style = "k-o" if name == "overall" else "-o"
        kwargs = {"linewidth": 2.5} if name == "overall" else {"color": f"C{index}"}
        axis.plot(budgets, [table[m].get(name) for m in budgets], style, label=name, **kwargs)
    axis.set_xscale("log", base=2)
    axis.set_xticks(budgets, [str(m) for m in budgets])
    axis.set_xlabel("visual tokens per image (m)")
    axis.set_ylabel("test accuracy (%)")
    axis.set_ylim(0, 101)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, ncol=2, loc="lower right")
    axis.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_variants(
    results: dict[str, dict[int, dict[str, float]]],
    flops: dict[int, float],
    path: Path,
    title: str,
    types: Sequence[str] = ("overall", "colour", "shape"),
) -> Path:
    """Accuracy against m and against prefill GFLOPs; one colour per model, one panel row per
    question type in `types`."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(types), 2, figsize=(11, 3.4 * len(types)), squeeze=False)
    for row, name in enumerate(types):
        for col in range(2):
            axis = axes[row][col]
            for index, (variant, table) in enumerate(results.items()):
                budgets = sorted(m for m in table if name in table[m])
                xs = budgets if col == 0 else [flops[m] for m in budgets]
                ys = [table[m][name] for m in budgets]
                axis.plot(xs, ys, "-o", color=f"C{index}", label=variant, markersize=4)
            if col == 0:
                axis.set_xscale("log", base=2)
                ticks = sorted({m for table in results.values() for m in table})
                axis.set_xticks(ticks, [str(m) for m in ticks])
                axis.set_xlabel("visual tokens per image (m)")
            else:
                axis.set_xlabel("prefill GFLOPs per question")
            axis.set_ylabel(f"{name} accuracy (%)")
            axis.grid(alpha=0.3)
            if row == 0 and col == 0:
                axis.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
