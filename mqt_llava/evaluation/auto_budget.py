"""``mqt-llava eval --num-visual-tokens auto``: a benchmark answered with per-question budgets.

Each batch is encoded once at M; a budget policy (`mqt_llava.inference.policies`) chooses every
question's budget, escalating where it says so. ``answers_auto.jsonl`` records, per question, the
kept budget, every attempt (budget, answer, confidence, LLM GFLOPs) and the prefill GFLOPs spent
(vision and connector once, plus every attempt's LLM prefill). Its ``metrics.json`` row adds the
accuracy's companions: mean budget, mean attempts and mean prefill GFLOPs, all attempts counted.
The automatic run is not resumed: it is answered afresh each time (an interrupted run loses it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mqt_llava.evaluation.answer_files import answer_record, append_answers, check_unique
from mqt_llava.evaluation.readers import Benchmark, EvalItem, headline_value
from mqt_llava.evaluation.score import score
from mqt_llava.evaluation.scorers import AnnotationFormatError

AUTO_FILE = "answers_auto.jsonl"


def run_auto(
    vlm,
    items: Sequence[EvalItem],
    out: Path,
    model_id: str,
    policy=None,
    batch_size: int = 8,
    max_new_tokens: int = 128,
    template: str = "llava_v1",
    progress: bool = True,
) -> tuple[Path, dict[str, Any]]:
    """Answers every item with an automatic budget; returns the answer file and the means.

    Args:
        vlm: A loaded `MQTLlava`.
        items: The questions.
        out: Output folder (``answers_auto.jsonl`` is rewritten).
        model_id: The answers' ``model_id``.
        policy: A policy, its JSON file or dict; default: the model folder's, else escalation.
        batch_size: Questions per batch.
        max_new_tokens: Generation limit.
        template: Chat template of the prompts.
        progress: Show a progress bar.

    Returns:
        (answer file, {"policy", "mean_num_visual_tokens", "mean_attempts",
        "mean_prefill_gflops"}).
    """
    from mqt_llava.inference.budget import (
        AUTO,
        PrefillCost,
        answer_batch,
        attempts_json,
        load_policy,
        model_folder,
        summary,
    )
    from mqt_llava.inference.generation import encode_images

    model, processor = vlm.model, vlm.processor
    policy = load_policy(policy, model_folder(model))
    cost = PrefillCost(model.config)
    check_unique(items)
    out.mkdir(parents=True, exist_ok=True)
    path = out / AUTO_FILE
    path.unlink(missing_ok=True)
    big_m = model.config.num_queries
    answers = []
    for start in tqdm(range(0, len(items), batch_size), unit="batch", disable=not progress):
        batch = items[start : start + batch_size]
        images = [item.image for item in batch if item.image is not None]
        features = encode_images(model, processor, images, big_m) if images else None
        prompts, visual, used = [], [], 0
        for item in batch:
            count = int(item.image is not None)
            prompts.append(processor.build_prompt(item.question, count, template))
            visual.append(features[used : used + count] if count else None)
            used += count
        results = answer_batch(
            model, processor, prompts, visual, [AUTO] * len(batch), policy, max_new_tokens, cost
        )
        records = []
        for item, result in zip(batch, results, strict=True):
            record = answer_record(item, result.text, result.num_visual_tokens, model_id)
            record["metadata"].update(
                attempts=attempts_json(result),
                prefill_gflops=result.prefill_gflops,
                budget_policy=result.policy,
            )
            records.append(record)
        append_answers(path, records)
        answers.extend(results)
    return path, {"policy": policy.to_dict(), **summary(answers)}


def score_auto(
    benchmark: Benchmark,
    path: Path,
    means: dict[str, Any],
    annotations: Path | None,
    scorer_questions: Path | None,
) -> dict[str, Any]:
    """The ``metrics.json`` row of an automatic run (``num_visual_tokens: "auto"``)."""
    row: dict[str, Any] = {"num_visual_tokens": "auto", "answers": path.name, **means}
    row["score"] = row["metrics"] = None
    if annotations is not None:
        try:
            metrics = score(benchmark.name, path, annotations, scorer_questions)
        except (AnnotationFormatError, ValueError, FileNotFoundError) as err:
            row["error"] = str(err)
        else:
            row["metrics"], row["score"] = metrics, headline_value(benchmark, metrics)
    return row
