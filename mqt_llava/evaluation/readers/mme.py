"""MME, from LLaVA-1.5's ``llava_mme.jsonl`` or straight from the release folder.

The release folder (``MME_Benchmark_release_version``) holds one folder per subtask with either
``images/`` + ``questions_answers_YN/`` or images and their ``.txt`` files side by side; each
``.txt`` has two ``question<TAB>Yes|No`` lines whose question ends in "Please answer yes or no.".
LLaVA-1.5 asks them with that sentence replaced by the short-answer instruction (as lmms-eval
does too); the question id is ``<subtask>/<image file>``, shared by the image's two questions.
"""

from __future__ import annotations

from pathlib import Path

from mqt_llava.evaluation.readers._common import SHORT_ANSWER, EvalItem
from mqt_llava.evaluation.readers.question_jsonl import read_question_jsonl
from mqt_llava.evaluation.scorers._io import format_error
from mqt_llava.evaluation.scorers.mme import COGNITION, PERCEPTION

RELEASE_FOLDER = "MME_Benchmark_release_version"
_YES_NO = " Please answer yes or no."
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def release_root(data: Path) -> Path:
    """The MME release folder: ``data/MME_Benchmark_release_version`` or ``data`` itself."""
    root = data / RELEASE_FOLDER
    if root.is_dir():
        return root
    if any((data / t).is_dir() for t in PERCEPTION + COGNITION):
        return data
    raise FileNotFoundError(
        f"{data}: no {RELEASE_FOLDER}/ and no MME subtask folders "
        f"({', '.join(PERCEPTION + COGNITION)})"
    )


def mme_question(question: str) -> str:
    """The user text LLaVA-1.5 asks for an MME question."""
    return question.replace(_YES_NO, "") + "\n" + SHORT_ANSWER


def read_release_folder(root: Path) -> list[EvalItem]:
    """Reads every subtask of the MME release folder, in the official subtask order."""
    items = []
    for subtask in PERCEPTION + COGNITION:
        folder = root / subtask
        if not folder.is_dir():
            continue
        split = (folder / "images").is_dir()
        image_dir = folder / "images" if split else folder
        qa_dir = folder / "questions_answers_YN" if split else folder
        images = {p.stem: p for p in image_dir.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES}
        for txt in sorted(qa_dir.glob("*.txt")):
            if txt.stem not in images:
                raise format_error(txt, f"no image {txt.stem}.jpg/.png in {image_dir}")
            image = images[txt.stem]
            lines = [ln for ln in txt.read_text(encoding="utf-8").splitlines() if ln.strip()]
            for lineno, line in enumerate(lines, start=1):
                fields = line.strip().split("\t")
                if len(fields) != 2:
                    raise format_error(txt, "expected 'question<TAB>answer'", lineno)
                text = mme_question(fields[0])
                items.append(
                    EvalItem(f"{subtask}/{image.name}", image, text, text, {"category": subtask})
                )
    if not items:
        raise FileNotFoundError(f"{root}: found no MME questions (subtask folders with .txt files)")
    return items


def _fix_image(item: EvalItem, root: Path) -> EvalItem:
    """Points a JSONL item at ``<subtask>/images/<file>`` when its path skips ``images/``."""
    if item.image is None or Path(item.image).is_file():
        return item
    try:
        parts = Path(item.image).relative_to(root).parts
    except ValueError:
        return item
    if len(parts) < 2:
        return item
    alternative = root / parts[0] / "images" / parts[-1]
    if not alternative.is_file():
        return item  # reported as a missing image when the runner opens it
    return EvalItem(item.question_id, alternative, item.question, item.prompt, item.metadata)


def read(data: Path, questions: Path | None = None, images: Path | None = None) -> list[EvalItem]:
    """MME items: from ``questions`` or ``data/llava_mme.jsonl`` if present, else the folder."""
    if questions is None and (data / "llava_mme.jsonl").is_file():
        questions = data / "llava_mme.jsonl"
    if questions is None:
        return read_release_folder(images or release_root(data))
    if not questions.is_file():
        raise FileNotFoundError(f"--questions {questions}: no such file")
    root = images or release_root(questions.parent)
    items = read_question_jsonl(questions, root, ())
    return [_fix_image(item, root) for item in items]


def annotations(data: Path) -> Path | None:
    """The release folder holds the gold answers."""
    try:
        return release_root(data)
    except FileNotFoundError:
        return None
