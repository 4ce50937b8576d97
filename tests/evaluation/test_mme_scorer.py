"""MME scores (accuracy + accuracy-plus per image pair) against calculation.py's rules."""

import pytest

from mqt_llava.evaluation.scorers import MMERecord, mme_label, score_mme
from mqt_llava.evaluation.scorers.mme import score_mme_files


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes", "yes"),
        ("yes, there is a dog", "yes"),
        ("No, it is not", "no"),
        ("Not really", "no"),  # "not " holds "no"
        ("None", "no"),
        ("nope", "no"),
        ("no yes", "no"),  # the first 4 characters "no y" hold no "yes"
        ("There is a dog", "other"),  # no yes/no in the first 4 characters: wrong either way
        ("I think yes", "other"),
        ("Y", "other"),
    ],
)
def test_mme_label(text, expected):
    assert mme_label(text) == expected


def test_scores_hand_worked():
    records = [
        # existence: image 1 both right, image 2 one right.
        MMERecord("existence", "1", "Yes", "Yes"),
        MMERecord("existence", "1", "No", "No"),
        MMERecord("existence", "2", "Yes", "No"),
        MMERecord("existence", "2", "No", "No"),
        # code_reasoning: one image, one right, one "other".
        MMERecord("code_reasoning", "9", "yes", "yes"),
        MMERecord("code_reasoning", "9", "no", "maybe"),
    ]
    result = score_mme(records)
    existence = result["subtasks"]["existence"]
    assert existence["acc"] == pytest.approx(75.0)  # 3 of 4 questions
    assert existence["acc_plus"] == pytest.approx(50.0)  # 1 of 2 images fully right
    assert existence["score"] == pytest.approx(125.0)
    assert result["subtasks"]["code_reasoning"]["score"] == pytest.approx(50.0)  # 50 + 0
    assert result["perception"] == pytest.approx(125.0)
    assert result["cognition"] == pytest.approx(50.0)
    assert result["total"] == pytest.approx(175.0)
    assert len(result["missing_subtasks"]) == 12
    assert "existence" not in result["missing_subtasks"]


def test_image_without_its_pair_is_an_error():
    with pytest.raises(ValueError, match="expected 2 questions, got 1"):
        score_mme([MMERecord("count", "1", "yes", "yes")])


def test_files_follow_llava_conversion(tmp_path, write_answers):
    root = tmp_path / "MME_Benchmark_release_version"
    # "existence" keeps images and .txt side by side; "artwork" splits them into two folders.
    (root / "existence").mkdir(parents=True)
    (root / "existence" / "000.txt").write_text(
        "Is there a dog in this image? Please answer yes or no.\tYes\n"
        "Is there a cat in this image?  Please answer yes or no.\tNo\n"  # two spaces, as in MME
    )
    (root / "artwork" / "images").mkdir(parents=True)
    (root / "artwork" / "questions_answers_YN").mkdir()
    (root / "artwork" / "questions_answers_YN" / "10002.txt").write_text(
        "Is this painted by Monet? Please answer yes or no.\tNo\n"
        "Is this painted by Manet? Please answer yes or no.\tYes\n"
    )
    short = "\nAnswer the question using a single word or phrase."
    # As in LLaVA-1.5's llava_mme.jsonl, both questions of an image share its path as id.
    answers = write_answers("mme.jsonl", [
        ("existence/000.png", "Yes", "Is there a dog in this image?" + short),
        ("existence/000.png", "No", "Is there a cat in this image?" + short),
        ("artwork/10002.jpg", "No", "Is this painted by Monet? Please answer yes or no."),
        ("artwork/10002.jpg", "No", "Is this painted by Manet? Please answer yes or no."),
    ])  # fmt: skip
    result = score_mme_files(answers, root)
    assert result["subtasks"]["existence"]["score"] == pytest.approx(200.0)
    assert result["subtasks"]["artwork"]["score"] == pytest.approx(50.0)  # acc 50, acc+ 0
    assert result["perception"] == pytest.approx(250.0)
