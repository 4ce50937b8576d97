"""Tiny benchmark folders in the file formats LLaVA-1.5's evaluation scripts read.

Each writer builds ``playground/data/eval/<benchmark>``-style files (question file, images,
official annotations) with two to six questions and returns the folder. The records copy the
official files' field names and text conventions.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from pathlib import Path

from PIL import Image

from mqt_llava.data.shapes import generate_shapes_dataset

SHORT = "\nAnswer the question using a single word or phrase."
LETTER = "\nAnswer with the option's letter from the given choices directly."
COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200)]


def image(path: Path, colour_index: int = 0, size: tuple[int, int] = (12, 9)) -> Path:
    """A small solid-colour image (not square, so the "pad" preprocessing is exercised)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, COLOURS[colour_index % len(COLOURS)]).save(path)
    return path


def png_bytes(colour_index: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (10, 10), COLOURS[colour_index]).save(buffer, format="PNG")
    return buffer.getvalue()


def _jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def vqav2(root: Path, annotations: bool = True) -> Path:
    data = root / "vqav2"
    questions = [
        (262144000, "COCO_test2015_000000262144.jpg", "Is the ball flying towards the batter?"),
        (262144001, "COCO_test2015_000000262144.jpg", "What sport is this?"),
        (262144002, "COCO_test2015_000000262145.jpg", "How many people are there?"),
    ]
    for i, (_, name, _) in enumerate(questions):
        image(data / "test2015" / name, i // 2)
    _jsonl(
        data / "llava_vqav2_mscoco_test-dev2015.jsonl",
        [{"question_id": q, "image": n, "text": t + SHORT, "category": "default"}
         for q, n, t in questions],
    )  # fmt: skip
    if annotations:
        answers = [["yes"] * 10, ["baseball"] * 10, ["2"] * 7 + ["two"] * 3]
        _json(
            data / "v2_mscoco_val2014_annotations.json",
            {"annotations": [
                {"question_id": q, "answers": [{"answer": a} for a in ans], "answer_type": "other"}
                for (q, _, _), ans in zip(questions, answers, strict=True)
            ]},
        )  # fmt: skip
    return data


def gqa(root: Path) -> Path:
    data = root / "gqa"
    rows = [("20968379", "n288870.jpg", "Is the sky dark?", "no", "verify"),
            ("20968380", "n288871.jpg", "What is on the table?", "cup", "query")]  # fmt: skip
    for i, (_, name, *_) in enumerate(rows):
        image(data / "data" / "images" / name, i)
    _jsonl(
        data / "llava_gqa_testdev_balanced.jsonl",
        [{"question_id": q, "image": n, "text": t + SHORT} for q, n, t, *_ in rows],
    )
    _json(
        data / "data" / "testdev_balanced_questions.json",
        {q: {"answer": a, "types": {"structural": s}, "isBalanced": True}
         for q, _, _, a, s in rows},
    )  # fmt: skip
    return data


def vizwiz(root: Path) -> Path:
    data = root / "vizwiz"
    unanswerable = "\nWhen the provided information is insufficient, respond with 'Unanswerable'."
    names = ["VizWiz_val_00000000.jpg", "VizWiz_val_00000001.jpg"]
    for i, name in enumerate(names):
        image(data / "val" / name, i)
    _jsonl(
        data / "llava_test.jsonl",
        [{"question_id": i, "image": n, "text": f"What is this?{unanswerable}{SHORT}"}
         for i, n in enumerate(names)],
    )  # fmt: skip
    _json(
        data / "val.json",
        [{"image": n, "question": "What is this?", "answer_type": "other",
          "answers": [{"answer": "unanswerable", "answer_confidence": "yes"}] * 10}
         for n in names],
    )  # fmt: skip
    return data


def textvqa(root: Path) -> Path:
    """As LLaVA-1.5's ``llava_textvqa_val_v051_ocr.jsonl``: the question id is the *image* id,
    shared by the questions about one image."""
    data = root / "textvqa"
    rows = [(34602, "003a8ae2ef43b901", "what is the brand of this camera?", "nous, les"),
            (34603, "003a8ae2ef43b901", "what does the small white text spell?", "copenhagen"),
            (34604, "004e8b1b1f5b2f3c", "what does the sign say?", "stop")]  # fmt: skip
    for i, (_, image_id, _, _) in enumerate(rows):
        image(data / "train_images" / f"{image_id}.jpg", i)
    _jsonl(
        data / "llava_textvqa_val_v051_ocr.jsonl",
        [{"question_id": i, "image": f"{i}.jpg",
          "text": f"{t}\nReference OCR token: {ocr}{SHORT}"} for _, i, t, ocr in rows],
    )  # fmt: skip
    _json(
        data / "TextVQA_0.5.1_val.json",
        {"data": [{"question_id": q, "image_id": i, "question": t, "answers": ["dakota"] * 10}
                  for q, i, t, _ in rows]},
    )  # fmt: skip
    return data


def pope(root: Path) -> Path:
    data = root / "pope"
    questions, labels = [], {}
    for s, split in enumerate(("adversarial", "popular", "random")):
        for k, (obj, label) in enumerate((("snowboard", "yes"), ("dog", "no"))):
            name = f"COCO_val2014_00000031019{k}.jpg"
            image(data / "val2014" / name, k)
            qid = 3 * s + k + 1
            text = f"Is there a {obj} in the image?"
            questions.append({"question_id": qid, "image": name, "text": text, "category": split})
            labels.setdefault(split, []).append(
                {"question_id": k + 1, "image": name, "text": text, "label": label}
            )
    _jsonl(data / "llava_pope_test.jsonl", questions)
    for split, rows in labels.items():
        _jsonl(data / "coco" / f"coco_pope_{split}.json", rows)
    return data


def seed(root: Path) -> Path:
    data = root / "seed"
    rows = [("101669", "SEED-Bench-image/1454426_2591111986.jpg", "How many towels are there?",
             ["One", "Two", "Three", "Four"], "A", "Instances Counting", 5),
            ("101670", "SEED-Bench-image/1454427_2591111987.jpg", "What colour is the car?",
             ["Red", "Blue", "Green", "White"], "C", "Instance Attributes", 2)]  # fmt: skip
    records = []
    for i, (qid, path, question, options, _, category, _) in enumerate(rows):
        image(data / path, i)
        listed = "".join(f"\n{letter}. {o}" for letter, o in zip("ABCD", options, strict=True))
        records.append(
            {"image": path, "text": question + listed + LETTER, "category": category,
             "question_id": qid}
        )  # fmt: skip
    _jsonl(data / "llava-seed-bench.jsonl", records)
    _json(
        data / "SEED-Bench.json",
        {"questions": [{"question_id": q, "answer": a, "question_type_id": t, "data_type": "image"}
                       for q, _, _, _, a, _, t in rows],
         "question_type": {c: t for *_, c, t in rows}},
    )  # fmt: skip
    return data


MME_QUESTIONS = {
    ("existence", "000000006040"): [
        ("Is there a train in this image? Please answer yes or no.", "Yes"),
        ("Is there a bed in this image? Please answer yes or no.", "No"),
    ],
    ("artwork", "10002"): [
        ("Is this artwork created by maris, jacob?  Please answer yes or no.", "Yes"),
        ("Is this artwork created by gogh, vincent van? Please answer yes or no.", "No"),
    ],
}


def mme(root: Path, jsonl: bool = False) -> Path:
    """The release folder (``existence`` with side-by-side files, ``artwork`` with ``images/``
    and ``questions_answers_YN/``), plus LLaVA's ``llava_mme.jsonl`` when ``jsonl``."""
    data = root / ("mme_jsonl" if jsonl else "mme")
    release = data / "MME_Benchmark_release_version"
    records = []
    for i, ((subtask, stem), qa) in enumerate(MME_QUESTIONS.items()):
        split = subtask == "artwork"
        image(release / subtask / ("images" if split else "") / f"{stem}.jpg", i)
        txt = release / subtask / ("questions_answers_YN" if split else "") / f"{stem}.txt"
        txt.parent.mkdir(parents=True, exist_ok=True)
        txt.write_text("".join(f"{q}\t{a}\n" for q, a in qa), encoding="utf-8")
        for question, _ in qa:
            text = question.replace(" Please answer yes or no.", "") + SHORT
            records.append(
                {"question_id": f"{subtask}/{stem}.jpg", "image": f"{subtask}/{stem}.jpg",
                 "text": text, "category": subtask}
            )  # fmt: skip
    if jsonl:
        _jsonl(data / "llava_mme.jsonl", records)
    return data


def mmbench(root: Path) -> Path:
    data = root / "mmbench"
    data.mkdir(parents=True, exist_ok=True)
    header = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category",
              "image", "source", "l2-category", "split"]  # fmt: skip
    first = base64.b64encode(png_bytes(0)).decode()
    rows = [
        [0, "Which colour dominates?", "Look at the picture.", "red", "green", "blue", "grey",
         "A", "attribute_recognition", first, "src", "FP-S", "dev"],
        [1, "Which shape is it?", "nan", "square", "circle", "triangle", "", "B",
         "shape_recognition", base64.b64encode(png_bytes(1)).decode(), "src", "FP-S", "dev"],
        [1000000, "Which colour dominates?", "Look at the picture.", "grey", "red", "green",
         "blue", "B", "attribute_recognition", "0", "src", "FP-S", "dev"],
    ]  # fmt: skip
    with open(data / "mmbench_dev_20230712.tsv", "w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file, delimiter="\t")
        writer.writerow(header)
        writer.writerows(rows)
    return data


SQA_PROBLEMS = {
    "1": {"question": "Which figure of speech is used in this text?",
          "choices": ["chiasmus", "apostrophe"], "answer": 1,
          "hint": "Sing, O goddess, the anger of Achilles.", "image": None, "split": "test"},
    "5": {"question": "Which of these states is farthest north?",
          "choices": ["West Virginia", "Louisiana", "Arizona", "Oklahoma"], "answer": 0,
          "hint": "", "image": "image.png", "split": "test"},
    "7": {"question": "Which animal's feet are adapted for walking on snow?",
          "choices": ["lynx", "camel", "gecko"], "answer": 0,
          "hint": "Lynxes live in cold places.", "image": "image.png", "split": "test"},
}  # fmt: skip


def scienceqa(root: Path, llava_file: bool = False) -> Path:
    """ScienceQA's problems.json + pid_splits.json + images/test/<pid>/image.png, plus the
    release's converted ``llava_test_CQM-A.json`` when ``llava_file``."""
    data = root / ("scienceqa_llava" if llava_file else "scienceqa")
    _json(data / "problems.json", SQA_PROBLEMS)
    _json(data / "pid_splits.json", {"test": list(SQA_PROBLEMS), "train": []})
    for i, (pid, problem) in enumerate(SQA_PROBLEMS.items()):
        if problem["image"]:
            image(data / "images" / "test" / pid / "image.png", i)
    if llava_file:
        records = []
        for pid, p in SQA_PROBLEMS.items():
            context = f"Context: {p['hint']}\n" if p["hint"] else ""
            options = "\n".join(f"{'ABCDE'[i]}. {c}" for i, c in enumerate(p["choices"]))
            value = f"{context}{p['question']}\n{options}"
            record = {
                "id": pid,
                "conversations": [
                    {"from": "human", "value": value},
                    {"from": "gpt", "value": "ABCDE"[p["answer"]]},
                ],
            }
            if p["image"]:
                record["image"] = f"{pid}/image.png"
                record["conversations"][0]["value"] = "<image>\n" + value
            records.append(record)  # fmt: skip
        _json(data / "llava_test_CQM-A.json", records)
    return data


def mmmu(root: Path) -> Path:
    data = root / "mmmu"
    rows = [
        {"id": "validation_Art_Theory_1", "question": "<image 1> Who painted this?",
         "options": "['Monet', 'Manet', 'Degas', 'Renoir']", "question_type": "multiple-choice",
         "image_1": "images/validation_Art_Theory_1_1.png", "answer": "B"},
        {"id": "validation_Math_2", "question": "What is the area of the square? <image 1>",
         "options": "[]", "question_type": "open",
         "image_1": "images/validation_Math_2_1.png", "answer": "4"},
    ]  # fmt: skip
    for i, row in enumerate(rows):
        image(data / row["image_1"], i)
    _jsonl(data / "mmmu_validation.jsonl", rows)
    return data


def shapes(root: Path) -> Path:
    data = root / "shapes"
    generate_shapes_dataset(data, n=30, seed=3, image_size=32)
    return data


WRITERS = {
    "vqav2": vqav2, "gqa": gqa, "vizwiz": vizwiz, "textvqa": textvqa, "pope": pope,
    "seed": seed, "mme": mme, "mmbench": mmbench, "scienceqa": scienceqa, "mmmu": mmmu,
    "shapes": shapes,
}  # fmt: skip
