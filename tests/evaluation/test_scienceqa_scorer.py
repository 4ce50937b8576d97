"""ScienceQA answer parsing (LLaVA-1.5 eval_science_qa.py) and accuracy."""

import pytest

from mqt_llava.evaluation.scorers import (
    ScienceQAProblem,
    parse_scienceqa_answer,
    score_scienceqa,
)
from mqt_llava.evaluation.scorers.scienceqa import scienceqa_choice, score_scienceqa_files


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A", "A"),
        ("E", "E"),
        ("B. because it is", "B"),
        ("The answer is C.", "C"),
        ("The answer is D, since it floats.", "D"),  # the "." of the pattern is any character
        ("The answer is C", "FAILED"),  # ...so at the very end of the text it does not match
        ("The answer is A. The answer is B.", "FAILED"),  # two matches
        ("The answer is A. No, the answer is B.", "A"),  # case-sensitive: one match
        ("A.", "FAILED"),  # neither a bare letter nor "<letter>. "
        (" A", "FAILED"),  # no stripping
        ("a", "FAILED"),
        ("F", "FAILED"),  # only A-E are options
    ],
)
def test_parse(text, expected):
    assert parse_scienceqa_answer(text) == expected


def test_letter_past_the_choices_is_wrong():
    assert scienceqa_choice("D", num_choices=3) == -1
    assert scienceqa_choice("C", num_choices=3) == 2


def test_accuracy_hand_worked():
    problems = {
        "1": ScienceQAProblem(3, 0, has_image=True),
        "2": ScienceQAProblem(2, 1),
        "3": ScienceQAProblem(4, 3, has_image=True),
        "4": ScienceQAProblem(5, 2),
    }
    # 1 right; 2 right; 3 unanswered → FAILED; 4 "C." is unparseable → FAILED.
    result = score_scienceqa({"1": "A", "2": "The answer is B.", "4": "C."}, problems)
    assert result["accuracy"] == pytest.approx(50.0)  # 2 of 4
    assert result["img_accuracy"] == pytest.approx(50.0)  # problem 1 of problems 1 and 3
    assert (result["correct"], result["failed"], result["missing"]) == (2, 2, 1)


def test_files(tmp_path, write_json, write_answers):
    write_json("sqa/problems.json", {
        "7": {"choices": ["x", "y"], "answer": 1, "image": "image.png"},
        "8": {"choices": ["x", "y"], "answer": 0, "image": None},
    })  # fmt: skip
    write_json("sqa/pid_splits.json", {"test": ["7"], "val": ["8"]})
    # The image subset is read from the answer's prompt, as eval_science_qa.py does.
    answers = write_answers("a.jsonl", [("7", "B", "<image>\nQuestion?\nA. x\nB. y")])
    result = score_scienceqa_files(answers, tmp_path / "sqa")
    assert (result["accuracy"], result["n"], result["n_img"]) == (100.0, 1, 1)
