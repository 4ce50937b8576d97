"""SEED-Bench exact match and MMMU answer parsing."""

import pytest

from mqt_llava.evaluation.scorers import (
    MMMUQuestion,
    SeedQuestion,
    parse_mmmu_choice,
    parse_mmmu_open,
    score_mmmu,
    score_seed,
)
from mqt_llava.evaluation.scorers.multiple_choice import (
    mmmu_open_correct,
    score_mmmu_files,
    score_seed_files,
)


def test_seed_exact_match_per_type():
    questions = [
        SeedQuestion("1", "A", "Scene Understanding", "image"),
        SeedQuestion("2", "B", "Scene Understanding", "image"),
        SeedQuestion("3", "C", "Action Recognition", "video"),
        SeedQuestion("4", "D", "Action Recognition", "video"),
    ]
    # 1 right; 2 "B." is not exactly "B"; 3 right; 4 unanswered.
    result = score_seed({"1": "A", "2": "B.", "3": "C"}, questions)
    assert result["accuracy"] == pytest.approx(50.0)
    assert result["per_data_type"] == {"image": 50.0, "video": 50.0}
    assert result["missing"] == 1


def test_seed_files_name_question_types(write_json, write_answers):
    ann = write_json("SEED-Bench.json", {
        "question_type": {"Scene Understanding": 1},
        "questions": [{"question_id": "101", "answer": "A", "question_type_id": 1,
                       "data_type": "image"}],
    })  # fmt: skip
    result = score_seed_files(write_answers("a.jsonl", [(101, "A")]), ann)
    assert result["per_question_type"] == {"Scene Understanding": 100.0}


OPTIONS = {"A": "green pear", "B": "red apple", "C": "yellow banana"}


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("B", "B"),
        ("(C) yellow banana", "C"),
        ("The answer is B.", "B"),  # trailing "." stripped, then " B " found
        ("(A) or (B)? I pick (B)", "B"),  # several: the last mentioned wins
        ("A or B? I think B.", "B"),
        ("It is obviously the red apple in the picture", "B"),  # > 5 words: option text
        ("red apple", None),  # too short for the option-text fallback
        ("I am not sure at all", None),  # where the official code guesses at random
    ],
)
def test_mmmu_choice(response, expected):
    assert parse_mmmu_choice(response, ["A", "B", "C"], OPTIONS) == expected


def test_mmmu_open():
    # "is " leaves "3.5", "answer " leaves "is 3.5": the shortest tail is kept, then numbers
    # are read out and normalised to floats rounded to 2 places.
    assert parse_mmmu_open("The answer is 3.5") == [3.5]
    assert mmmu_open_correct("3.50", parse_mmmu_open("The answer is 3.5"))
    assert mmmu_open_correct("1,000", parse_mmmu_open("So the total is 1000."))
    assert mmmu_open_correct(["paris"], parse_mmmu_open("It is Paris"))
    assert not mmmu_open_correct("4", parse_mmmu_open("The answer is 5"))


def test_mmmu_accuracy_per_subject():
    questions = {
        "validation_Art_Theory_1": MMMUQuestion("multiple-choice", "B", tuple(OPTIONS.values())),
        "validation_Art_Theory_2": MMMUQuestion("multiple-choice", "A", tuple(OPTIONS.values())),
        "validation_Math_1": MMMUQuestion("open", "12"),
    }
    predictions = {
        "validation_Art_Theory_1": "(B)",
        "validation_Art_Theory_2": "no idea",  # unparsed: wrong, not a random guess
        "validation_Math_1": "x = 12",
    }
    result = score_mmmu(predictions, questions)
    assert result["accuracy"] == pytest.approx(200 / 3)
    assert result["per_subject"] == pytest.approx({"Art_Theory": 50.0, "Math": 100.0})
    assert result["unparsed"] == 1


def test_mmmu_files_take_options_from_the_question_file(write_json, write_jsonl, write_answers):
    ann = write_json("answer_dict_val.json", {
        "validation_Art_1": {"question_type": "multiple-choice", "ground_truth": "E"},
    })  # fmt: skip
    answers = write_answers("a.jsonl", [("validation_Art_1", "E")])
    # Without options the choices are A-D, so "E" cannot be read.
    assert score_mmmu_files(answers, ann)["accuracy"] == 0.0
    questions = write_jsonl(
        "q.jsonl", [{"question_id": "validation_Art_1", "options": "['a', 'b', 'c', 'd', 'e']"}]
    )
    assert score_mmmu_files(answers, ann, questions)["accuracy"] == 100.0
