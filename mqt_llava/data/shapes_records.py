"""Training records built from a ShapesVQA folder: questions merged per scene, descriptions.

`generate_shapes_dataset` writes one record per question and one plain caption per scene. Training
reads them in other shapes: the three questions about a scene as one multi-turn conversation
(the image is encoded once for three answers), and, for a model that should keep its language,
"Describe the image." turns answered by a sentence.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

DESCRIBE_PROMPT = "Describe the image."
NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def merge_by_scene(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Joins the single-question records of each scene into one multi-turn record.

    The image placeholder stays in the first human turn only, as in LLaVA's multi-turn data.
    """
    by_scene: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_scene[record["scene_id"]].append(record)
    merged = []
    for scene_id, group in by_scene.items():
        turns = []
        for k, record in enumerate(group):
            human, answer = record["conversations"]
            text = human["value"] if k == 0 else human["value"].replace("<image>\n", "")
            turns += [{"from": "human", "value": text}, answer]
        merged.append({"id": scene_id, "image": group[0]["image"], "conversations": turns})
    return merged


def description(caption: str, num_objects: int) -> str:
    """A sentence describing a scene: its number of shapes, then its caption.

    Example: ``"The image shows two shapes: a large red circle at the top left and a small blue
    square at the bottom right."``
    """
    if num_objects < 1:
        raise ValueError(f"a ShapesVQA scene holds at least one object (got {num_objects})")
    count = NUMBER_WORDS[num_objects] if num_objects < len(NUMBER_WORDS) else str(num_objects)
    noun = "shape" if num_objects == 1 else "shapes"
    return f"The image shows {count} {noun}: {caption}"


def with_descriptions(
    merged: Sequence[dict[str, Any]],
    captions: Sequence[dict[str, Any]],
    scenes: Sequence[Mapping[str, Any]],
    fraction: float,
    seed: int,
) -> list[dict[str, Any]]:
    """Opens a `fraction` of the merged conversations with a "Describe the image." turn.

    Args:
        merged: Multi-turn question records (from [`merge_by_scene`]); `id` is the scene id.
        captions: The folder's `captions.json` records (`scene_id`, the caption as answer).
        scenes: The folder's `<split>_scenes.json` (each with `scene_id` and `objects`).
        fraction: Share of conversations that get the description turn, in [0, 1].
        seed: Which conversations get it.

    Returns:
        New records; a described one asks for the description first (with the image) and
        then its questions.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1] (got {fraction})")
    caption_of = {c["scene_id"]: c["conversations"][-1]["value"] for c in captions}
    objects_in = {s["scene_id"]: len(s["objects"]) for s in scenes}
    rng = random.Random(seed)
    out = []
    for record in merged:
        scene_id = record["id"]
        if rng.random() >= fraction or scene_id not in caption_of:
            out.append(record)
            continue
        first, *rest = record["conversations"]
        question = first["value"].replace("<image>\n", "")
        text = description(caption_of[scene_id], objects_in[scene_id])
        turns = [
            {"from": "human", "value": f"<image>\n{DESCRIBE_PROMPT}"},
            {"from": "gpt", "value": text},
            {"from": "human", "value": question},
            *rest,
        ]
        out.append({**record, "conversations": turns})
    return out
