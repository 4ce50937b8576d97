"""Helpers to write tiny benchmark files for the scorer tests."""

import json
from pathlib import Path

import pytest


@pytest.fixture
def write_jsonl(tmp_path: Path):
    """Writes a list of dicts as JSONL under tmp_path and returns the path."""

    def write(name: str, records: list[dict]) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        return path

    return write


@pytest.fixture
def write_json(tmp_path: Path):
    """Writes an object as JSON under tmp_path and returns the path."""

    def write(name: str, obj) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj), encoding="utf-8")
        return path

    return write


@pytest.fixture
def write_answers(write_jsonl):
    """Writes a LLaVA-1.5 answer file from ``(question_id, text[, prompt])`` tuples."""

    def write(name: str, rows: list[tuple]) -> Path:
        records = [
            {"question_id": row[0], "prompt": row[2] if len(row) > 2 else "", "text": row[1],
             "answer_id": str(i), "model_id": "tiny", "metadata": {}}
            for i, row in enumerate(rows)
        ]  # fmt: skip
        return write_jsonl(name, records)

    return write


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random MQT-LLaVA (M = 16, 32x32 images) saved as a loadable model folder.

    It overrides the shared `tiny_model_dir` of tests/conftest.py on purpose: these tests need
    a connector whose visual tokens differ (below).
    """
    import torch
    from tiny_models import build_tiny  # imported here: the scorer tests stay torch-free

    model, processor = build_tiny()
    # At random init every query attends almost uniformly, so all visual tokens of an image are
    # nearly equal and a test could not tell the first m tokens from any other m. Sharpening the
    # connector's query projection makes each token distinct (and answers depend on which).
    width = model.connector.query.shape[1]
    with torch.no_grad():
        model.connector.attn.in_proj_weight[:width].mul_(400.0)
    folder = tmp_path_factory.mktemp("tiny-model")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models run much faster on one thread on a busy shared machine (measured: a 6-question
    two-budget run takes 0.3 s on one thread, 2-6 s on two); restored after each test."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
