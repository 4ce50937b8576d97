"""ShapesVQA: a deterministic CLEVR-like 2-D visual question-answering set in LLaVA JSON.

Output folder layout (``out_dir``)::

    images/<scene_id>.png        one image per scene, e.g. images/train_000042.png
    train.json val.json test.json   LLaVA records, one question each
    captions.json                stage-1 caption records, one per *train* scene
    train_scenes.json val_scenes.json test_scenes.json   scene descriptions (the truth)
    dataset_info.json            seed, sizes, counts per split / question type / answer

A question record::

    {"id": "train_000042_q1", "image": "images/train_000042.png",
     "conversations": [
        {"from": "human", "value": "<image>\\nWhat colour is the small square? Answer the
                                    question using a single word or phrase."},
        {"from": "gpt", "value": "red"}],
     "question_type": "fine_detail", "question": "What colour is the small square?",
     "answer": "red", "scene_id": "train_000042"}

A scene record (in ``<split>_scenes.json``) lists its objects with shape, colour, size class,
centre ``x``/``y``, ``diameter``, ``bbox`` ``[x0, y0, x1, y1]`` (x1/y1 exclusive) and ``rgb``.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

from mqt_llava.data.shapes_questions import QUESTION_TYPES, ask, position_margin
from mqt_llava.data.shapes_scene import (
    COLOURS,
    MIN_IMAGE_SIZE,
    SHAPES,
    SIZES,
    Scene,
    SceneObject,
    boxes_apart,
    caption,
    diameters,
    object_gap,
    render_scene,
    sample_scene,
    save_png,
)

GENERATOR_VERSION = "1.0"
SPLITS: tuple[str, ...] = ("train", "val", "test")
PROMPT_SUFFIX = "Answer the question using a single word or phrase."

__all__ = [
    "GENERATOR_VERSION",
    "QUESTION_TYPES",
    "Scene",
    "SceneObject",
    "generate_shapes_dataset",
    "write_example_images",
]


def _question_record(
    scene: Scene, index: int, question_type: str, text: str, answer: str
) -> dict[str, Any]:
    return {
        "id": f"{scene.scene_id}_q{index}",
        "image": scene.image,
        "conversations": [
            {"from": "human", "value": f"<image>\n{text} {PROMPT_SUFFIX}"},
            {"from": "gpt", "value": answer},
        ],
        "question_type": question_type,
        "question": text,
        "answer": answer,
        "scene_id": scene.scene_id,
    }


def _caption_record(scene: Scene) -> dict[str, Any]:
    return {
        "id": f"{scene.scene_id}_caption",
        "image": scene.image,
        "conversations": [
            {"from": "human", "value": "<image>"},
            {"from": "gpt", "value": caption(scene)},
        ],
        "scene_id": scene.scene_id,
    }


def _generate_split(
    rng: random.Random,
    split: str,
    num_questions: int,
    image_size: int,
    questions_per_scene: int,
    num_objects: tuple[int, int],
    seen: set[tuple[SceneObject, ...]],
) -> tuple[list[Scene], list[dict[str, Any]]]:
    type_counts: Counter[str] = Counter()
    answer_counts: dict[str, Counter[str]] = {t: Counter() for t in QUESTION_TYPES}
    scenes: list[Scene] = []
    records: list[dict[str, Any]] = []
    while len(records) < num_questions:
        scene_id = f"{split}_{len(scenes):06d}"
        scene = sample_scene(rng, scene_id, image_size, rng.randint(*num_objects))
        if scene.signature() in seen:
            continue
        # The least-asked types go first, so types the scene cannot support are made up later.
        tie = {t: rng.random() for t in QUESTION_TYPES}
        order = sorted(QUESTION_TYPES, key=lambda t: (type_counts[t], tie[t]))
        wanted = min(questions_per_scene, num_questions - len(records))
        asked: list[tuple[str, str, str]] = []
        for question_type in order:
            if len(asked) == wanted:
                break
            question = ask(question_type, rng, scene, answer_counts[question_type])
            if question is None:
                continue
            type_counts[question_type] += 1
            answer_counts[question_type][question.answer] += 1
            asked.append((question_type, question.text, question.answer))
        seen.add(scene.signature())
        scenes.append(scene)
        records.extend(_question_record(scene, i, *q) for i, q in enumerate(asked))
    return scenes, records


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def _split_sizes(n: int, val_fraction: float, test_fraction: float) -> dict[str, int]:
    return {
        "train": n,
        "val": max(1, round(n * val_fraction)),
        "test": max(1, round(n * test_fraction)),
    }


def _validate(n: int, image_size: int, questions_per_scene: int, objects: tuple[int, int]) -> None:
    if n < 1:
        raise ValueError(f"--n must be at least 1 (got {n})")
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"--image-size must be at least {MIN_IMAGE_SIZE} (got {image_size})")
    if not 1 <= questions_per_scene <= len(QUESTION_TYPES):
        raise ValueError(
            f"--questions-per-scene must be between 1 and {len(QUESTION_TYPES)}, one per question "
            f"type (got {questions_per_scene})"
        )
    if not 1 <= objects[0] <= objects[1] <= 6:
        raise ValueError(
            f"need 1 <= --min-objects <= --max-objects <= 6 (got {objects[0]} and {objects[1]})"
        )


def generate_shapes_dataset(
    out_dir: Path,
    n: int = 20000,
    seed: int = 0,
    image_size: int = 64,
    questions_per_scene: int = 3,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    min_objects: int = 2,
    max_objects: int = 5,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Generates the ShapesVQA dataset: images, LLaVA question records, captions, scenes.

    Scenes hold ``min_objects``–``max_objects`` coloured shapes (circle, square, triangle,
    cross; seven colours; large or small) on a plain grey background. Each question record
    asks one question of a tagged type — existence, colour, shape, count, position,
    relation, fine_detail — whose single-word answer follows from the scene description.
    Types and answers are balanced within each split. Splits never share a scene.
    The same arguments always produce byte-identical files.

    Args:
        out_dir: Folder to write into (created if missing).
        n: Number of train question records; val and test get ``n * val_fraction`` and
            ``n * test_fraction`` (at least 1 each).
        seed: Seed of the generator; each split draws from its own seeded stream.
        image_size: Side of the square images in pixels (small objects are ~11 % of it).
        questions_per_scene: Questions asked about each scene (of distinct types).
        val_fraction: Size of val relative to train.
        test_fraction: Size of test relative to train.
        min_objects: Fewest objects in a scene.
        max_objects: Most objects in a scene (at most 6).
        overwrite: Replace an existing ShapesVQA dataset in ``out_dir``.

    Returns:
        The summary also written to ``dataset_info.json``: arguments, generator version, and
        question / scene counts per split, per question type and per answer.

    Raises:
        ValueError: When an argument is out of range (the message names the flag).
        FileExistsError: When ``out_dir`` already holds a dataset and ``overwrite`` is off.
    """
    out_dir = Path(out_dir)
    _validate(n, image_size, questions_per_scene, (min_objects, max_objects))
    info_path = out_dir / "dataset_info.json"
    images = out_dir / "images"
    if info_path.exists() or (images.exists() and any(images.iterdir())):
        if not overwrite:
            raise FileExistsError(f"{out_dir} already holds a dataset; pass --overwrite")
        for stale in images.glob("*.png"):
            stale.unlink()
    images.mkdir(parents=True, exist_ok=True)

    seen: set[tuple[SceneObject, ...]] = set()
    sizes = _split_sizes(n, val_fraction, test_fraction)
    info: dict[str, Any] = {
        "name": "ShapesVQA",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "n": n,
        "image_size": image_size,
        "questions_per_scene": questions_per_scene,
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
        "min_objects": min_objects,
        "max_objects": max_objects,
        "position_margin": position_margin(image_size),
        "object_gap": object_gap(image_size),
        "diameters": {size: list(diameters(image_size, size)) for size in SIZES},
        "shapes": list(SHAPES),
        "colours": {name: list(rgb) for name, rgb in COLOURS.items()},
        "question_types": list(QUESTION_TYPES),
        "splits": {},
    }
    for split in SPLITS:
        rng = random.Random(f"shapesvqa:{seed}:{split}")  # str seeds hash stably (SHA-512)
        scenes, records = _generate_split(
            rng,
            split,
            num_questions=sizes[split],
            image_size=image_size,
            questions_per_scene=questions_per_scene,
            num_objects=(min_objects, max_objects),
            seen=seen,
        )
        for scene in scenes:
            save_png(render_scene(scene), out_dir / scene.image)
        _write_json(out_dir / f"{split}.json", records)
        _write_json(out_dir / f"{split}_scenes.json", [s.to_dict() for s in scenes])
        if split == "train":
            _write_json(out_dir / "captions.json", [_caption_record(s) for s in scenes])
            info["captions"] = len(scenes)
        info["splits"][split] = _split_summary(scenes, records)
    _write_json(info_path, info)
    return info


def _split_summary(scenes: list[Scene], records: list[dict[str, Any]]) -> dict[str, Any]:
    types = Counter(r["question_type"] for r in records)
    answers: dict[str, Counter[str]] = {t: Counter() for t in QUESTION_TYPES}
    for r in records:
        answers[r["question_type"]][r["answer"]] += 1
    return {
        "scenes": len(scenes),
        "questions": len(records),
        "question_types": {t: types[t] for t in QUESTION_TYPES},
        "answers": {t: dict(sorted(answers[t].items())) for t in QUESTION_TYPES},
    }


# Hand-placed scenes as (name, [(shape, colour, size, x, y)]) with x/y as fractions of the side.
_EXAMPLES: tuple[tuple[str, list[tuple[str, str, str, float, float]]], ...] = (
    ("single_small", [("circle", "red", "small", 0.72, 0.28)]),
    ("large_and_small", [
        ("square", "blue", "large", 0.28, 0.30),
        ("triangle", "yellow", "small", 0.72, 0.70),
    ]),
    ("four_corners", [
        ("circle", "green", "large", 0.25, 0.25),
        ("cross", "purple", "small", 0.75, 0.25),
        ("triangle", "orange", "large", 0.25, 0.75),
        ("square", "cyan", "small", 0.75, 0.75),
    ]),
    ("small_among_large", [
        ("circle", "red", "large", 0.22, 0.22),
        ("circle", "blue", "large", 0.78, 0.22),
        ("square", "red", "large", 0.22, 0.78),
        ("circle", "yellow", "small", 0.55, 0.62),
    ]),
)  # fmt: skip


def example_scenes(image_size: int = 64) -> list[Scene]:
    """The fixed example scenes (see :func:`write_example_images`)."""
    # A mid-range large diameter, and the (only) small one.
    diameter = {size: diameters(image_size, size) for size in SIZES}
    diameter = {size: values[len(values) // 2] for size, values in diameter.items()}
    last = image_size - 1
    gap = object_gap(image_size)
    scenes = []
    for name, specs in _EXAMPLES:
        objects = tuple(
            SceneObject(shape, colour, size, round(fx * last), round(fy * last), diameter[size])
            for shape, colour, size, fx, fy in specs
        )
        if not all(boxes_apart(a, b, gap) for i, a in enumerate(objects) for b in objects[i + 1 :]):
            raise ValueError(f"example {name!r} overlaps at image_size={image_size}")
        scenes.append(Scene(f"example_{name}", image_size, objects))
    return scenes


def write_example_images(out_dir: Path, image_size: int = 64) -> list[dict[str, Any]]:
    """Writes four fixed example images with known scenes, plus ``examples.json``.

    The scenes are hand-placed, not sampled: a single small red circle off-centre on a plain
    background (for Grad-CAM localisation checks), a large and a small object, one object in
    each corner, and a small circle among large distractors.

    Args:
        out_dir: Folder to write ``example_<name>.png`` and ``examples.json`` into.
        image_size: Side of the square images in pixels.

    Returns:
        The scene descriptions (as in ``<split>_scenes.json``, plus a caption), with
        ``image`` giving the file name inside ``out_dir``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    described = []
    for scene in example_scenes(image_size):
        file_name = f"{scene.scene_id}.png"
        save_png(render_scene(scene), out_dir / file_name)
        described.append({**scene.to_dict(), "image": file_name, "caption": caption(scene)})
    _write_json(out_dir / "examples.json", described)
    return described
