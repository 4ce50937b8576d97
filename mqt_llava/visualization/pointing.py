"""Does a token's map point at the object? The pointing game on scenes with known boxes.

A map *hits* when its maximum lies inside the object's box, dilated by `dilate` patches on every
side, on the patch grid (Zhang et al., 2016, "Top-down neural attention by excitation
backprop", scored hits at the map's maximum with a 15-pixel tolerance; here the tolerance is one
patch). [`pointing_game`] plays it for the most relevant visual token of each budget on
single-object ShapesVQA scenes, whose boxes come from the generator, not from the image.

    >>> from mqt_llava.data.shapes_scene import single_object_scenes
    >>> scenes = single_object_scenes(40, seed=0)
    >>> records = pointing_game(vlm.model, vlm.processor, scenes, [8, 16, 64])
    >>> hit_rates(records)    # {(method, baseline, m): fraction of hits}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..data.shapes import PROMPT_SUFFIX
from ..data.shapes_scene import Scene, render_scene
from .grad_cam import gradcam

Box = tuple[int, int, int, int]


def box_patches(bbox: Box, image_size: int, grid: tuple[int, int], dilate: int = 1) -> Box:
    """Inclusive patch rows/cols `(r0, r1, c0, c1)` touched by a pixel box, dilated by patches.

    Args:
        bbox: `(x0, y0, x1, y1)` pixels of a square image, x1/y1 exclusive.
        image_size: Side of the (square, so unpadded) image in pixels.
        grid: `(rows, cols)` of the patch grid covering the image.
        dilate: Patches added on every side (clipped to the grid).
    """
    rows, cols = grid
    x0, y0, x1, y1 = bbox
    r0, r1 = math.floor(y0 * rows / image_size), math.ceil(y1 * rows / image_size) - 1
    c0, c1 = math.floor(x0 * cols / image_size), math.ceil(x1 * cols / image_size) - 1
    return (
        max(r0 - dilate, 0),
        min(r1 + dilate, rows - 1),
        max(c0 - dilate, 0),
        min(c1 + dilate, cols - 1),
    )


def peak_patch(cam: np.ndarray) -> tuple[int, int]:
    """`(row, col)` of a map's maximum (the first one, row-major, on ties)."""
    row, col = np.unravel_index(int(np.argmax(cam)), cam.shape)
    return int(row), int(col)


def hits(cam: np.ndarray, bbox: Box, image_size: int, dilate: int = 1) -> bool:
    """Whether the map's maximum lies in the object's box dilated by `dilate` patches."""
    r0, r1, c0, c1 = box_patches(bbox, image_size, cam.shape, dilate)
    row, col = peak_patch(cam)
    return r0 <= row <= r1 and c0 <= col <= c1


def pointing_game(
    model,
    processor,
    scenes: Iterable[Scene],
    budgets: Sequence[int],
    settings: Sequence[tuple[str, str]] = (("gradcam", "mean"),),
    template: str = "llava_v1",
    dilate: int = 1,
) -> list[dict[str, Any]]:
    """Plays the pointing game with the most relevant token of each budget.

    For each single-object scene the question is "What colour is the <shape>?" (with the
    ShapesVQA answer suffix); the maps explain the model's own greedy answer (`target="answer"`)
    and the most relevant token is the one with the largest map mass
    ([`GradCAMResult.most_relevant_token`]).

    Args:
        model: The model.
        processor: Its processor.
        scenes: Scenes of exactly one object each (e.g.
            `mqt_llava.data.shapes_scene.single_object_scenes`).
        budgets: Budgets m.
        settings: `(method, baseline)` pairs of [`gradcam`] to compare.
        template: Chat template of the prompt.
        dilate: Tolerance in patches around the object's box.

    Returns:
        One record per scene, setting and budget: `scene`, `size`, `method`, `baseline`, `m`,
        `token`, `peak`, `hit` and whether the answer was right (`correct`).
    """
    records = []
    for scene in scenes:
        if len(scene.objects) != 1:
            raise ValueError(f"{scene.scene_id}: the pointing game needs one object per scene.")
        (obj,) = scene.objects
        question = f"What colour is the {obj.shape}? {PROMPT_SUFFIX}"
        image = render_scene(scene)
        for method, baseline in settings:
            result = gradcam(
                model, processor, image, question, budgets, "all", "answer", method, baseline,
                template=template, max_new_tokens=4,
            )  # fmt: skip
            for m in budgets:
                token = result.most_relevant_token(m)
                cam = result.raw[m][token]
                records.append(
                    {
                        "scene": scene.scene_id, "size": obj.size, "method": method,
                        "baseline": baseline, "m": m, "token": token, "peak": peak_patch(cam),
                        "hit": hits(cam, obj.bbox, scene.image_size, dilate),
                        "correct": result.answers[m] == obj.colour,
                    }
                )  # fmt: skip
    return records


def hit_rates(records: Iterable[dict[str, Any]], by: Sequence[str] = ("method", "baseline", "m")):
    """Fraction of hits per group of `by` keys: `{(values...): rate}`."""
    groups: dict[tuple, list[bool]] = {}
    for record in records:
        groups.setdefault(tuple(record[k] for k in by), []).append(record["hit"])
    return {key: sum(v) / len(v) for key, v in groups.items()}
