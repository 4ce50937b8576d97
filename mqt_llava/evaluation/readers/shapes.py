"""ShapesVQA (this project's synthetic set, `mqt_llava.data.shapes`): one split's LLaVA JSON.

Each record's first human turn is ``<image>\\n{question} Answer the question using a single word
or phrase.``, exactly as the model was trained; the record also carries ``question_type`` and the
gold ``answer``, which the ``shapes`` scorer reads from the same file.
"""

from __future__ import annotations

from pathlib import Path

from mqt_llava.evaluation.readers._common import EvalItem
from mqt_llava.evaluation.scorers._io import format_error, read_json


def split_file(data: Path, questions: Path | None = None) -> Path:
    """``questions`` if given (e.g. ``val.json``), else ``data/test.json``."""
    path = questions if questions is not None else data / "test.json"
    if not path.is_file():
        flag = "--questions" if questions is not None else "--data"
        raise FileNotFoundError(
            f"{flag}: {path} not found; expected a ShapesVQA folder written by "
            "`mqt-llava data shapes` (test.json, images/)"
        )
    return path


def read(data: Path, questions: Path | None = None, images: Path | None = None) -> list[EvalItem]:
    """Reads a ShapesVQA split; image paths are relative to ``images`` or the split's folder."""
    path = split_file(data, questions)
    records = read_json(path)
    if not isinstance(records, list):
        raise format_error(path, "expected a JSON list of ShapesVQA question records")
    folder = images or path.parent
    items = []
    for i, record in enumerate(records):
        try:
            value = record["conversations"][0]["value"]
            qid, image = record["id"], record["image"]
        except (KeyError, IndexError, TypeError):
            raise format_error(path, f"record {i}: expected id, image, conversations") from None
        text = value.replace("<image>", "").strip()
        metadata = {"question_type": record.get("question_type", "")}
        items.append(EvalItem(qid, folder / image, text, text, metadata))
    return items


def annotations(data: Path, questions: Path | None = None) -> Path:
    """The split file holds the gold answers."""
    return split_file(data, questions)
