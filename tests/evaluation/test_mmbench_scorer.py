"""MMBench circular evaluation and VLMEvalKit's exact-matching answer extraction."""

import pytest

from mqt_llava.evaluation.scorers import MMBenchRow, mmbench_choice, score_mmbench
from mqt_llava.evaluation.scorers.mmbench import load_mmbench_tsv, score_mmbench_files

CHOICES = {"A": "cat", "B": "dog", "C": "fish"}


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        ("B", "B"),
        ("B. dog", "B"),
        ("(C)", "C"),
        ("The answer is C.", "C"),
        ("A cat", "A"),  # "A" stands alone; VLMEvalKit reads it as the letter
        ("I choose A or B", None),  # two letters stand alone: no option; no option text inside
        ("dog", "B"),  # no letter: the one option text contained in the answer
        ("a dog or a cat", None),  # two option texts
        ("Cannot determine the answer", "Z"),  # a listed refusal
        ("Z", "Z"),  # no option letter, but "Z" ("none of these")
        ("", None),
    ],
)
def test_choice_extraction(prediction, expected):
    assert mmbench_choice(prediction, CHOICES) == expected


def _rows():
    return [
        # Question 1 and its two rotations (options shifted, answer relabelled).
        MMBenchRow(1, "A", {"A": "cat", "B": "dog", "C": "fish"}, "ocr", "perception"),
        MMBenchRow(1_000_001, "C", {"A": "dog", "B": "fish", "C": "cat"}, "ocr", "perception"),
        MMBenchRow(2_000_001, "B", {"A": "fish", "B": "cat", "C": "dog"}, "ocr", "perception"),
        # Question 2, two options, one rotation.
        MMBenchRow(2, "B", {"A": "yes", "B": "no"}, "logic", "reasoning"),
        MMBenchRow(1_000_002, "A", {"A": "no", "B": "yes"}, "logic", "reasoning"),
    ]


def test_circular_accuracy_fails_a_question_when_one_rotation_fails():
    predictions = {
        1: "A", 1_000_001: "C", 2_000_001: "cat",  # "cat" is option B of that rotation: right
        2: "B", 1_000_002: "B",  # right in the original order, wrong once rotated
    }  # fmt: skip
    result = score_mmbench(predictions, _rows())
    assert result["accuracy"] == pytest.approx(50.0)  # question 1 only
    assert result["vanilla_accuracy"] == pytest.approx(100.0)  # both originals right
    assert result["per_category"] == {"logic": 0.0, "ocr": 100.0}
    assert result["per_l2_category"] == {"perception": 100.0, "reasoning": 0.0}
    assert (result["n"], result["n_rows"], result["missing"]) == (2, 5, 0)


def test_missing_rotation_counts_as_wrong():
    predictions = {1: "A", 1_000_001: "C", 2: "B", 1_000_002: "A"}  # row 2000001 unanswered
    result = score_mmbench(predictions, _rows())
    assert result["accuracy"] == pytest.approx(50.0)  # question 2 only
    assert result["missing"] == 1


def test_tsv_reader_and_files(tmp_path, write_answers):
    header = "index\tquestion\thint\tA\tB\tC\tD\tanswer\tcategory\tl2-category\timage"
    lines = [
        header,
        "0\tWhat animal?\tnan\tcat\tdog\t\t\tA\tocr\tperception\t" + "x" * 200_000,
        "1000000\tWhat animal?\tnan\tdog\tcat\t\t\tB\tocr\tperception\tx",
    ]
    tsv = tmp_path / "mmbench_dev.tsv"
    tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = load_mmbench_tsv(tsv)
    assert rows[0].options == {"A": "cat", "B": "dog"}  # empty C, D are absent options
    assert rows[1].index == 1_000_000
    answers = write_answers("a.jsonl", [(0, "A"), (1000000, "B")])
    assert score_mmbench_files(answers, tsv)["accuracy"] == 100.0
