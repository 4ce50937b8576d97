"""GQA: every metric the official GQA ``eval.py`` prints, on the predictions LLaVA-1.5's
``convert_gqa_for_eval.py`` writes.

The official script (the GQA site's ``eval.py``, run by LLaVA-1.5's ``scripts/v1_5/eval/gqa.sh``
as ``eval.py --tier testdev_balanced`` with the edit LLaVA's docs link for the v1.2 release)
scores the balanced questions only and prints:

* Binary, Open, Accuracy: exact match, overall and split by ``types.structural`` ("query" is
  open, every other type binary);
* Validity and Plausibility: whether the prediction is among the question's ``valid`` /
  ``plausible`` answers of the choices file (``{tier}_choices.json``); when that file is absent
  (the v1.2 testdev release) the script prints 0.00 % for both; here they are None instead;
* Distribution: a chi-square distance between gold and predicted answer histograms per
  ``groups.global`` group, weighted by group size, divided by 100 (lower is better);
* accuracy per structural type, per semantic type, per number of reasoning steps and per number
  of words, each with its question count.

Consistency and grounding need ``--consistency`` / ``--grounding`` (answers to all questions,
attention maps); LLaVA-1.5 runs neither, and neither is computed here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mqt_llava.evaluation.scorers._io import format_error, percent, read_answer_list, read_json

# A step whose "operation: argument" holds one of these only reads the answer out; eval.py does
# not count it as reasoning.
_NOT_A_STEP = ("exist", "query: name", "choose name")
_COMMON = ("color", "material", "shape")


@dataclass(frozen=True)
class GQAQuestion:
    """The parts of a GQA question the metrics need.

    Attributes:
        answer: The gold answer.
        structural: ``types.structural`` ("query" questions are "open", all others "binary").
        balanced: ``isBalanced``; only balanced questions are scored.
        semantic: ``types.semantic`` ("attr", "rel", "obj", "cat", "global").
        detailed: ``types.detailed``; a "Common" question's valid / plausible answers are the
            words color, material and shape (eval.py's ``belongs``).
        global_group: ``groups.global``, the answer-distribution group (None: not counted).
        words: Words in the question text (None when the file has no ``question``).
        steps: Reasoning steps of ``semantic`` (None when the file has no ``semantic``).
    """

    answer: str
    structural: str = ""
    balanced: bool = True
    semantic: str = ""
    detailed: str = ""
    global_group: str | None = None
    words: int | None = None
    steps: int | None = None


def gqa_prediction(text: str) -> str:
    """LLaVA-1.5's conversion of a model answer: trailing periods dropped, lower-cased."""
    return text.rstrip(".").lower()


def reasoning_steps(program: Sequence[Mapping]) -> int:
    """eval.py's ``getStepsNum``: operations of the question's ``semantic`` program, leaving out
    those whose ``"operation: argument"`` contains "exist", "query: name" or "choose name"."""
    return sum(
        not any(o in f"{step['operation']}: {step['argument']}" for o in _NOT_A_STEP)
        for step in program
    )


def chi_square(gold: Mapping[str, Mapping[str, int]], predicted: Mapping) -> float | None:
    """eval.py's ``chiSquare``: per group, sum over the gold answers of (o - e)^2 / e, averaged
    over groups weighted by their question counts (None for no group, where it divides by 0)."""
    total_score, total = 0.0, 0
    for group, answers in gold.items():
        score, overall = 0.0, 0
        for answer, expected in answers.items():
            observed = predicted.get(group, {}).get(answer, 0)
            score += float(observed - expected) ** 2 / expected
            overall += expected
        total_score += score * overall
        total += overall
    return total_score / total if total else None


def _table(hits: Mapping, order=None) -> dict[str, dict]:
    keys = sorted(hits, key=order)
    return {
        str(k): {"accuracy": percent(sum(hits[k]), len(hits[k])), "n": len(hits[k])} for k in keys
    }


def score_gqa(
    predictions: Mapping[str, str],
    questions: Mapping[str, GQAQuestion],
    choices: Mapping[str, tuple[Sequence[str], Sequence[str]]] | None = None,
) -> dict:
    """The official GQA metrics (%) of raw model answers.

    Args:
        predictions: Question id → the model's raw answer (converted with `gqa_prediction`).
        questions: Question id → the gold question. Balanced questions with a prediction are
            scored; those without one are counted in ``missing`` (eval.py refuses to run then;
            a ``--limit`` run scores the questions it answered).
        choices: Question id → (valid answers, plausible answers), from ``{tier}_choices.json``;
            None when there is no choices file.

    Returns:
        ``accuracy``, ``binary``, ``open``, ``validity``, ``plausibility`` (None without
        ``choices``), ``distribution``, ``n``, ``n_binary``, ``n_open``, ``missing`` and
        ``per_structural_type`` / ``per_semantic_type`` / ``per_steps`` / ``per_length``:
        ``{type: {"accuracy", "n"}}`` in eval.py's printing order (sorted keys).
    """
    scores: dict[str, list[bool]] = {"accuracy": [], "binary": [], "open": []}
    valid, plausible = [], []
    per: dict[str, dict] = {
        k: defaultdict(list) for k in ("structural", "semantic", "steps", "words")
    }
    gold_dist: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    pred_dist: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    missing = 0
    for qid, question in questions.items():
        if not question.balanced:
            continue
        if qid not in predictions:
            missing += 1
            continue
        predicted = gqa_prediction(predictions[qid])
        hit = predicted == question.answer
        scores["accuracy"].append(hit)
        scores["open" if question.structural == "query" else "binary"].append(hit)
        per["structural"][question.structural].append(hit)
        per["semantic"][question.semantic].append(hit)
        if question.steps is not None:
            per["steps"][question.steps].append(hit)
        if question.words is not None:
            per["words"][question.words].append(hit)
        if choices is not None:
            valid_answers, plausible_answers = choices.get(qid, ((), ()))
            if "Common" in question.detailed:
                valid_answers = plausible_answers = _COMMON
            valid.append(predicted in valid_answers)
            plausible.append(predicted in plausible_answers)
        if question.global_group is not None:
            gold_dist[question.global_group][question.answer] += 1
            pred_dist[question.global_group][predicted] += 1
    distribution = chi_square(gold_dist, pred_dist)
    return {
        **{k: percent(sum(v), len(v)) for k, v in scores.items()},
        "validity": percent(sum(valid), len(valid)) if choices is not None else None,
        "plausibility": percent(sum(plausible), len(plausible)) if choices is not None else None,
        "distribution": distribution / 100 if distribution is not None else None,
        "n": len(scores["accuracy"]),
        "n_binary": len(scores["binary"]),
        "n_open": len(scores["open"]),
        "missing": missing,
        "per_structural_type": _table(per["structural"]),
        "per_semantic_type": _table(per["semantic"]),
        "per_steps": _table(per["steps"]),
        "per_length": _table(per["words"]),
    }


def load_gqa_questions(path: Path) -> dict[str, GQAQuestion]:
    """Reads ``testdev_balanced_questions.json`` (question id → ``{"answer", "types", "groups",
    "question", "semantic", "isBalanced", ...}``)."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise format_error(path, "expected a GQA question file: an object keyed by question id")
    out = {}
    for qid, entry in data.items():
        if not isinstance(entry, dict) or "answer" not in entry:
            raise format_error(path, f"question {qid!r}: expected an object with an 'answer'")
        types, groups = entry.get("types") or {}, entry.get("groups") or {}
        program = entry.get("semantic")
        try:
            steps = reasoning_steps(program) if isinstance(program, list) else None
        except (KeyError, TypeError):
            raise format_error(
                path, f"question {qid!r}: expected 'semantic' steps with operation and argument"
            ) from None
        text = entry.get("question")
        out[str(qid)] = GQAQuestion(
            answer=str(entry["answer"]),
            structural=str(types.get("structural", "")),
            balanced=bool(entry.get("isBalanced", True)),
            semantic=str(types.get("semantic", "")),
            detailed=str(types.get("detailed", "")),
            global_group=groups.get("global"),
            words=len(text.split()) if isinstance(text, str) else None,
            steps=steps,
        )
    return out


def choices_file(questions: Path) -> Path | None:
    """eval.py's ``{tier}_choices.json`` beside the question file: ``testdev_balanced_questions
    .json`` → ``testdev_balanced_choices.json`` (None when absent, as in the v1.2 release)."""
    name = questions.name
    if not name.endswith("_questions.json"):
        return None
    path = questions.with_name(name[: -len("_questions.json")] + "_choices.json")
    return path if path.is_file() else None


def load_gqa_choices(path: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Reads a GQA choices file: question id → ``{"valid": [...], "plausible": [...]}``."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise format_error(path, "expected a GQA choices file: an object keyed by question id")
    out = {}
    for qid, entry in data.items():
        if not isinstance(entry, dict) or not {"valid", "plausible"} <= entry.keys():
            raise format_error(path, f"question {qid!r}: expected 'valid' and 'plausible' lists")
        out[str(qid)] = (list(entry["valid"]), list(entry["plausible"]))
    return out


def score_gqa_files(answers: Path, annotations: Path, questions: Path | None = None) -> dict:
    """Scores a GQA answer file against ``testdev_balanced_questions.json`` (and the choices
    file beside it, when there is one). A repeated ``question_id`` keeps its last line, as the
    predictions dictionary of eval.py does."""
    gold = load_gqa_questions(annotations)
    found = choices_file(annotations)
    choices = load_gqa_choices(found) if found is not None else None
    predictions = {}
    for answer in read_answer_list(answers):
        if answer.question_id not in gold:
            raise format_error(
                answers, f"question_id {answer.question_id!r} is not in {annotations}", answer.line
            )
        predictions[answer.question_id] = answer.text
    return score_gqa(predictions, gold, choices)
