"""`.jsonl` training data with bad lines: skipped and counted under `bad_records: skip`, refused
with the file's own line number under `fail`; id-less bad records are each counted."""

from __future__ import annotations

import json

import pytest
from tiny_models import FIXTURE

from mqt_llava.data.llava_json import BadRecordError, LlavaJsonDataset, load_records


@pytest.fixture(scope="module")
def processor(tiny):
    return tiny[1]


def good(i: int) -> dict:
    return {
        "id": f"good-{i}",
        "image": "img0.png",
        "conversations": [
            {"from": "human", "value": "<image>\nWhat is it?"},
            {"from": "gpt", "value": "A shape."},
        ],
    }


LINES = [
    json.dumps(good(0)),
    "",  # blank lines are skipped, but still numbered
    '{"id": "torn", "conversations": [{"from": "hum',  # line 3: a write cut short
    json.dumps(good(1)),
    "[1, 2, 3]",  # line 5: JSON, but not an object
    json.dumps({"conversations": []}),  # line 6: no id, no conversation
    json.dumps({"image": "x.png"}),  # line 7: no id either
    json.dumps(good(2)),
]


@pytest.fixture
def data_file(tmp_path):
    (tmp_path / "img0.png").write_bytes((FIXTURE / "images" / "img0.png").read_bytes())
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(LINES) + "\n")
    return path


def test_bad_lines_are_skipped_and_every_one_counted(data_file, processor):
    data = LlavaJsonDataset(data_file, processor, image_folder=data_file.parent)
    assert len(data) == 3
    assert [data[i]["id"] for i in range(3)] == ["good-0", "good-1", "good-2"]
    assert len(data.skipped_at_load) == 4  # the two id-less records are not merged into one
    assert set(data.skipped_at_load) == {"train.jsonl:3", "train.jsonl:5", "#4", "#5"}


def test_fail_names_the_line_of_the_file(data_file, processor):
    with pytest.raises(BadRecordError, match=r"line 3 of .*train\.jsonl"):
        LlavaJsonDataset(data_file, processor, image_folder=data_file.parent, bad_records="fail")
    with pytest.raises(ValueError, match=r"train\.jsonl, line 3: not a JSON object"):
        load_records(data_file)


def test_records_without_ids_are_counted_one_by_one(tmp_path, processor):
    records = [good(0)] + [{"image": "img0.png", "conversations": []} for _ in range(8)]
    data = LlavaJsonDataset(records, processor, image_folder=tmp_path)
    assert len(data.skipped_at_load) == 8  # was 1: all keyed "?"
