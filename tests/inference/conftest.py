"""Budget-policy fixtures: the bundled ShapesVQA model (real answers, M = 64) and its prompts."""

from __future__ import annotations

from pathlib import Path

import pytest

import mqt_llava
from mqt_llava.inference.pipeline import BUNDLED_MODEL_DIR

EXAMPLES = BUNDLED_MODEL_DIR.parent.parent / "assets" / "examples"
SUFFIX = " Answer the question using a single word or phrase."
QUESTIONS = [
    ("example_large_and_small.png", "What colour is the square?"),
    ("example_single_small.png", "What shape is the red object?"),
    ("example_four_corners.png", "How many objects are there?"),
    ("example_small_among_large.png", "Is there a red circle?"),
]


@pytest.fixture(scope="session")
def vlm():
    return mqt_llava.load(device="cpu")


@pytest.fixture(scope="session")
def examples() -> list[tuple[Path, str]]:
    return [(EXAMPLES / image, question + SUFFIX) for image, question in QUESTIONS]


@pytest.fixture(scope="session")
def encoded(vlm, examples):
    """(prompts, per-row (1, M, D) visual tokens) of the four example questions."""
    from mqt_llava.inference.generation import encode_images

    model, processor = vlm.model, vlm.processor
    visual = encode_images(model, processor, [image for image, _ in examples], 64)
    prompts = [processor.build_prompt(q, 1, "llava_v1") for _, q in examples]
    return prompts, [visual[i : i + 1] for i in range(len(prompts))]
