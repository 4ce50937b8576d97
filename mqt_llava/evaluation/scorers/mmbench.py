"""MMBench circular evaluation, with VLMEvalKit's exact-matching answer extraction.

The MMBench TSV holds each question once per rotation of its options: the original row has
``index`` < 1,000,000 and its rotations ``index + k * 1,000,000`` with the options shifted and
``answer`` relabelled. A question counts as correct only if every one of its rows is answered
correctly (VLMEvalKit ``mcq_circular_eval``: rows are grouped by ``index % 1e6``). Per-category
scores are over the original rows' ``category`` / ``l2-category``.
"""

from __future__ import annotations

import csv
import string
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mqt_llava.evaluation.scorers._io import format_error, percent, read_answers

_ROTATION_STRIDE = 1_000_000
# VLMEvalKit reads the TSV with pandas; these cells are NaN there, i.e. "no such option".
_PANDAS_NA = frozenset({
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
})  # fmt: skip
_REFUSALS = (
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)


@dataclass(frozen=True)
class MMBenchRow:
    """One row of the MMBench TSV.

    Attributes:
        index: The row's ``index`` (rotations of question q have index q + k * 1e6).
        answer: The gold option letter for this row's order of options.
        options: Letter → option text, for the options present.
        category: The fine ability (``category``).
        l2_category: The coarse ability (``l2-category``).
    """

    index: int
    answer: str
    options: Mapping[str, str] = field(default_factory=dict)
    category: str = ""
    l2_category: str = ""


def _infer_option(answer: str, choices: Mapping[str, str]) -> str | None:
    """``can_infer_option``: exactly one option letter stands alone among the words."""
    for refusal in _REFUSALS:
        if refusal in answer:
            return "Z"
    for char in ".()[],:;!*#{}":
        answer = answer.replace(char, " ")
    words = answer.split()
    letters = [letter for letter in choices if letter in words]
    if len(letters) == 1:
        return letters[0]
    if not letters and "Z" in words:
        return "Z"
    return None


def _infer_text(answer: str, choices: Mapping[str, str]) -> str | None:
    """``can_infer_text``: exactly one option's text occurs in the answer (case-insensitive)."""
    answer = answer.lower()
    found = [letter for letter, text in choices.items() if text.lower() in answer]
    return found[0] if len(found) == 1 else None


def mmbench_choice(prediction: str, choices: Mapping[str, str]) -> str | None:
    """The option a free-form answer picks, by VLMEvalKit's ``can_infer`` (no judge model).

    Returns:
        An option letter, "Z" for a refusal / "none of them", or None when nothing can be read.
    """
    return _infer_option(prediction, choices) or _infer_text(prediction, choices)


def score_mmbench(predictions: Mapping[int, str], rows: Sequence[MMBenchRow]) -> dict:
    """MMBench circular accuracy (%), overall, per ``l2-category`` and per ``category``.

    Args:
        predictions: Row index → the model's raw answer. A row without one counts as wrong.
        rows: All rows of the TSV, rotations included.

    Returns:
        ``accuracy`` (circular), ``vanilla_accuracy`` (original rows only), ``per_l2_category``,
        ``per_category``, ``n`` (questions), ``n_rows`` and ``missing`` (rows with no answer).
    """
    groups: dict[int, list[MMBenchRow]] = defaultdict(list)
    for row in rows:
        groups[row.index % _ROTATION_STRIDE].append(row)
    hit_of_row = {
        row.index: row.index in predictions
        and mmbench_choice(predictions[row.index], row.options) == row.answer
        for row in rows
    }
    by_l2: dict[str, list[bool]] = defaultdict(list)
    by_category: dict[str, list[bool]] = defaultdict(list)
    circular, vanilla = [], []
    for g_index, members in sorted(groups.items()):
        main = next((r for r in members if r.index == g_index), None)
        if main is None:  # rotations whose original row is absent are not scored by VLMEvalKit
            continue
        hit = all(hit_of_row[r.index] for r in members)
        circular.append(hit)
        vanilla.append(hit_of_row[main.index])
        by_l2[main.l2_category].append(hit)
        by_category[main.category].append(hit)
    return {
        "accuracy": percent(sum(circular), len(circular)),
        "vanilla_accuracy": percent(sum(vanilla), len(vanilla)),
        "per_l2_category": {k: percent(sum(v), len(v)) for k, v in sorted(by_l2.items()) if k},
        "per_category": {k: percent(sum(v), len(v)) for k, v in sorted(by_category.items()) if k},
        "n": len(circular),
        "n_rows": len(rows),
        "missing": sum(row.index not in predictions for row in rows),
    }


def load_mmbench_tsv(path: Path) -> list[MMBenchRow]:
    """Reads an MMBench TSV (``index, question, A, B, C, D, answer, category, l2-category``...)."""
    csv.field_size_limit(sys.maxsize)  # the image column holds whole base64 images
    rows = []
    with open(path, encoding="utf-8", newline="") as file:
        reader = csv.DictReader(file, delimiter="\t")
        missing = {"index", "answer", "A"} - set(reader.fieldnames or ())
        if missing:
            raise format_error(
                path, f"expected an MMBench TSV header with columns {sorted(missing)}", 1
            )
        for lineno, record in enumerate(reader, start=2):
            try:
                index = int(float(record["index"]))
            except (TypeError, ValueError):
                raise format_error(
                    path, f"index {record['index']!r} is not an integer", lineno
                ) from None
            options = {
                letter: record[letter]
                for letter in string.ascii_uppercase
                if record.get(letter) is not None and record[letter] not in _PANDAS_NA
            }
            rows.append(
                MMBenchRow(
                    index,
                    (record["answer"] or "").strip(),
                    options,
                    record.get("category") or "",
                    record.get("l2-category") or "",
                )
            )
    return rows


def score_mmbench_files(answers: Path, annotations: Path, questions: Path | None = None) -> dict:
    """Scores MMBench answers (``question_id`` = the TSV ``index``) against the MMBench TSV."""
    rows = load_mmbench_tsv(annotations)
    known = {row.index for row in rows}
    predictions = {}
    for qid, answer in read_answers(answers).items():
        try:
            index = int(qid)
        except ValueError:
            raise format_error(
                answers, f"question_id {qid!r} is not an MMBench index", answer.line
            ) from None
        if index not in known:
            raise format_error(answers, f"index {index} is not in {annotations}", answer.line)
        predictions[index] = answer.text
    return score_mmbench(predictions, rows)
