"""Any test set in LLaVA's training format (``--benchmark llava-json``).

``--data`` is the JSON file (or a folder holding ``test.json``); images are found under
``--image-folder``, else beside the file. Each record's first human turn is asked as written,
without its ``<image>`` placeholder (the chat template puts it back); the gpt turn after it is
the gold answer, which the ``llavajson`` scorer reads from the same file.
"""

from __future__ import annotations

from pathlib import Path

from mqt_llava.evaluation.readers._common import EvalItem
from mqt_llava.evaluation.scorers.llava_json import read_llava_json


def data_file(data: Path, questions: Path | None = None) -> Path:
    """``questions`` if given, else ``data`` when it is a file, else ``data/test.json``."""
    path = questions if questions is not None else data if data.is_file() else data / "test.json"
    if not path.is_file():
        flag = "--questions" if questions is not None else "--data"
        raise FileNotFoundError(
            f"{flag} {path}: no such file; expected a LLaVA-JSON test set (a JSON list of "
            "records with 'conversations'), or a folder holding test.json"
        )
    return path


def read(data: Path, questions: Path | None = None, images: Path | None = None) -> list[EvalItem]:
    """Reads the questions; image paths are relative to ``images`` or the file's folder."""
    path = data_file(data, questions)
    folder = images if images is not None else path.parent
    items = []
    for q in read_llava_json(path):
        metadata = {"category": q.category} if q.category is not None else {}
        image = folder / q.image if q.image else None
        items.append(EvalItem(q.question_id, image, q.question, q.question, metadata))
    return items


def annotations(data: Path, questions: Path | None = None) -> Path:
    """The file holds the gold answers."""
    return data_file(data, questions)


def title(data: Path, questions: Path | None = None) -> str:
    """What reports call the set: its file name, not a benchmark's."""
    return f"{data_file(data, questions).name} (LLaVA-JSON)"
