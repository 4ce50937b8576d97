"""ScienceQA (test split), as LLaVA-1.5's ``model_vqa_science.py --single-pred-prompt`` asks it.

Either from the release's converted ``llava_test_CQM-A.json`` (LLaVA records whose first human
turn is ``<image>\\nContext: {hint}\\n{question}\\nA. {choice}\\nB. ...``), or built in that same
format from the official ``problems.json`` + ``pid_splits.json``. The script strips ``<image>``,
appends ``\\nAnswer with the option's letter from the given choices directly.``, and prefixes
``<image>\\n`` to the ``prompt`` of problems that have an image. Text-only problems are asked
without an image (the same answer at every budget, up to batching).
"""

from __future__ import annotations

from pathlib import Path

from mqt_llava.evaluation.readers._common import OPTION_LETTER, EvalItem, image_folder
from mqt_llava.evaluation.scorers._io import format_error, read_json

LLAVA_FILE = "llava_test_CQM-A.json"
IMAGE_FOLDERS = ("images/test", "test", "images", ".")
LETTERS = ("A", "B", "C", "D", "E")


def problem_text(problem: dict) -> str:
    """A problem in the release's CQM-A format (without the image placeholder)."""
    context = f"Context: {problem['hint']}\n" if problem.get("hint") else ""
    choices = "\n".join(
        f"{letter}. {choice}" for letter, choice in zip(LETTERS, problem["choices"], strict=False)
    )
    return f"{context}{problem['question']}\n{choices}"


def _item(pid: str, text: str, image: Path | None) -> EvalItem:
    question = text + "\n" + OPTION_LETTER
    prompt = ("<image>\n" if image is not None else "") + question
    return EvalItem(pid, image, question, prompt)


def _from_llava_file(path: Path, images: Path | None) -> list[EvalItem]:
    records = read_json(path)
    if not isinstance(records, list):
        raise format_error(path, "expected a JSON list of LLaVA records (id, conversations)")
    first = next((r.get("image") for r in records if isinstance(r, dict) and r.get("image")), None)
    folder = images or image_folder(path.parent, IMAGE_FOLDERS, first)
    items = []
    for i, record in enumerate(records):
        try:
            value = record["conversations"][0]["value"]
            pid = record["id"]
        except (KeyError, IndexError, TypeError):
            raise format_error(path, f"record {i}: expected 'id' and 'conversations'") from None
        text = value.replace("<image>", "").strip()
        items.append(_item(pid, text, folder / record["image"] if record.get("image") else None))
    return items


def _from_problems(data: Path, images: Path | None, split: str = "test") -> list[EvalItem]:
    problems, splits = read_json(data / "problems.json"), read_json(data / "pid_splits.json")
    if not isinstance(splits, dict) or split not in splits:
        raise format_error(data / "pid_splits.json", f"expected a {split!r} list of problem ids")
    pids = [str(pid) for pid in splits[split]]
    first = next((f"{p}/{problems[p]['image']}" for p in pids if problems[p].get("image")), None)
    folder = images or image_folder(data, IMAGE_FOLDERS, first)
    items = []
    for pid in pids:
        problem = problems.get(pid)
        if not isinstance(problem, dict) or not {"question", "choices"} <= problem.keys():
            expected = f"problem {pid!r}: expected 'question' and 'choices'"
            raise format_error(data / "problems.json", expected)
        image = folder / pid / problem["image"] if problem.get("image") else None
        items.append(_item(pid, problem_text(problem), image))
    return items


def read(data: Path, questions: Path | None = None, images: Path | None = None) -> list[EvalItem]:
    """ScienceQA test items from ``questions`` / ``llava_test_CQM-A.json`` or ``problems.json``."""
    if questions is not None:
        if not questions.is_file():
            raise FileNotFoundError(f"--questions {questions}: no such file")
        return _from_llava_file(questions, images)
    if (data / LLAVA_FILE).is_file():
        return _from_llava_file(data / LLAVA_FILE, images)
    if (data / "problems.json").is_file() and (data / "pid_splits.json").is_file():
        return _from_problems(data, images)
    raise FileNotFoundError(
        f"{data}: expected {LLAVA_FILE} or ScienceQA's problems.json + pid_splits.json"
    )


def annotations(data: Path) -> Path | None:
    """The folder holding ``problems.json`` and ``pid_splits.json``."""
    if (data / "problems.json").is_file() and (data / "pid_splits.json").is_file():
        return data
    return None
