"""ScienceQA accuracy with the answer parsing of LLaVA-1.5's ``eval_science_qa.py``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mqt_llava.evaluation.scorers._io import format_error, percent, read_answer_list, read_json

OPTIONS = ("A", "B", "C", "D", "E")
# As the release writes it: the "." is any character, so "The answer is B" at the very end of the
# text does not match, and "The answer is Bx" does.
_THE_ANSWER_IS = re.compile(r"The answer is ([A-Z]).")


@dataclass(frozen=True)
class ScienceQAProblem:
    """The parts of a ScienceQA problem the accuracy needs.

    Attributes:
        num_choices: How many choices the problem offers.
        answer: The index of the right choice.
        has_image: Whether the problem comes with an image (for the IMG accuracy).
    """

    num_choices: int
    answer: int
    has_image: bool = False


def parse_scienceqa_answer(text: str) -> str:
    """The option letter an answer gives, or "FAILED".

    In order: the whole text is one of A–E; the text starts with "<letter>. "; the text contains
    exactly one "The answer is <capital letter><any character>".
    """
    if text in OPTIONS:
        return text
    if len(text) >= 3 and text[0] in OPTIONS and text[1:3] == ". ":
        return text[0]
    found = _THE_ANSWER_IS.findall(text)
    return found[0] if len(found) == 1 else "FAILED"


def scienceqa_choice(text: str, num_choices: int) -> int:
    """The chosen choice index, or -1 when the answer is unparsed or names a letter past the
    problem's choices (the release's ``get_pred_idx``; its random fallback is unreachable code)."""
    letter = parse_scienceqa_answer(text)
    return OPTIONS.index(letter) if letter in OPTIONS[:num_choices] else -1


def score_scienceqa(
    predictions: Mapping[str, str],
    problems: Mapping[str, ScienceQAProblem],
    multimodal: Mapping[str, bool] | None = None,
) -> dict:
    """ScienceQA accuracy (%) over ``problems`` (one split), and over the image subset.

    Args:
        predictions: Problem id → the model's raw answer. A problem with no answer counts as
            wrong ("FAILED"), as in the release.
        problems: Problem id → problem, for every problem of the split.
        multimodal: Problem id → whether it belongs to the image subset. ``eval_science_qa.py``
            decides this from the answer's prompt (``<image>`` in it), so a problem without an
            answer is never an image problem there; `score_scienceqa_files` passes exactly that.
            None: the problems' own ``has_image``.

    Returns:
        ``accuracy``, ``img_accuracy`` (0 for an empty image subset, where the release divides
        by zero), ``correct``, ``n``, ``img_correct``, ``n_img``, ``failed`` (unparsed answers,
        missing ones included) and ``missing``.
    """
    correct = correct_img = n_img = failed = 0
    for pid, problem in problems.items():
        text = predictions.get(pid, "FAILED")
        failed += parse_scienceqa_answer(text) == "FAILED"
        hit = scienceqa_choice(text, problem.num_choices) == problem.answer
        correct += hit
        if multimodal.get(pid, False) if multimodal is not None else problem.has_image:
            n_img += 1
            correct_img += hit
    return {
        "accuracy": percent(correct, len(problems)),
        "img_accuracy": percent(correct_img, n_img),
        "correct": correct,
        "n": len(problems),
        "img_correct": correct_img,
        "n_img": n_img,
        "failed": failed,
        "missing": sum(pid not in predictions for pid in problems),
    }


def load_scienceqa_problems(path: Path, split: str = "test") -> dict[str, ScienceQAProblem]:
    """Reads ``problems.json`` and ``pid_splits.json`` (from the folder, or beside the file)."""
    folder = path if path.is_dir() else path.parent
    problems_file = path if path.is_file() else folder / "problems.json"
    splits_file = folder / "pid_splits.json"
    for needed in (problems_file, splits_file):
        if not needed.is_file():
            raise format_error(
                needed, "not found; expected ScienceQA's problems.json and pid_splits.json"
            )
    problems, splits = read_json(problems_file), read_json(splits_file)
    if not isinstance(splits, dict) or split not in splits:
        raise format_error(splits_file, f"expected an object with a {split!r} list of problem ids")
    out = {}
    for pid in splits[split]:
        problem = problems.get(str(pid)) if isinstance(problems, dict) else None
        if not isinstance(problem, dict) or not {"choices", "answer"} <= problem.keys():
            raise format_error(problems_file, f"problem {pid!r}: expected 'choices' and 'answer'")
        out[str(pid)] = ScienceQAProblem(
            len(problem["choices"]), int(problem["answer"]), bool(problem.get("image"))
        )
    return out


def score_scienceqa_files(answers: Path, annotations: Path, questions: Path | None = None) -> dict:
    """Scores ScienceQA test-split answers (``question_id`` = problem id) as
    ``eval_science_qa.py`` does: a repeated ``question_id`` keeps its last line, and the image
    subset (IMG accuracy) is the answered problems whose ``prompt`` holds ``<image>``."""
    problems = load_scienceqa_problems(annotations)
    latest = {answer.question_id: answer for answer in read_answer_list(answers)}
    predictions = {qid: answer.text for qid, answer in latest.items()}
    multimodal = {qid: "<image>" in answer.prompt for qid, answer in latest.items()}
    return score_scienceqa(predictions, problems, multimodal)
