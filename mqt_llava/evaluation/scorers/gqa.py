"""GQA accuracy: exact match on the balanced questions, as the official GQA ``eval.py`` scores
the predictions LLaVA-1.5's ``convert_gqa_for_eval.py`` writes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mqt_llava.evaluation.scorers._io import format_error, percent, read_answers, read_json


@dataclass(frozen=True)
class GQAQuestion:
    """The parts of a GQA question the accuracy needs.

    Attributes:
        answer: The gold answer.
        structural: ``types.structural`` ("query" questions are "open", all others "binary").
        balanced: ``isBalanced``; only balanced questions are scored.
    """

    answer: str
    structural: str = ""
    balanced: bool = True


def gqa_prediction(text: str) -> str:
    """LLaVA-1.5's conversion of a model answer: trailing periods dropped, lower-cased."""
    return text.rstrip(".").lower()


def score_gqa(predictions: Mapping[str, str], questions: Mapping[str, GQAQuestion]) -> dict:
    """GQA accuracy (%), overall and for binary / open questions.

    Args:
        predictions: Question id → the model's raw answer.
        questions: Question id → the gold question. Every balanced question is scored; one
            without a prediction counts as wrong (the official script would refuse to run).
    """
    hits: dict[str, list[bool]] = {"all": [], "binary": [], "open": []}
    missing = 0
    for qid, question in questions.items():
        if not question.balanced:
            continue
        if qid not in predictions:
            missing += 1
        hit = qid in predictions and gqa_prediction(predictions[qid]) == question.answer
        hits["all"].append(hit)
        hits["open" if question.structural == "query" else "binary"].append(hit)
    return {
        "accuracy": percent(sum(hits["all"]), len(hits["all"])),
        "binary": percent(sum(hits["binary"]), len(hits["binary"])),
        "open": percent(sum(hits["open"]), len(hits["open"])),
        "n": len(hits["all"]),
        "missing": missing,
    }


def load_gqa_questions(path: Path) -> dict[str, GQAQuestion]:
    """Reads ``testdev_balanced_questions.json`` (question id → ``{"answer", "types", ...}``)."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise format_error(path, "expected a GQA question file: an object keyed by question id")
    out = {}
    for qid, entry in data.items():
        if not isinstance(entry, dict) or "answer" not in entry:
            raise format_error(path, f"question {qid!r}: expected an object with an 'answer'")
        types = entry.get("types") or {}
        out[str(qid)] = GQAQuestion(
            str(entry["answer"]),
            str(types.get("structural", "")),
            bool(entry.get("isBalanced", True)),
        )
    return out


def score_gqa_files(answers: Path, annotations: Path, questions: Path | None = None) -> dict:
    """Scores a GQA answer file against ``testdev_balanced_questions.json``."""
    gold = load_gqa_questions(annotations)
    predictions = {}
    for qid, answer in read_answers(answers).items():
        if qid not in gold:
            raise format_error(answers, f"question_id {qid!r} is not in {annotations}", answer.line)
        predictions[qid] = answer.text
    return score_gqa(predictions, gold)
