"""GQA exact-match accuracy."""

import pytest

from mqt_llava.evaluation.scorers import GQAQuestion, score_gqa
from mqt_llava.evaluation.scorers.gqa import gqa_prediction, score_gqa_files


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Yes.", "yes"), ("Left...", "left"), ("On the Table.", "on the table"), ("3.5", "3.5")],
)
def test_llava_prediction_conversion(text, expected):
    assert gqa_prediction(text) == expected


def test_accuracy_binary_open_and_missing():
    questions = {
        "1": GQAQuestion("yes", "verify"),
        "2": GQAQuestion("left", "query"),
        "3": GQAQuestion("no", "logical"),
        "4": GQAQuestion("red", "query", balanced=False),  # not scored
    }
    # 1 right ("Yes." → "yes"); 2 wrong (no partial credit); 3 unanswered: eval.py refuses to
    # run then; we score the answered questions and count the rest as missing.
    result = score_gqa({"1": "Yes.", "2": "Left side", "4": "red"}, questions)
    assert result["accuracy"] == pytest.approx(50.0)
    assert result["binary"] == pytest.approx(100.0)  # question 1 (3 is unanswered)
    assert result["open"] == 0.0  # question 2
    assert (result["n"], result["missing"]) == (2, 1)


def test_files(write_json, write_answers):
    gold = write_json(
        "testdev_balanced_questions.json",
        {"201": {"answer": "cat", "types": {"structural": "query"}, "isBalanced": True}},
    )
    result = score_gqa_files(write_answers("a.jsonl", [("201", "Cat.")]), gold)
    assert result["accuracy"] == 100.0
