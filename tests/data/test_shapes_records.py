"""Training records from a generated ShapesVQA folder: merged questions and descriptions."""

from __future__ import annotations

import json

import pytest

from mqt_llava.data.shapes import generate_shapes_dataset
from mqt_llava.data.shapes_records import (
    DESCRIBE_PROMPT,
    description,
    merge_by_scene,
    with_descriptions,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapes")
    generate_shapes_dataset(out, n=90, seed=7)
    return out


def _read(folder, name):
    return json.loads((folder / name).read_text())


def test_description_counts_the_shapes_in_words():
    assert description("a large red circle on the left.", 1) == (
        "The image shows one shape: a large red circle on the left."
    )
    assert description("x and y.", 5) == "The image shows five shapes: x and y."
    with pytest.raises(ValueError, match="at least one object"):
        description("nothing.", 0)


def test_descriptions_open_a_share_of_the_conversations(folder):
    questions, captions = _read(folder, "train.json"), _read(folder, "captions.json")
    scenes = _read(folder, "train_scenes.json")
    merged = merge_by_scene(questions)
    assert len(merged) == len({q["scene_id"] for q in questions})
    assert with_descriptions(merged, captions, scenes, 0.0, seed=0) == merged
    every = with_descriptions(merged, captions, scenes, 1.0, seed=0)
    objects = {s["scene_id"]: s["objects"] for s in scenes}
    for plain, described in zip(merged, every, strict=True):
        turns = described["conversations"]
        assert turns[0]["value"] == f"<image>\n{DESCRIBE_PROMPT}"
        sentence = turns[1]["value"]
        assert sentence.startswith("The image shows ") and sentence.endswith(".")
        for obj in objects[described["id"]]:  # every object is named, with its colour
            assert f"{obj['colour']} {obj['shape']}" in sentence
        # the questions follow, with the image placeholder only in the first turn
        assert turns[2]["value"] == plain["conversations"][0]["value"].replace("<image>\n", "")
        assert turns[3:] == plain["conversations"][1:]
        assert sum("<image>" in t["value"] for t in turns) == 1
    some = with_descriptions(merged, captions, scenes, 0.5, seed=1)
    described = sum(DESCRIBE_PROMPT in r["conversations"][0]["value"] for r in some)
    assert 0 < described < len(merged)
    with pytest.raises(ValueError, match=r"fraction must be in \[0, 1\]"):
        with_descriptions(merged, captions, scenes, 1.5, seed=0)
