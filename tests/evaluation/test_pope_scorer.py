"""POPE answer parsing and metrics, against eval_pope.py's rules."""

import pytest

from mqt_llava.evaluation.scorers import AnnotationFormatError, pope_label, score_pope
from mqt_llava.evaluation.scorers.pope import score_pope_files


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes", "yes"),
        ("No", "no"),
        ("No.", "no"),
        ("no, there is none", "no"),  # the comma is dropped before splitting on spaces
        ("There is no dog in the image.", "no"),
        ("There is not a cat", "no"),
        ("Yes. There is no dog.", "yes"),  # only the first sentence counts
        ("Yes, there is a dog.", "yes"),
        ("NO", "yes"),  # only "No", "no", "not" count, case-sensitively
        ("Nope", "yes"),
        ("I don't think so", "yes"),  # "don't" is not "not"
        ("No\nthere is a cat", "yes"),  # split on spaces only: the word is "No\nthere"
        ("e.g. no", "yes"),  # the first "sentence" is "e"
        ("", "yes"),
    ],
)
def test_pope_label(text, expected):
    assert pope_label(text) == expected


def test_metrics_hand_worked():
    labels = ["yes", "yes", "yes", "no", "no"]
    predictions = ["Yes", "No", "Yes, it is.", "There is a cat.", "No, there is not."]
    # TP = 2 (1, 3), FN = 1 (2), FP = 1 (4), TN = 1 (5)
    result = score_pope(predictions, labels)
    assert (result["tp"], result["fn"], result["fp"], result["tn"]) == (2, 1, 1, 1)
    assert result["accuracy"] == pytest.approx(60.0)  # (2 + 1) / 5
    assert result["precision"] == pytest.approx(200 / 3)  # 2 / (2 + 1)
    assert result["recall"] == pytest.approx(200 / 3)  # 2 / (2 + 1)
    assert result["f1"] == pytest.approx(200 / 3)  # 2PR / (P + R) with P = R
    assert result["yes_ratio"] == pytest.approx(60.0)  # 3 "yes" of 5


def test_no_positive_predictions_gives_zero_not_a_crash():
    result = score_pope(["No", "No"], ["yes", "no"])
    assert (result["precision"], result["recall"], result["f1"]) == (0.0, 0.0, 0.0)
    assert result["accuracy"] == 50.0


def _pope_dir(write_jsonl):
    write_jsonl("pope/coco_pope_random.json", [
        {"question_id": 1, "image": "a.jpg", "text": "Is there a dog?", "label": "yes"},
        {"question_id": 2, "image": "b.jpg", "text": "Is there a cat?", "label": "no"},
    ])  # fmt: skip
    path = write_jsonl("pope/coco_pope_popular.json", [
        {"question_id": 1, "image": "c.jpg", "text": "Is there a car?", "label": "no"},
    ])  # fmt: skip
    return path.parent


def test_files_pair_by_question_order_per_split(write_jsonl, write_answers):
    annotations = _pope_dir(write_jsonl)
    questions = write_jsonl("llava_pope_test.jsonl", [
        {"question_id": 10, "image": "a.jpg", "category": "random"},
        {"question_id": 11, "image": "b.jpg", "category": "random"},
        {"question_id": 12, "image": "c.jpg", "category": "popular"},
    ])  # fmt: skip
    # Answers out of order: pairing goes by the question file, not the answer file.
    answers = write_answers("a.jsonl", [(12, "Yes"), (11, "No"), (10, "Yes")])
    result = score_pope_files(answers, annotations, questions)
    assert result["splits"]["random"]["accuracy"] == 100.0
    assert result["splits"]["popular"]["accuracy"] == 0.0  # said yes to a "no"
    assert result["average"]["accuracy"] == pytest.approx(50.0)

    with pytest.raises(AnnotationFormatError, match="need the question file"):
        score_pope_files(answers, annotations)


def test_files_reject_misaligned_question_file(write_jsonl, write_answers):
    annotations = _pope_dir(write_jsonl)
    questions = write_jsonl("q.jsonl", [
        {"question_id": 10, "image": "b.jpg", "category": "random"},
        {"question_id": 11, "image": "a.jpg", "category": "random"},
        {"question_id": 12, "image": "c.jpg", "category": "popular"},
    ])  # fmt: skip
    answers = write_answers("a.jsonl", [(10, "Yes"), (11, "No"), (12, "Yes")])
    with pytest.raises(AnnotationFormatError, match=r"coco_pope_random\.json:1: .*same order"):
        score_pope_files(answers, annotations, questions)


def test_single_label_file_matches_by_question_id(write_jsonl, write_answers):
    labels = write_jsonl("coco_pope_adversarial.json", [
        {"question_id": 1, "label": "yes"}, {"question_id": 2, "label": "no"},
    ])  # fmt: skip
    result = score_pope_files(write_answers("a.jsonl", [(2, "No"), (1, "No")]), labels)
    assert result["splits"]["adversarial"]["accuracy"] == 50.0
    with pytest.raises(AnnotationFormatError, match="no answer for POPE adversarial"):
        score_pope_files(write_answers("b.jsonl", [(1, "No")]), labels)
