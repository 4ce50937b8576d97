"""The pointing game: box-to-patch geometry, hits, the scenes, and a run on a tiny model."""

from __future__ import annotations

import numpy as np
import pytest

from mqt_llava.data.shapes_scene import render_scene, single_object_scenes
from mqt_llava.visualization.pointing import (
    box_patches,
    hit_rates,
    hits,
    peak_patch,
    pointing_game,
)


def test_box_patches_and_peak_patch():
    # the example's circle: box x 42..48, y 15..21 of 64 px; 8 px patches -> cols 5-6, rows 1-2
    assert box_patches((42, 15, 49, 22), 64, (8, 8), dilate=0) == (1, 2, 5, 6)
    assert box_patches((42, 15, 49, 22), 64, (8, 8)) == (0, 3, 4, 7)
    assert box_patches((42, 15, 49, 22), 64, (16, 16)) == (2, 6, 9, 13)
    assert box_patches((0, 0, 4, 4), 64, (8, 8)) == (0, 1, 0, 1)  # clipped at the border
    cam = np.zeros((8, 8))
    cam[2, 6] = 1.0
    assert peak_patch(cam) == (2, 6)


def test_hits_within_the_dilated_box_only():
    cam = np.zeros((8, 8))
    box = (42, 15, 49, 22)  # rows 1-2, cols 5-6 undilated
    cam[3, 7] = 1.0  # one patch off diagonally: inside with one patch of tolerance
    assert hits(cam, box, 64) and not hits(cam, box, 64, dilate=0)
    cam[3, 7], cam[5, 5] = 0.0, 1.0  # three rows below: outside
    assert not hits(cam, box, 64)


def test_single_object_scenes_are_reproducible_varied_and_inside_the_image():
    scenes = single_object_scenes(60, seed=3)
    assert scenes == single_object_scenes(60, seed=3) != single_object_scenes(60, seed=4)
    objects = [s.objects[0] for s in scenes]
    assert all(len(s.objects) == 1 for s in scenes)
    assert {o.size for o in objects} == {"small", "large"} and len({o.shape for o in objects}) == 4
    for o in objects:
        x0, y0, x1, y1 = o.bbox
        assert min(x0, y0) >= 0 and max(x1, y1) <= 64
    image = np.asarray(render_scene(scenes[0]))
    x0, y0, x1, y1 = objects[0].bbox
    background = np.ones(image.shape[:2], bool)
    background[y0:y1, x0:x1] = False
    assert (image[background] == image[0, 0]).all()  # everything outside the box is background
    with pytest.raises(ValueError, match="at least 1"):
        single_object_scenes(0)


def test_pointing_game_on_a_tiny_model(tiny):
    model, processor = tiny
    scenes = single_object_scenes(3, seed=0)
    settings = [("gradcam", "mean"), ("gradxact", "zero")]
    records = pointing_game(model, processor, scenes, [4, 16], settings)
    assert len(records) == 3 * 2 * 2
    for r in records:
        assert 0 <= r["token"] < r["m"] and isinstance(r["hit"], bool)
        assert (r["method"], r["baseline"]) in settings
    rates = hit_rates(records)
    assert set(rates) == {(*s, m) for s in settings for m in (4, 16)}
    assert all(0.0 <= v <= 1.0 for v in rates.values())
    two = single_object_scenes(2)
    crowded = type(two[0])("two", 64, (two[0].objects[0], two[1].objects[0]))
    with pytest.raises(ValueError, match="one object per scene"):
        pointing_game(model, processor, [crowded], [4])
