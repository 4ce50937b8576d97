"""MMBench from its TSV (base64 images in the ``image`` column), as LLaVA-1.5's
``model_vqa_mmbench.py --single-pred-prompt`` asks it.

Per row: options A–D up to the first empty one; the question is ``hint\\n`` (when the hint is not
empty) + question + ``\\nA. option`` per option; the user turn appends ``\\nAnswer with the
option's letter from the given choices directly.``; the answer's ``prompt`` is the question
without that line. Each row (circular rotations included) is one question, id = ``index``.
"""

from __future__ import annotations

import base64
import binascii
import csv
import sys
from pathlib import Path

from mqt_llava.evaluation.readers._common import OPTION_LETTER, EvalItem, find_file
from mqt_llava.evaluation.scorers._io import format_error
from mqt_llava.evaluation.scorers.mmbench import _PANDAS_NA

OPTIONS = ("A", "B", "C", "D")


def is_none(value: str | None) -> bool:
    """The release's ``is_none`` on a pandas-read cell: empty / NaN / "nan" / "none"."""
    return value is None or value in _PANDAS_NA or value.lower() in ("nan", "none")


def tsv_file(data: Path, questions: Path | None = None) -> Path:
    """The MMBench TSV: ``questions``, or the one TSV in ``data`` (dev split preferred)."""
    if questions is not None:
        if not questions.is_file():
            raise FileNotFoundError(f"--questions {questions}: no such file")
        return questions
    if data.is_file():
        return data
    return find_file(data, ("mmbench_dev_20230712.tsv", "*dev*.tsv", "*.tsv"), "MMBench TSV")


def _decode(cell: str, path: Path, line: int) -> bytes:
    try:
        return base64.b64decode(cell, validate=False)
    except (binascii.Error, ValueError):
        raise format_error(path, "the 'image' cell is not base64", line) from None


def read(data: Path, questions: Path | None = None, images: Path | None = None) -> list[EvalItem]:
    """Reads every row of the MMBench TSV into an item (``images`` is unused).

    Raises:
        AnnotationFormatError: The header lacks ``index`` / ``question`` / ``A`` / ``image``, an
            index is not an integer, or an image cell is neither base64 nor another row's index.
    """
    path = tsv_file(data, questions)
    csv.field_size_limit(sys.maxsize)  # whole base64 images in one cell
    with open(path, encoding="utf-8", newline="") as file:
        reader = csv.DictReader(file, delimiter="\t")
        missing = {"index", "question", "A", "image"} - set(reader.fieldnames or ())
        if missing:
            raise format_error(path, f"expected MMBench TSV columns, missing {sorted(missing)}", 1)
        rows = list(enumerate(reader, start=2))
    # VLMEvalKit's TSVs store a repeated image once; later rows hold the first row's index.
    image_of = {row["index"]: row["image"] for _, row in rows if len(row["image"] or "") > 64}
    items = []
    for lineno, row in rows:
        try:
            index = int(float(row["index"]))
        except (TypeError, ValueError):
            raise format_error(path, f"index {row['index']!r} is not an integer", lineno) from None
        cell = row["image"] or ""
        if len(cell) <= 64:
            if cell not in image_of:
                raise format_error(path, f"image {cell!r}: neither base64 nor a row index", lineno)
            cell = image_of[cell]
        options = []
        for letter in OPTIONS:
            if is_none(row.get(letter)):
                break
            options.append(row[letter])
        question = row["question"]
        if not is_none(row.get("hint")):
            question = row["hint"] + "\n" + question
        for letter, option in zip(OPTIONS, options, strict=False):
            question += f"\n{letter}. {option}"
        letters = list(OPTIONS[: len(options)])
        items.append(
            EvalItem(
                index,
                _decode(cell, path, lineno),
                question + "\n" + OPTION_LETTER,
                question,
                {"category": row.get("category") or ""},
                {"round_id": 0, "options": options, "option_char": letters},
            )
        )
    return items


def annotations(data: Path, questions: Path | None = None) -> Path | None:
    """The TSV itself, when its ``answer`` column is filled (not in the test split)."""
    path = tsv_file(data, questions)
    with open(path, encoding="utf-8", newline="") as file:
        reader = csv.DictReader(file, delimiter="\t")
        if "answer" not in (reader.fieldnames or ()):
            return None
        first = next(reader, None)
    return path if first is not None and (first.get("answer") or "").strip() else None
