"""ShapesVQA: exact-match accuracy, overall and per question type.

ShapesVQA answers are single words ("red", "3", "yes", "left"), so the metric is a plain exact
match after the light clean-up any short-answer scorer does: the first line, surrounding spaces
and trailing periods dropped, lower-cased. No synonyms ("two" is not "2").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

from mqt_llava.evaluation.scorers._io import (
    format_error,
    percent,
    read_answers,
    read_json,
    require_keys,
)


def shapes_prediction(text: str) -> str:
    """A model answer as compared: first line, stripped, trailing periods removed, lower-case."""
    lines = text.strip().splitlines()
    return (lines[0] if lines else "").strip().rstrip(".").strip().lower()


def score_shapes(predictions: Mapping[str, str], gold: Mapping[str, tuple[str, str]]) -> dict:
    """Exact-match accuracy (%) over the answered questions.

    Args:
        predictions: Question id → the model's raw answer; every id must be in ``gold``.
        gold: Question id → (gold answer, question type), for the whole split.

    Returns:
        ``accuracy``, ``per_question_type`` (accuracy per type, types in first-seen order of
        ``gold``), ``n`` (answered questions) and ``missing`` (questions of ``gold`` without an
        answer, e.g. in a ``--limit`` run).
    """
    by_type: dict[str, list[bool]] = defaultdict(list)
    for qid, (answer, question_type) in gold.items():
        if qid in predictions:
            by_type[question_type].append(shapes_prediction(predictions[qid]) == answer.lower())
    every = [hit for hits in by_type.values() for hit in hits]
    return {
        "accuracy": percent(sum(every), len(every)),
        "per_question_type": {t: percent(sum(h), len(h)) for t, h in by_type.items()},
        "n": len(every),
        "missing": len(gold) - len(every),
    }


def load_shapes_gold(path: Path) -> dict[str, tuple[str, str]]:
    """Reads a ShapesVQA split (``test.json``): id → (answer, question type)."""
    records = read_json(path)
    if not isinstance(records, list):
        raise format_error(path, "expected a JSON list of ShapesVQA question records")
    gold = {}
    for record in records:
        require_keys(record, ("id", "answer", "question_type"), path, None)
        gold[str(record["id"])] = (str(record["answer"]), str(record["question_type"]))
    return gold


def score_shapes_files(answers: Path, annotations: Path, questions: Path | None = None) -> dict:
    """Scores ShapesVQA answers against the split file they were asked from (``test.json``)."""
    gold = load_shapes_gold(annotations)
    predictions = {}
    for qid, answer in read_answers(answers).items():
        if qid not in gold:
            raise format_error(answers, f"question_id {qid!r} is not in {annotations}", answer.line)
        predictions[qid] = answer.text
    return score_shapes(predictions, gold)
