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
