"""Reading answer and annotation files, with errors that say which file, line and expectation.

The answer files are LLaVA-1.5's evaluation format: JSONL, one record per line,
``{"question_id": ..., "prompt": ..., "text": <model answer>, "answer_id": ..., "model_id": ...,
"metadata": {}}``. Question ids are compared as strings everywhere, because the official files
mix integer ids (VQAv2, MMBench) and string ids (GQA, ScienceQA).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class AnnotationFormatError(ValueError):
    """An answer, question or annotation file is not in the format its scorer reads."""


def format_error(path: Path, message: str, line: int | None = None) -> AnnotationFormatError:
    """Builds an `AnnotationFormatError` whose message starts with ``path[:line]:``."""
    where = f"{path}:{line}" if line is not None else str(path)
    return AnnotationFormatError(f"{where}: {message}")


def read_json(path: Path) -> Any:
    """Parses a whole-file JSON document.

    Raises:
        AnnotationFormatError: The file is not valid JSON (the message gives the line).
    """
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise format_error(path, f"not valid JSON ({err.msg})", err.lineno) from None


def _read_json_array(path: Path) -> list[tuple[int, dict[str, Any]]] | None:
    """The records of a file holding one JSON array of objects (numbered from 1), or None if the
    file is not that (so it is read as JSON lines)."""
    with open(path, encoding="utf-8") as file:
        head = file.read(4096).lstrip()
    if not head.startswith("["):
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None  # e.g. JSON lines whose first line is an array: reported line by line
    if not isinstance(data, list):
        return None
    for i, record in enumerate(data):
        if not isinstance(record, dict):
            raise format_error(path, f"record {i + 1} of the JSON array is not an object")
    return list(enumerate(data, start=1))


def read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """Parses a JSONL file into ``(line number, object)`` pairs, skipping blank lines.

    A file holding one JSON array of objects instead (a ``.json`` export of the same records) is
    accepted too; its records are numbered 1, 2, ... in place of line numbers.

    Raises:
        AnnotationFormatError: A line is not valid JSON or not a JSON object.
    """
    array = _read_json_array(path)
    if array is not None:
        return array
    records = []
    with open(path, encoding="utf-8") as file:
        for lineno, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise format_error(
                    path,
                    f"not valid JSON ({err.msg}); expected JSON lines (one object per line) "
                    "or one JSON array of objects",
                    lineno,
                ) from None
            if not isinstance(record, dict):
                raise format_error(path, f"expected a JSON object, got {record!r:.60}", lineno)
            records.append((lineno, record))
    return records


def require_keys(
    record: dict[str, Any], keys: tuple[str, ...], path: Path, line: int | None
) -> None:
    """Raises an `AnnotationFormatError` naming the keys ``record`` lacks."""
    if not isinstance(record, dict):
        raise format_error(
            path, f"expected an object with keys {list(keys)}, got {record!r:.60}", line
        )
    missing = [key for key in keys if key not in record]
    if missing:
        raise format_error(
            path, f"expected keys {list(keys)}, missing {missing} in {record!r:.120}", line
        )


@dataclass(frozen=True)
class Answer:
    """One line of an answer file.

    Attributes:
        question_id: The record's ``question_id`` as a string.
        text: The model's answer.
        prompt: The prompt the answer was generated from ("" when the record has none).
        line: The 1-based line number in the answer file, for error messages.
    """

    question_id: str
    text: str
    prompt: str
    line: int


def read_answer_list(path: Path) -> list[Answer]:
    """Reads a LLaVA-1.5 answer file (JSONL) in file order, repeated question ids allowed.

    Raises:
        AnnotationFormatError: A line is not JSON, lacks ``question_id`` / ``text`` or has a
            non-string ``text``.
    """
    out = []
    for lineno, record in read_jsonl(path):
        require_keys(record, ("question_id", "text"), path, lineno)
        text, prompt = record["text"], record.get("prompt")
        if not isinstance(text, str):
            raise format_error(path, f"expected 'text' to be a string, got {text!r}", lineno)
        out.append(
            Answer(
                str(record["question_id"]), text, prompt if isinstance(prompt, str) else "", lineno
            )
        )
    return out


def read_answers(path: Path) -> dict[str, Answer]:
    """Reads a LLaVA-1.5 answer file (JSONL) into a dict keyed by question id.

    Raises:
        AnnotationFormatError: As `read_answer_list`, or a line repeats an earlier question id.
    """
    answers: dict[str, Answer] = {}
    for answer in read_answer_list(path):
        if answer.question_id in answers:
            first = answers[answer.question_id].line
            raise format_error(
                path,
                f"question_id {answer.question_id!r} already answered on line {first}",
                answer.line,
            )
        answers[answer.question_id] = answer
    return answers


def percent(correct: float, total: int) -> float:
    """``100 * correct / total``, or 0.0 for an empty set (the scripts divide by 0)."""
    return 100.0 * correct / total if total else 0.0
