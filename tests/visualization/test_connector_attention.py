"""The connector's attention maps: shape, reference values, image (in)dependence by key source."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import build_tiny

from mqt_llava.data.shapes import write_example_images
from mqt_llava.visualization import connector_attention


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    out = tmp_path_factory.mktemp("examples")
    write_example_images(out)
    return out / "example_single_small.png", out / "example_four_corners.png"


@pytest.fixture(scope="module")
def content_model():
    return build_tiny(key_source="content")


def _reference(connector, m: int) -> torch.Tensor:
    """(heads, m, N) position-key attention computed from the parameters, independently."""
    c = connector
    heads = c.attn.num_heads
    w_q, w_k, _ = c.attn.in_proj_weight.chunk(3)
    b_q, b_k, _ = c.attn.in_proj_bias.chunk(3)
    q = c.ln_q(c.query[:m] + c.pos_embed[:m]) @ w_q.T + b_q  # (m, C)
    k = c.ln_k(c.key_positions(64)) @ w_k.T + b_k  # (N, C)
    q = q.reshape(m, heads, -1).transpose(0, 1)  # (h, m, d)
    k = k.reshape(64, heads, -1).transpose(0, 1)  # (h, N, d)
    return (q @ k.transpose(1, 2) / q.shape[-1] ** 0.5).softmax(-1)


def test_maps_have_the_grid_shape_sum_to_one_and_match_a_reference(tiny):
    model, _ = tiny
    maps = connector_attention(model, [4, 16])
    assert sorted(maps) == [4, 16]
    assert maps[4].shape == (4, 8, 8) and maps[16].shape == (16, 8, 8)
    assert np.isfinite(maps[16]).all()
    np.testing.assert_allclose(maps[16].sum((1, 2)), 1.0, atol=1e-5)
    assert maps[16].std(axis=(1, 2)).min() > 0  # no query attends uniformly
    with torch.no_grad():
        ref = _reference(model.connector, 16)  # (h, 16, 64)
    np.testing.assert_allclose(maps[16], ref.mean(0).reshape(16, 8, 8), atol=1e-6)
    head = connector_attention(model, 16, head=2)[16]
    np.testing.assert_allclose(head, ref[2].reshape(16, 8, 8), atol=1e-6)
    assert np.abs(head - maps[16]).max() > 1e-4


def test_maps_differ_between_queries_and_smaller_budgets_are_a_prefix(tiny):
    model, _ = tiny
    maps = connector_attention(model, [4, 16])
    assert np.abs(maps[16][0] - maps[16][1]).max() > 1e-4
    np.testing.assert_allclose(maps[4], maps[16][:4], atol=1e-6)  # prefix property


def test_position_keys_give_the_same_map_for_every_image(tiny, images):
    model, processor = tiny
    without = connector_attention(model, 8)[8]
    first, second = (connector_attention(model, 8, img, processor)[8] for img in images)
    np.testing.assert_allclose(first, without, atol=1e-6)
    np.testing.assert_allclose(second, without, atol=1e-6)


def test_content_keys_depend_on_the_image_and_need_one(content_model, images):
    model, processor = content_model
    first, second = (connector_attention(model, 8, img, processor)[8] for img in images)
    assert np.abs(first - second).max() > 1e-4
    pixels = processor.preprocess_images([images[0]])  # pixel values are accepted as well
    np.testing.assert_allclose(connector_attention(model, 8, pixels[0])[8], first, atol=1e-6)
    with pytest.raises(ValueError, match="content keys"):
        connector_attention(model, 8)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"budgets": 17}, "between 1 and 16"),
        ({"budgets": []}, "budgets is empty"),
        ({"head": 4}, r"head must be None \(mean over heads\) or 0..3"),
        ({"head": -1}, "head must be"),
        ({"image": "x.png"}, "pass the processor"),
        ({"image": torch.zeros(2, 3, 32, 32)}, r"\(3, H, W\) or \(1, 3, H, W\)"),
    ],
)
def test_bad_arguments(tiny, kwargs, message):
    model, _ = tiny
    with pytest.raises(ValueError, match=message):
        connector_attention(model, **{"budgets": 4, **kwargs})
