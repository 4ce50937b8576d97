"""Tests of the ShapesVQA generator.

Answers are checked by an independent checker written here: it parses each question's text
and re-derives the answer from the scene description, never calling the generator's own
question code.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mqt_llava.data.shapes import generate_shapes_dataset, write_example_images

SPLITS = ("train", "val", "test")
PLURAL = {"circles": "circle", "squares": "square", "triangles": "triangle", "crosses": "cross"}
SIZE_WORDS = {"small", "large"}


def load(folder: Path, name: str):
    return json.loads((folder / name).read_text())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shapes")
    generate_shapes_dataset(out, n=140, seed=3)
    return out


def all_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# ---------------------------------------------------------------- independent answer checker


def resolve(phrase: str, objects: list[dict]) -> dict:
    """Returns the one object a phrase like "small red circle" / "red object" refers to."""
    words = phrase.split()
    noun = words[-1]
    found = []
    for o in objects:
        ok = noun == "object" or o["shape"] == noun
        for w in words[:-1]:
            ok = ok and (o["size"] == w if w in SIZE_WORDS else o["colour"] == w)
        if ok:
            found.append(o)
    assert len(found) == 1, f"{phrase!r} is ambiguous or refers to nothing: {found}"
    return found[0]


def check_answer(question: str, scene: dict, margin: float) -> str:
    """Re-derives the answer to a question from the scene description."""
    objects = scene["objects"]
    centre = (scene["width"] - 1) / 2
    if m := re.fullmatch(r"Is there an? (\w+) (\w+)\?", question):
        hit = any(o["colour"] == m[1] and o["shape"] == m[2] for o in objects)
        return "yes" if hit else "no"
    if m := re.fullmatch(r"What colour is the (.+)\?", question):
        return resolve(m[1], objects)["colour"]
    if m := re.fullmatch(r"What shape is the (.+)\?", question):
        return resolve(m[1], objects)["shape"]
    if question == "How many objects are there?":
        return str(len(objects))
    if m := re.fullmatch(r"How many (\w+) objects are there\?", question):
        return str(sum(o["colour"] == m[1] for o in objects))
    if m := re.fullmatch(r"How many (\w+) are there\?", question):
        return str(sum(o["shape"] == PLURAL[m[1]] for o in objects))
    if m := re.fullmatch(r"Is the (.+) (?:on|at) the (\w+) or the (\w+)\?", question):
        o = resolve(m[1], objects)
        horizontal = {m[2], m[3]} == {"left", "right"}
        assert horizontal or {m[2], m[3]} == {"top", "bottom"}, question
        offset = o["x"] - centre if horizontal else o["y"] - centre
        assert abs(offset) >= margin, f"{question!r}: object too close to the centre line"
        if horizontal:
            return "left" if offset < 0 else "right"
        return "top" if offset < 0 else "bottom"
    rel = r"Is the (.+) (to the left of|to the right of|above|below) the (.+)\?"
    if m := re.fullmatch(rel, question):
        a, b = resolve(m[1], objects), resolve(m[3], objects)
        assert a is not b
        dx, dy = a["x"] - b["x"], a["y"] - b["y"]
        delta = dx if "of" in m[2] else dy
        assert abs(delta) >= margin, f"{question!r}: objects too close to compare"
        holds = {"to the left of": dx < 0, "to the right of": dx > 0, "above": dy < 0}
        return "yes" if holds.get(m[2], dy > 0) else "no"
    raise AssertionError(f"unrecognised question {question!r}")


# ---------------------------------------------------------------- tests


def test_every_answer_matches_its_scene(dataset: Path) -> None:
    info = load(dataset, "dataset_info.json")
    assert info["position_margin"] >= info["image_size"] / 20  # a few pixels at least
    checked = 0
    for split in SPLITS:
        scenes = {s["scene_id"]: s for s in load(dataset, f"{split}_scenes.json")}
        for record in load(dataset, f"{split}.json"):
            scene = scenes[record["scene_id"]]
            expected = check_answer(record["question"], scene, info["position_margin"])
            assert record["answer"] == expected, record
            checked += 1
    assert checked == 140 + 14 + 14


def test_type_specific_constraints(dataset: Path) -> None:
    scenes = {s["scene_id"]: s for s in load(dataset, "train_scenes.json")}
    for record in load(dataset, "train.json"):
        objects = scenes[record["scene_id"]]["objects"]
        q, qtype = record["question"], record["question_type"]
        if qtype == "fine_detail":
            phrase = re.fullmatch(r"What (?:colour|shape) is the (.+)\?", q)[1]
            assert resolve(phrase, objects)["size"] == "small"
        elif qtype in ("colour", "shape"):
            phrase = re.fullmatch(r"What (?:colour|shape) is the (.+)\?", q)[1]
            assert resolve(phrase, objects)["size"] == "large"
            assert "small" not in phrase
        elif qtype == "existence":
            assert q.startswith("Is there")
        elif qtype == "count":
            assert q.startswith("How many") and record["answer"].isdigit()


def test_records_follow_llava_format(dataset: Path) -> None:
    for split in SPLITS:
        for record in load(dataset, f"{split}.json"):
            human, gpt = record["conversations"]
            assert human["from"] == "human" and gpt["from"] == "gpt"
            assert human["value"] == (
                f"<image>\n{record['question']} Answer the question using a single word or phrase."
            )
            assert gpt["value"] == record["answer"] and " " not in record["answer"]
            assert record["image"] == f"images/{record['scene_id']}.png"
            assert (dataset / record["image"]).is_file()
    for record in load(dataset, "captions.json"):
        human, gpt = record["conversations"]
        assert human == {"from": "human", "value": "<image>"}
        assert gpt["from"] == "gpt" and gpt["value"].startswith("a ") and gpt["value"][-1] == "."


def test_captions_mention_every_object(dataset: Path) -> None:
    scenes = {s["scene_id"]: s for s in load(dataset, "train_scenes.json")}
    captions = load(dataset, "captions.json")
    assert len(captions) == len(scenes)
    for record in captions:
        text = record["conversations"][1]["value"]
        objects = scenes[record["scene_id"]]["objects"]
        phrases = Counter(f"{o['size']} {o['colour']} {o['shape']}" for o in objects)
        for phrase, count in phrases.items():
            assert text.count(f"a {phrase} ") == count, (text, phrase)


def test_splits_share_no_scene(dataset: Path) -> None:
    seen: dict[tuple[str, ...], str] = {}
    for split in SPLITS:
        for scene in load(dataset, f"{split}_scenes.json"):
            assert scene["scene_id"].startswith(f"{split}_")
            key = tuple(sorted(json.dumps(o, sort_keys=True) for o in scene["objects"]))
            assert key not in seen, f"{scene['scene_id']} repeats {seen.get(key)}"
            seen[key] = scene["scene_id"]


def test_scenes_are_valid_and_images_match(dataset: Path) -> None:
    info = load(dataset, "dataset_info.json")
    size = info["image_size"]
    for scene in load(dataset, "train_scenes.json"):
        objects = scene["objects"]
        assert info["min_objects"] <= len(objects) <= info["max_objects"]
        pixels = np.asarray(Image.open(dataset / scene["image"]).convert("RGB"))
        assert pixels.shape == (size, size, 3)
        covered = np.zeros((size, size), dtype=bool)
        for o in objects:
            x0, y0, x1, y1 = o["bbox"]
            assert 0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size
            assert x1 - x0 == o["diameter"] and (x0 + x1 - 1) / 2 == o["x"]
            assert o["diameter"] >= 6 if o["size"] == "small" else o["diameter"] >= 13
            assert not covered[y0:y1, x0:x1].any(), f"overlap in {scene['scene_id']}"
            covered[y0:y1, x0:x1] = True
            assert tuple(pixels[o["y"], o["x"]]) == tuple(o["rgb"])  # the centre is filled
            assert (pixels[y0:y1, x0:x1] == o["rgb"]).all(-1).sum() >= o["diameter"] ** 2 // 3
        assert (pixels[~covered] == scene["background"]).all()


def test_question_types_and_answers_are_balanced(dataset: Path) -> None:
    records = load(dataset, "train.json")
    types = Counter(r["question_type"] for r in records)
    expected = {"existence", "colour", "shape", "count", "position", "relation", "fine_detail"}
    assert set(types) == expected
    assert max(types.values()) - min(types.values()) <= 3, types
    for qtype in ("existence", "relation"):
        answers = Counter(r["answer"] for r in records if r["question_type"] == qtype)
        assert abs(answers["yes"] - answers["no"]) <= 1, (qtype, answers)
    info = load(dataset, "dataset_info.json")
    assert info["splits"]["train"]["question_types"] == dict(types)
    assert info["splits"]["train"]["questions"] == 140
    assert info["splits"]["val"]["questions"] == info["splits"]["test"]["questions"] == 14


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    generate_shapes_dataset(tmp_path / "a", n=40, seed=7)
    generate_shapes_dataset(tmp_path / "b", n=40, seed=7)
    generate_shapes_dataset(tmp_path / "c", n=40, seed=8)
    a, b, c = (all_files(tmp_path / name) for name in "abc")
    assert len(a) > 10 and a == b
    assert a["train.json"] != c["train.json"]
    assert a["images/train_000000.png"] != c["images/train_000000.png"]


def test_existing_dataset_needs_overwrite(tmp_path: Path) -> None:
    generate_shapes_dataset(tmp_path, n=12, seed=0)
    with pytest.raises(FileExistsError, match="--overwrite"):
        generate_shapes_dataset(tmp_path, n=12, seed=0)
    generate_shapes_dataset(tmp_path, n=3, seed=0, questions_per_scene=1, overwrite=True)
    scenes = sum(len(load(tmp_path, f"{s}_scenes.json")) for s in SPLITS)
    assert len(list((tmp_path / "images").glob("*.png"))) == scenes  # no stale images


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"n": 0}, "--n"),
        ({"image_size": 16}, "--image-size"),
        ({"max_objects": 9}, "objects"),
        ({"questions_per_scene": 8}, "--questions-per-scene"),
    ],
)
def test_bad_arguments_name_the_flag(tmp_path: Path, kwargs: dict, flag: str) -> None:
    with pytest.raises(ValueError, match=flag):
        generate_shapes_dataset(tmp_path, **{"n": 10, **kwargs})


def test_other_image_size_scales_objects(tmp_path: Path) -> None:
    generate_shapes_dataset(tmp_path, n=20, seed=1, image_size=96)
    for scene in load(tmp_path, "train_scenes.json"):
        assert Image.open(tmp_path / scene["image"]).size == (96, 96)
        for o in scene["objects"]:
            assert o["diameter"] >= (11 if o["size"] == "small" else 19)


def test_example_images(tmp_path: Path) -> None:
    scenes = write_example_images(tmp_path)
    assert len(scenes) == 4
    assert json.loads((tmp_path / "examples.json").read_text()) == scenes
    single = scenes[0]
    assert [o["size"] for o in single["objects"]] == ["small"]
    pixels = np.asarray(Image.open(tmp_path / single["image"]).convert("RGB"))
    x0, y0, x1, y1 = single["objects"][0]["bbox"]
    inside = np.zeros(pixels.shape[:2], dtype=bool)
    inside[y0:y1, x0:x1] = True
    assert (pixels[~inside] == single["background"]).all()
    assert (pixels[inside] == single["objects"][0]["rgb"]).all(-1).any()
    for scene in scenes:
        assert (tmp_path / scene["image"]).is_file() and scene["caption"].endswith(".")
