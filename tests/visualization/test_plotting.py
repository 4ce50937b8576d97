"""Overlays and the grid figure."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mqt_llava.visualization.plotting import display_image, overlay, save_grid, upsample


def test_upsample_is_bilinear_and_keeps_the_range():
    cam = np.array([[0.0, 1.0], [0.0, 1.0]], dtype=np.float32)
    big = upsample(cam, (40, 20))  # (width, height)
    assert big.shape == (20, 40)
    assert big.min() >= 0 and big.max() <= 1
    assert big[:, 0].max() < 0.05 and big[:, -1].min() > 0.95  # the edges keep their values
    assert 0.3 < big[10, 20] < 0.7  # and the middle is blended, not a nearest-neighbour step
    np.testing.assert_allclose(upsample(np.full((3, 3), 0.25), (9, 9)), 0.25, atol=1e-6)


def test_small_images_are_enlarged_for_display():
    assert display_image(Image.new("RGB", (32, 32))).size == (224, 224)
    assert display_image(Image.new("RGB", (48, 48))).size == (240, 240)
    assert display_image(Image.new("RGB", (336, 336))).size == (336, 336)


def test_overlay_colours_follow_the_map():
    image = Image.new("RGB", (32, 32), (128, 128, 128))
    cam = np.zeros((8, 8), dtype=np.float32)
    cam[:, 4:] = 1.0  # right half hot
    out = np.asarray(overlay(image, cam)).astype(int)
    assert out.shape == (224, 224, 3)
    left, right = out[100, 10], out[100, 210]
    assert left[2] > left[0]  # jet: cold is blue
    assert right[0] > right[2]  # hot is red
    # "max" scales a map to its maximum; "minmax" stretches its range (attention maps)
    np.testing.assert_array_equal(np.asarray(overlay(image, cam * 0.01)), out)
    np.testing.assert_array_equal(
        np.asarray(overlay(image, cam * 0.01 + 0.5, normalise="minmax")), out
    )
    flat = np.asarray(overlay(image, cam * 0.01 + 0.5, normalise=None)).astype(int)
    assert np.abs(flat[100, 10] - flat[100, 210]).max() < 10  # 0.5 vs 0.51: nearly one colour
    with pytest.raises(ValueError, match="normalise"):
        overlay(image, cam, normalise="sum")


def test_grid_figure_has_a_row_per_budget_and_a_column_per_token(tmp_path):
    image = Image.new("RGB", (32, 32), (190, 190, 190))
    rng = np.random.default_rng(0)
    maps = {m: {k: rng.random((8, 8)) for k in range(min(m, 3))} for m in (2, 8)}
    path = save_grid(image, maps, tmp_path / "grid.png", title="t", row_labels={2: "re\x06d"})
    with Image.open(path) as saved:
        width, height = saved.size
    assert path.stat().st_size < 150_000
    # 4 columns (image + tokens 0..2) by 2 rows of square cells, plus a title strip
    assert width == pytest.approx(4 / 2 * (height - 0.3 * 80), rel=0.05)
