"""Answer files laid out as the real LLaVA-1.5 files are (repeated TextVQA image ids, ScienceQA
duplicates and unanswered problems, GQA with its per-type fields, MME's 14 tasks), scored against
numbers worked out by hand from the official scripts' code, not from our scorer.

References: LLaVA ``llava/eval/eval_textvqa.py`` + ``m4c_evaluator.py``,
``llava/eval/eval_science_qa.py``, the GQA ``eval.py`` (as LLaVA's docs patch it for testdev),
MME ``eval_tool/calculation.py``.
"""

import json

import pytest

from mqt_llava.evaluation.scorers.gqa import score_gqa_files
from mqt_llava.evaluation.scorers.mme import COGNITION, PERCEPTION, score_mme_files
from mqt_llava.evaluation.scorers.scienceqa import score_scienceqa_files
from mqt_llava.evaluation.scorers.vqa import score_textvqa_files

SHORT = "\nAnswer the question using a single word or phrase."


def test_textvqa_repeated_image_ids(write_json, write_answers):
    annotations = write_json("TextVQA_0.5.1_val.json", {"data": [
        {"question_id": 100, "image_id": "imgA", "question": "what brand is this?",
         "answers": ["coke"] * 10},
        {"question_id": 101, "image_id": "imgA", "question": "what colour is the can?",
         "answers": ["red"] * 2 + ["maroon"] * 8},
        {"question_id": 102, "image_id": "imgB", "question": "what does the sign say?",
         "answers": ["stop"] * 10},
        # Same (image_id, lower-cased question): eval_textvqa's dict keeps this later entry.
        {"question_id": 103, "image_id": "imgB", "question": "What does the sign say?",
         "answers": ["go"] * 10},
    ]})  # fmt: skip
    # As model_vqa_loader writes them: question_id is the image id, the prompt the question file's
    # text ("question\nReference OCR token: ...\n<instruction>", or "question\n<instruction>").
    answers = write_answers("llava-v1.5.jsonl", [
        ("imgA", "Coke.", "What brand is this?\nReference OCR token: COKE" + SHORT),
        ("imgA", "red", "What colour is the can?" + SHORT),
        ("imgB", "go", "What does the sign say?\nReference OCR token: STOP" + SHORT),
        ("imgA", "pepsi", "What brand is this?\nReference OCR token: COKE" + SHORT),  # again
    ])  # fmt: skip
    result = score_textvqa_files(answers, annotations)
    # m4c: "Coke." → "coke", 10 of 10 agree → every leave-one-out min(9/3, 1) = 1.
    # "red": 2 of 10 agree; leaving out a "red" annotator leaves 1 match (1/3), any other 2 (2/3):
    #   (2 * 1/3 + 8 * 2/3) / 10 = 0.6.
    # "go" against the later entry ["go"] * 10 → 1.  "pepsi" → 0.  Every line counts:
    #   (1 + 0.6 + 1 + 0) / 4 = 0.65 → "Samples: 4, Accuracy: 65.00%".
    assert result["n"] == 4
    assert result["accuracy"] == pytest.approx(65.0, abs=5e-5)


def test_scienceqa_duplicates_and_unanswered(tmp_path, write_json, write_answers):
    image = "image.png"
    write_json("sqa/problems.json", {
        "1": {"choices": ["x", "y"], "answer": 1, "image": None},
        "2": {"choices": ["x", "y", "z"], "answer": 0, "image": image},
        "3": {"choices": ["w", "x", "y", "z"], "answer": 2, "image": image},  # never answered
        "4": {"choices": ["x", "y"], "answer": 0, "image": None},
        "5": {"choices": ["x", "y", "z"], "answer": 2, "image": image},
        "9": {"choices": ["x", "y"], "answer": 0, "image": image},  # not in the test split
    })  # fmt: skip
    write_json("sqa/pid_splits.json", {"test": ["1", "2", "3", "4", "5"], "val": ["9"]})
    letter = "\nAnswer with the option's letter from the given choices directly."
    answers = write_answers("sqa.jsonl", [
        ("1", "A", "Question 1\nA. x\nB. y" + letter),
        ("2", "B", "<image>\nQuestion 2\nA. x\nB. y\nC. z" + letter),
        ("1", "B", "Question 1\nA. x\nB. y" + letter),  # repeated id: the last line is kept
        ("2", "A", "<image>\nQuestion 2\nA. x\nB. y\nC. z" + letter),
        ("5", "The answer is C.", "<image>\nQuestion 5\nA. x\nB. y\nC. z" + letter),
        ("4", "C", "Question 4\nA. x\nB. y" + letter),  # C is past problem 4's two choices
    ])  # fmt: skip
    result = score_scienceqa_files(answers, tmp_path / "sqa")
    # eval_science_qa.py: predictions = {qid: last line}; 1 → "B" = answer 1 right; 2 → "A"
    # right; 3 unanswered → "FAILED" with prompt "Unknown"; 4 → "C" not in options[:2] → -1
    # wrong; 5 → "The answer is C." → C right.  Total 5, Correct 3 → 60.00%.
    # is_multimodal = "<image>" in prompt: problems 2 and 5 (both right); problem 3 has an image
    # in problems.json but no answer line, so it is not in the subset → IMG-Accuracy 100.00%.
    assert (result["n"], result["correct"]) == (5, 3)
    assert result["accuracy"] == pytest.approx(60.0, abs=5e-5)
    assert (result["n_img"], result["img_correct"]) == (2, 2)
    assert result["img_accuracy"] == pytest.approx(100.0, abs=5e-5)
    assert (result["missing"], result["failed"]) == (1, 1)


def _step(operation: str, argument: str) -> dict:
    return {"operation": operation, "argument": argument, "dependencies": []}


GQA_QUESTIONS = {
    # q1: steps = 2 ("select: sky (1)", "verify color: dark"), words 4, no global group.
    "q1": ("Is the sky dark?", "no", "verify", "attr", "verifyAttr", None,
           [_step("select", "sky (1)"), _step("verify color", "dark")]),
    # q2: "query: name" is not a step → 2 steps; 5 words.
    "q2": ("What is on the table?", "cup", "query", "rel", "relS", "object",
           [_step("select", "table (2)"), _step("relate", "_,on,s (3)"), _step("query", "name")]),
    # q3: "query: color" is a step → 2 steps; 5 words.
    "q3": ("What color is the cup?", "white", "query", "attr", "colorS", "color",
           [_step("select", "cup (3)"), _step("query", "color")]),
    # q4: the two "exist: ?" are not steps → select, select, and = 3; 6 words.
    "q4": ("Are there both cups and plates?", "yes", "logical", "obj", "existAnd", None,
           [_step("select", "cup (3)"), _step("exist", "?"), _step("select", "plate (4)"),
            _step("exist", "?"), _step("and", "")]),
    # q5: 3 steps, 10 words, a "Common" question.
    "q5": ("What do the cup and the plate have in common?", "color", "compare", "attr",
           "twoCommon", "common",
           [_step("select", "cup (3)"), _step("select", "plate (4)"), _step("common", "")]),
    "q6": ("What color is the sign?", "red", "query", "attr", "color", "color",
           [_step("select", "sign (5)"), _step("query", "color")]),  # not balanced
    "q7": ("What color is the plate?", "white", "query", "attr", "color", "color",
           [_step("select", "plate (4)"), _step("query", "color")]),
}  # fmt: skip


def _gqa_files(tmp_path, write_json, write_answers, with_choices: bool):
    data = {
        qid: {"question": q, "answer": a, "types": {"structural": s, "semantic": sem,
              "detailed": d}, "groups": {"global": g, "local": None}, "semantic": program,
              "isBalanced": qid != "q6", "imageId": "n1"}
        for qid, (q, a, s, sem, d, g, program) in GQA_QUESTIONS.items()
    }  # fmt: skip
    questions = write_json("gqa/data/testdev_balanced_questions.json", data)
    if with_choices:
        write_json("gqa/data/testdev_balanced_choices.json", {
            "q1": {"valid": ["yes", "no"], "plausible": ["yes", "no"]},
            "q2": {"valid": ["cup", "table"], "plausible": ["cup"]},
            "q3": {"valid": ["white", "blue", "red"], "plausible": ["white", "red"]},
            "q4": {"valid": ["yes", "no"], "plausible": ["yes", "no"]},
            "q5": {"valid": ["yes"], "plausible": []},
            "q6": {"valid": ["red"], "plausible": ["red"]},
            "q7": {"valid": ["white", "blue"], "plausible": ["white"]},
        })  # fmt: skip
    answers = write_answers("gqa.jsonl", [
        ("q1", "No."), ("q2", "cup"), ("q3", "White."), ("q4", "yes"), ("q5", "Material"),
        ("q6", "red"), ("q7", "Blue"),
        ("q2", "Plate"),  # repeated id: the predictions dict keeps the last one
    ])  # fmt: skip
    return score_gqa_files(answers, questions)


def test_gqa_everything_eval_py_prints(tmp_path, write_json, write_answers):
    r = _gqa_files(tmp_path, write_json, write_answers, with_choices=True)
    # Predictions after convert_gqa_for_eval (rstrip ".", lower): q1 "no" ✓, q2 "plate" ✗,
    # q3 "white" ✓, q4 "yes" ✓, q5 "material" ✗, q7 "blue" ✗; q6 is not balanced.
    assert (r["n"], r["n_binary"], r["n_open"], r["missing"]) == (6, 3, 3, 0)
    assert r["accuracy"] == pytest.approx(50.0, abs=5e-5)  # 3 / 6
    assert r["binary"] == pytest.approx(66.6667, abs=5e-5)  # q1 ✓ q4 ✓ q5 ✗
    assert r["open"] == pytest.approx(33.3333, abs=5e-5)  # q2 ✗ q3 ✓ q7 ✗
    # Validity: q2 "plate" is not in ["cup", "table"]; q5 is "Common" → [color, material, shape]
    # holds "material". 5 / 6.  Plausibility: q2 ✗, q7 "blue" ∉ ["white"] → 4 / 6.
    assert r["validity"] == pytest.approx(83.3333, abs=5e-5)
    assert r["plausibility"] == pytest.approx(66.6667, abs=5e-5)
    # chiSquare over global groups (q1, q4 have none): object {cup: 1} vs {plate: 1} → 1 x 1;
    # color {white: 2} vs {white: 1, blue: 1} → (1 - 2)^2 / 2 = 0.5, x 2 = 1; common {color: 1}
    # vs {material: 1} → 1 x 1.  (1 + 1 + 1) / 4 = 0.75; / 100 → 0.0075.
    assert r["distribution"] == pytest.approx(0.0075, abs=5e-9)
    assert r["per_structural_type"] == {
        "compare": {"accuracy": 0.0, "n": 1},
        "logical": {"accuracy": 100.0, "n": 1},
        "query": {"accuracy": pytest.approx(100 / 3), "n": 3},
        "verify": {"accuracy": 100.0, "n": 1},
    }
    assert r["per_semantic_type"] == {
        "attr": {"accuracy": 50.0, "n": 4},  # q1 ✓ q3 ✓ q5 ✗ q7 ✗
        "obj": {"accuracy": 100.0, "n": 1},
        "rel": {"accuracy": 0.0, "n": 1},
    }
    # steps: 2 → q1 ✓ q2 ✗ q3 ✓ q7 ✗; 3 → q4 ✓ q5 ✗.
    assert r["per_steps"] == {"2": {"accuracy": 50.0, "n": 4}, "3": {"accuracy": 50.0, "n": 2}}
    # words: 4 → q1 ✓; 5 → q2 ✗ q3 ✓ q7 ✗; 6 → q4 ✓; 10 → q5 ✗ (printed in numeric order).
    assert list(r["per_length"]) == ["4", "5", "6", "10"]
    assert r["per_length"]["5"] == {"accuracy": pytest.approx(100 / 3), "n": 3}
    assert r["per_length"]["10"] == {"accuracy": 0.0, "n": 1}


def test_gqa_without_choices_file(tmp_path, write_json, write_answers):
    # The v1.2 testdev release ships no choices file: eval.py prints 0.00 % for validity and
    # plausibility then; we report them as not available instead of as a score.
    r = _gqa_files(tmp_path, write_json, write_answers, with_choices=False)
    assert (r["validity"], r["plausibility"]) == (None, None)
    assert r["accuracy"] == pytest.approx(50.0)


# Per MME task: images, each a pair of (gold, model answer).
MME_CASES = {
    "existence": [[("Yes", "Yes"), ("No", "No")], [("Yes", "Yes"), ("No", "No")]],
    "count": [[("Yes", "Yes"), ("No", "Yes")], [("Yes", "No"), ("No", "No")]],
    "position": [[("Yes", "yes, it is"), ("No", "no")], [("Yes", "Maybe"), ("No", "No")]],
    "color": [[("Yes", "No"), ("No", "Yes")]],
    "posters": [[("Yes", "Yes"), ("No", "No")], [("Yes", "Yes"), ("No", "Yes")],
                [("Yes", "Yes"), ("No", "No")]],
    "celebrity": [[("No", "No"), ("Yes", "Yes")]],
    "scene": [[("Yes", "Not sure"), ("No", "no")]],
    "landmark": [[("Yes", "YES"), ("No", "NO")]],
    "artwork": [[("Yes", "There is"), ("No", "no")]],
    "OCR": [[("Yes", "Yes"), ("No", "No")], [("Yes", "No"), ("No", "No")]],
    "commonsense_reasoning": [[("Yes", "Yes"), ("No", "No")]],
    "numerical_calculation": [[("Yes", "No"), ("No", "No")], [("Yes", "No"), ("No", "No")]],
    "text_translation": [[("Yes", "Yes"), ("No", "Yes")]],
    "code_reasoning": [[("Yes", "Yes"), ("No", "No")], [("Yes", "Yes"), ("No", "I don't know")]],
}  # fmt: skip

# calculation.py by hand: pred lower-cased; "yes"/"no" exact, else its first 4 characters hold
# "yes" → yes, "no" → no, else other ("mayb", "ther", "i do" → other; "not " → no).  acc over the
# questions (other = wrong), acc+ over the images; score = 100 acc + 100 acc+; TP/FN/TN/FP from
# confusion_matrix(labels=[yes, no]) over the answers that are not "other".
MME_EXPECTED = {  # task: (acc %, acc+ %, score, TP, FN, TN, FP, other)
    "existence": (100.0, 100.0, 200.0, 2, 0, 2, 0, 0),
    "count": (50.0, 0.0, 50.0, 1, 1, 1, 1, 0),  # 2 of 4; neither image fully right
    "position": (75.0, 50.0, 125.0, 1, 0, 2, 0, 1),  # "Maybe" → other
    "color": (0.0, 0.0, 0.0, 0, 1, 0, 1, 0),
    "posters": (500 / 6, 200 / 3, 150.0, 3, 0, 2, 1, 0),  # 5 of 6; 2 of 3 images
    "celebrity": (100.0, 100.0, 200.0, 1, 0, 1, 0, 0),
    "scene": (50.0, 0.0, 50.0, 0, 1, 1, 0, 0),  # "not sure" → "no" → FN
    "landmark": (100.0, 100.0, 200.0, 1, 0, 1, 0, 0),  # "YES" → "yes"
    "artwork": (50.0, 0.0, 50.0, 0, 0, 1, 0, 1),  # "there is" → other
    "OCR": (75.0, 50.0, 125.0, 1, 1, 2, 0, 0),
    "commonsense_reasoning": (100.0, 100.0, 200.0, 1, 0, 1, 0, 0),
    "numerical_calculation": (50.0, 0.0, 50.0, 0, 2, 2, 0, 0),
    "text_translation": (50.0, 0.0, 50.0, 1, 0, 0, 1, 0),
    "code_reasoning": (75.0, 50.0, 125.0, 2, 0, 1, 0, 1),  # "i don't know" → other
}
# Perception = 200 + 50 + 125 + 0 + 150 + 200 + 50 + 200 + 50 + 125 = 1150;
# Cognition = 200 + 50 + 50 + 125 = 425.


def test_mme_all_14_tasks_with_counts(tmp_path, write_jsonl):
    root = tmp_path / "MME_Benchmark_release_version"
    records = []
    for task, images in MME_CASES.items():
        # Half of the tasks keep images/ and questions_answers_YN/, half keep files side by side.
        split = task in ("artwork", "celebrity", "landmark", "posters", "scene")
        qa = root / task / ("questions_answers_YN" if split else "")
        qa.mkdir(parents=True, exist_ok=True)
        if split:
            (root / task / "images").mkdir(exist_ok=True)
        for i, pair in enumerate(images):
            lines, stem = [], f"{task}_{i}"
            for k, (gold, answer) in enumerate(pair):
                question = f"Is thing {k} in picture {i}?"
                lines.append(f"{question} Please answer yes or no.\t{gold}\n")
                # llava_mme.jsonl: both questions of an image share its path as question_id.
                records.append({"question_id": f"{task}/{stem}.png", "prompt": question + SHORT,
                                "text": answer, "answer_id": "x", "model_id": "m",
                                "metadata": {}})  # fmt: skip
            (qa / f"{stem}.txt").write_text("".join(lines), encoding="utf-8")
    result = score_mme_files(write_jsonl("mme.jsonl", records), root)
    assert set(result["subtasks"]) == set(PERCEPTION + COGNITION)
    assert result["missing_subtasks"] == []
    for task, (acc, acc_plus, score, tp, fn, tn, fp, other) in MME_EXPECTED.items():
        got = result["subtasks"][task]
        assert got["acc"] == pytest.approx(acc, abs=5e-5), task
        assert got["acc_plus"] == pytest.approx(acc_plus, abs=5e-5), task
        assert got["score"] == pytest.approx(score, abs=5e-5), task
        counts = (got["tp"], got["fn"], got["tn"], got["fp"], got["other"])
        assert counts == (tp, fn, tn, fp, other), task
    assert result["subtasks"]["count"]["precision"] == pytest.approx(50.0)  # TP 1 / (TP + FP 1)
    assert result["subtasks"]["count"]["recall"] == pytest.approx(50.0)  # TP 1 / (TP + FN 1)
    assert result["perception"] == pytest.approx(1150.0, abs=5e-5)
    assert result["cognition"] == pytest.approx(425.0, abs=5e-5)
    assert result["total"] == pytest.approx(1575.0, abs=5e-5)


def test_pope_accepts_a_json_array_answer_file(tmp_path, write_jsonl):
    from mqt_llava.evaluation.scorers.pope import score_pope_files

    labels = write_jsonl("coco_pope_random.json", [
        {"question_id": 1, "image": "a.jpg", "text": "Is there a dog?", "label": "yes"},
        {"question_id": 2, "image": "a.jpg", "text": "Is there a cat?", "label": "no"},
    ])  # fmt: skip
    answers = tmp_path / "answers.json"  # one JSON array, as some tools export the answers
    answers.write_text(json.dumps([{"question_id": 1, "text": "Yes"},
                                   {"question_id": 2, "text": "Yes"}], indent=2))  # fmt: skip
    result = score_pope_files(answers, labels)
    assert result["splits"]["random"]["accuracy"] == pytest.approx(50.0)
    bad = tmp_path / "bad.json"
    bad.write_text('{"question_id": 1,\n "text": "Yes"}')
    with pytest.raises(ValueError, match=r"expected JSON lines .* or one JSON array"):
        score_pope_files(bad, labels)
