"""Shared fixtures for training tests: a saved tiny model and generated LLaVA-JSON records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}


def write_records(folder: Path, n_images: int = 12, n_text: int = 0) -> Path:
    """Writes solid-colour images (two aspect ratios) and LLaVA records about them."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    records = []
    names = list(COLOURS)
    for i in range(n_images):
        colour = names[i % len(names)]
        size = (40, 28) if i % 2 else (32, 32)
        Image.new("RGB", size, COLOURS[colour]).save(folder / "images" / f"{i}.png")
        records.append(
            {
                "id": f"img-{i}",
                "image": f"{i}.png",
                "conversations": [
                    {"from": "human", "value": "<image>\nWhat colour is it?"},
                    {"from": "gpt", "value": f"It is {colour}."},
                ],
            }
        )
    for i in range(n_text):
        records.append(
            {
                "id": f"txt-{i}",
                "conversations": [
                    {"from": "human", "value": f"Count to {i % 3 + 1}."},
                    {"from": "gpt", "value": " ".join(str(k) for k in range(1, i % 3 + 2))},
                ],
            }
        )
    path = folder / "train.json"
    path.write_text(json.dumps(records))
    return path


@pytest.fixture(scope="session")
def tiny_dir(tiny_model_dir: Path) -> Path:
    """The shared tiny model folder (tests/conftest.py), under the name these tests use."""
    return tiny_model_dir


@pytest.fixture(scope="session")
def records_dir(tmp_path_factory) -> Path:
    """12 image records and 4 text-only records (train.json + images/)."""
    folder = tmp_path_factory.mktemp("records")
    write_records(folder, n_images=12, n_text=4)
    return folder


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared; tiny models gain nothing from threads
    yield
    torch.set_num_threads(threads)
