"""Our "pad" aspect handling against transformers' `LlavaImageProcessorPil(do_pad=True)`.

Below `MAX_CANVAS_SIDE` the two give identical pixels (same mean-colour rounding, same
placement); above it they differ on purpose: we downscale before padding so the canvas stays
bounded, the library pads at full size. See `mqt_llava.model.images.expand_to_square`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

from mqt_llava.model import MQTLlavaProcessor
from mqt_llava.model.images import MAX_CANVAS_SIDE, expand_to_square
from mqt_llava.model.presets import BUNDLED_MODEL_DIR


@pytest.fixture(scope="module")
def processors() -> tuple[MQTLlavaProcessor, LlavaImageProcessorPil]:
    ours = MQTLlavaProcessor.from_pretrained(BUNDLED_MODEL_DIR)
    clip = ours.image_processor
    library = LlavaImageProcessorPil(
        do_pad=True,
        size=clip.size,
        crop_size=clip.crop_size,
        image_mean=clip.image_mean,
        image_std=clip.image_std,
        resample=clip.resample,
    )
    return ours, library


def _noise(width: int, height: int, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


@pytest.mark.parametrize("size", [(37, 20), (20, 37), (64, 33), (5, 300), (64, 64), (640, 481)])
def test_identical_pixels_to_the_library_below_the_canvas_cap(processors, size) -> None:
    ours, library = processors
    image = _noise(*size)
    expected = library([image], return_tensors="pt")["pixel_values"]
    assert torch.equal(ours.preprocess_images([image]), expected)


def test_same_pad_colour_and_placement_on_the_canvas(processors) -> None:
    ours, library = processors
    image = _noise(7, 4)
    canvas = np.asarray(expand_to_square(image, ours.pad_color)).transpose(2, 0, 1)  # (3, 7, 7)
    padded = library.pad_to_square(np.asarray(image).transpose(2, 0, 1), ours.pad_color)
    assert np.array_equal(canvas, padded)
    assert ours.pad_color == (122, 116, 104)  # int(255 * CLIP mean), as the release rounds


def test_above_the_cap_we_downscale_first_and_the_library_does_not(processors) -> None:
    ours, library = processors
    image = _noise(MAX_CANVAS_SIDE + 952, 1000)  # 3000 x 1000
    assert expand_to_square(image, ours.pad_color).size == (MAX_CANVAS_SIDE, MAX_CANVAS_SIDE)
    full = library.pad_to_square(np.asarray(image).transpose(2, 0, 1), ours.pad_color)
    assert full.shape == (3, 3000, 3000)  # the library's canvas grows with the image
    # Both then resize to the backbone's 64 px, so the pixels differ only slightly.
    difference = (
        ours.preprocess_images([image]) - library([image], return_tensors="pt")["pixel_values"]
    )
    assert 0 < difference.abs().max() < 0.5
