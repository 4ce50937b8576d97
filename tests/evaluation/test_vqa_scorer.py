"""VQA accuracy (VQAv2, VizWiz, TextVQA) against hand-worked cases."""

import pytest

from mqt_llava.evaluation.scorers import (
    AnnotationFormatError,
    VQAAnnotation,
    score_textvqa,
    score_vizwiz,
    score_vqav2,
    vqa_accuracy,
)
from mqt_llava.evaluation.scorers.vqa import (
    score_textvqa_files,
    score_vizwiz_files,
    score_vqav2_files,
)


@pytest.mark.parametrize(
    ("n_agree", "expected"),
    [
        # With k of 10 annotators agreeing: leaving out one of the k leaves k-1 matches, leaving
        # out one of the 10-k others leaves k; mean of min(matches / 3, 1) over the 10.
        (0, 0.0),
        (1, 0.3),  # (1 * 0 + 9 * 1/3) / 10
        (2, 0.6),  # (2 * 1/3 + 8 * 2/3) / 10
        (3, 0.9),  # (3 * 2/3 + 7 * 1) / 10
        (4, 1.0),  # (4 * 1 + 6 * 1) / 10
        (10, 1.0),
    ],
)
def test_vqa_accuracy_leave_one_out(n_agree, expected):
    gts = ["cat"] * n_agree + ["dog"] * (10 - n_agree)
    assert vqa_accuracy("cat", gts) == pytest.approx(expected)


def test_vqav2_strips_ground_truth_punctuation_only_when_annotators_disagree():
    # "T-shirt" normalises to "t shirt". Unanimous "t-shirt" answers are left untouched, so no
    # match; once one annotator differs, all are punctuation-stripped and 9 of 10 match.
    annotations = {
        "1": VQAAnnotation(("t-shirt",) * 10, "other"),
        "2": VQAAnnotation(("t-shirt",) * 9 + ("shirt",), "other"),
    }
    result = score_vqav2({"1": "T-shirt", "2": "T-shirt"}, annotations)
    assert result["n"] == 2
    assert result["accuracy"] == pytest.approx(50.0)  # (0 + 1) / 2


def test_vqav2_numbers_articles_and_per_answer_type():
    annotations = {
        "1": VQAAnnotation(("2",) * 3 + ("3",) * 7, "number"),
        "2": VQAAnnotation(("yes",) * 10, "yes/no"),
        "3": VQAAnnotation(("dog",) * 2 + ("puppy",) * 8, "other"),
    }
    # "Two." → "2" (3 agree: 0.9); "Yes, it is." → "yes it is" (0); "A dog" → "dog" (2 agree: 0.6)
    result = score_vqav2({"1": "Two.", "2": "Yes, it is.", "3": "A dog"}, annotations)
    assert result["accuracy"] == pytest.approx(100 * (0.9 + 0 + 0.6) / 3)
    assert result["per_answer_type"] == pytest.approx(
        {"number": 90.0, "yes/no": 0.0, "other": 60.0}
    )


def test_vizwiz_compares_with_raw_ground_truth():
    annotations = {
        "a.jpg": VQAAnnotation(("unanswerable",) * 5 + ("blurry",) * 5, "unanswerable"),
        # Raw "Two" is never normalised, while the prediction "two" becomes "2": no match.
        "b.jpg": VQAAnnotation(("Two",) * 10, "number"),
    }
    result = score_vizwiz({"a.jpg": "Unanswerable.", "b.jpg": "two"}, annotations)
    assert result["accuracy"] == pytest.approx(50.0)  # (1 + 0) / 2
    assert result["per_answer_type"] == {"number": 0.0, "unanswerable": 100.0}


def test_textvqa_normalises_ground_truth_like_the_prediction():
    # "Coca-Cola" → "coca cola" on both sides: 3 annotators agree → 0.9.
    gts = ("Coca-Cola",) * 3 + ("pepsi",) * 7
    result = score_textvqa({"q": "coca cola"}, {"q": VQAAnnotation(gts)})
    assert result["accuracy"] == pytest.approx(90.0)


def test_vqav2_files_and_unknown_question_id(write_json, write_jsonl, write_answers):
    ann = {"annotations": [
        {"question_id": 7, "answer_type": "number",
         "answers": [{"answer": "2", "answer_id": i} for i in range(10)]},
    ]}  # fmt: skip
    annotations = write_json("vqav2_ann.json", ann)
    assert score_vqav2_files(write_answers("a.jsonl", [(7, "two")]), annotations)[
        "accuracy"
    ] == pytest.approx(100.0)
    bad = write_answers("b.jsonl", [(7, "two"), (8, "three")])
    with pytest.raises(AnnotationFormatError, match=r"b\.jsonl:2: question_id '8'"):
        score_vqav2_files(bad, annotations)


def test_textvqa_files_match_llava_image_id_and_prompt(write_json, write_jsonl, write_answers):
    data = {"data": [
        {"question_id": 1, "image_id": "img1", "question": "What brand is this?",
         "answers": ["coke"] * 10},
        {"question_id": 2, "image_id": "img1", "question": "What colour is the can?",
         "answers": ["red"] * 10},
    ]}  # fmt: skip
    annotations = write_json("textvqa.json", data)
    suffix = "Answer the question using a single word or phrase."
    answers = write_answers("a.jsonl", [
        # LLaVA-1.5's question file uses the image id as question id; the prompt disambiguates.
        ("img1", "Coke", f"What colour is the can?\nReference OCR token: COKE\n{suffix}"),
        ("img1x", "red", f"What colour is the can?\n{suffix}"),
    ])  # fmt: skip
    with pytest.raises(AnnotationFormatError, match=r"a\.jsonl:2"):
        score_textvqa_files(answers, annotations)
    answers = write_answers("b.jsonl", [
        ("img1", "Coke", f"What colour is the can?\nReference OCR token: COKE\n{suffix}"),
        (1, "Coke"),  # matched by TextVQA question id
    ])  # fmt: skip
    result = score_textvqa_files(answers, annotations)
    assert result["n"] == 2
    assert result["accuracy"] == pytest.approx(50.0)  # "coke" is wrong for the colour, right for 1


def test_vizwiz_files_map_question_ids_to_images(write_json, write_jsonl, write_answers):
    annotations = write_json(
        "val.json", [{"image": "VizWiz_val_0.jpg", "answers": [{"answer": "red"}] * 10}]
    )
    answers = write_answers("a.jsonl", [(0, "Red")])
    with pytest.raises(AnnotationFormatError, match="pass the question file"):
        score_vizwiz_files(answers, annotations)
    questions = write_jsonl("q.jsonl", [{"question_id": 0, "image": "VizWiz_val_0.jpg"}])
    assert score_vizwiz_files(answers, annotations, questions)["accuracy"] == pytest.approx(100.0)
