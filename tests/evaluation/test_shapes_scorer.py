"""ShapesVQA exact-match accuracy per question type, worked by hand."""

import json

import pytest

from mqt_llava.evaluation import score
from mqt_llava.evaluation.scorers import AnnotationFormatError
from mqt_llava.evaluation.scorers.shapes import score_shapes, shapes_prediction


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Red", "red"), (" red. ", "red"), ("red.\nThe square is red.", "red"), ("3", "3"),
     ("", ""), ("two", "two"), ("dark red", "dark red")],
)  # fmt: skip
def test_prediction_cleanup(text, expected):
    assert shapes_prediction(text) == expected


def test_accuracy_per_type_over_the_answered_questions():
    gold = {"a": ("red", "colour"), "b": ("3", "count"), "c": ("circle", "shape"),
            "d": ("yes", "existence"), "e": ("blue", "colour")}  # fmt: skip
    predictions = {"a": "Red.", "b": "three", "c": "circle", "e": "blue"}  # "d" unanswered
    assert score_shapes(predictions, gold) == {
        "accuracy": 75.0,  # a, c, e right; b wrong ("three" is not "3")
        "per_question_type": {"colour": 100.0, "count": 0.0, "shape": 100.0},
        "n": 4,
        "missing": 1,
    }


def test_files_and_unknown_ids(tmp_path, write_answers):
    split = tmp_path / "test.json"
    split.write_text(json.dumps([
        {"id": "q0", "answer": "red", "question_type": "colour"},
        {"id": "q1", "answer": "left", "question_type": "position"},
    ]))  # fmt: skip
    result = score("ShapesVQA", write_answers("a.jsonl", [("q0", "red"), ("q1", "right")]), split)
    assert result["benchmark"] == "shapes" and result["accuracy"] == 50.0
    with pytest.raises(AnnotationFormatError, match=r"a2\.jsonl:1: question_id 'q9' is not in"):
        score("shapes", write_answers("a2.jsonl", [("q9", "red")]), split)
    split.write_text(json.dumps([{"id": "q0", "answer": "red"}]))
    with pytest.raises(AnnotationFormatError, match=r"missing \['question_type'\]"):
        score("shapes", write_answers("a3.jsonl", [("q0", "red")]), split)
