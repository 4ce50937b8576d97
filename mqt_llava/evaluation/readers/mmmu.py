"""MMMU (validation), asked as the official MMMU code asks LLaVA-1.5 (``configs/llava1.5.yaml``).

Input: a JSONL with one MMMU record per line, as the Hugging Face dataset ``MMMU/MMMU`` holds them
with the images saved to files: ``id`` ("validation_Art_Theory_12"), ``question``, ``options``
(a list, or its Python repr as in the dataset), ``question_type`` ("multiple-choice" / "open"),
``image_1`` (a path relative to the file's folder) and optionally ``answer``.

Prompts: multiple choice ``{question}\\n(A) {option}\\n(B) ...\\n\\nAnswer with the option's letter
from the given choices directly.``; open ``{question}\\nAnswer the question using a single word or
phrase.``. Like the official LLaVA runner, only ``image_1`` is shown and ``<image 1>`` stays in the
text.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

from mqt_llava.evaluation.readers._common import OPTION_LETTER, SHORT_ANSWER, EvalItem, find_file
from mqt_llava.evaluation.scorers._io import read_jsonl, require_keys
from mqt_llava.evaluation.scorers.multiple_choice import _options_of

QUESTION_FILES = ("mmmu_validation.jsonl", "mmmu_*.jsonl", "*.jsonl")


def question_file(data: Path, questions: Path | None) -> Path:
    if questions is not None:
        if not questions.is_file():
            raise FileNotFoundError(f"--questions {questions}: no such file")
        return questions
    return find_file(data, QUESTION_FILES, "MMMU question file (JSONL)")


def mmmu_question(question: str, options: tuple[str, ...], question_type: str) -> str:
    """The user text of one MMMU question."""
    if question_type == "multiple-choice":
        listed = "".join(
            f"({letter}) {option}\n"
            for letter, option in zip(string.ascii_uppercase, options, strict=False)
        )
        return f"{question}\n{listed}\n{OPTION_LETTER}"
    return f"{question}\n{SHORT_ANSWER}"


def read(data: Path, questions: Path | None = None, images: Path | None = None) -> list[EvalItem]:
    """Reads the MMMU JSONL; image paths are relative to ``images`` or the file's folder."""
    path = question_file(data, questions)
    folder = images or path.parent
    items = []
    for lineno, record in read_jsonl(path):
        require_keys(record, ("id", "question", "question_type"), path, lineno)
        options = _options_of(record, path, lineno)
        text = mmmu_question(str(record["question"]), options, str(record["question_type"]))
        image = record.get("image_1")
        items.append(
            EvalItem(
                str(record["id"]),
                folder / image if image else None,
                text,
                text,
                {"question_type": record["question_type"]},
            )
        )
    return items


def annotations(data: Path, questions: Path | None, out: Path) -> Path | None:
    """MMMU's ``answer_dict_val.json`` if present, else one written to ``out`` from the
    records' ``answer`` fields (None if they have none)."""
    for candidate in (data / "answer_dict_val.json", data / "eval" / "answer_dict_val.json"):
        if candidate.is_file():
            return candidate
    gold = {}
    for _, record in read_jsonl(question_file(data, questions)):
        if "answer" not in record:
            return None
        gold[str(record["id"])] = {
            "question_type": record.get("question_type"),
            "ground_truth": record["answer"],
        }
    out.mkdir(parents=True, exist_ok=True)
    derived = out / "mmmu_answer_dict.json"
    derived.write_text(json.dumps(gold, indent=1), encoding="utf-8")
    return derived
