"""LLaVA-JSON records: the release's label masks (plain, llava_v1), bad records, truncation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_models import FIXTURE

from mqt_llava.data.conversation import IGNORE_INDEX, BadRecordError, tokenize_record
from mqt_llava.data.llava_json import LlavaJsonDataset


@pytest.fixture(scope="module")
def processor(tiny):
    return tiny[1]


def _record(human: str, answer: str, image: str | None = "img0.png", **extra) -> dict:
    record = {
        "id": "r1",
        "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": answer}],
        **extra,
    }
    if image is not None:
        record["image"] = image
    return record


def _labelled_tokens(processor, sample) -> list[str]:
    ids = [y for y in sample.labels if y != IGNORE_INDEX]
    return processor.tokenizer.convert_ids_to_tokens(ids)


def test_llava_v1_labels_equal_the_releases_preprocess_v1(processor, manifest):
    """Oracle: input ids and labels the original code produced for case loss_m64."""
    case = next(c for c in manifest["cases"] if c["name"] == "loss_m64")
    record = _record("<image>\nWhat is shown in this image?", "A small picture with colored noise.")
    sample = tokenize_record(record, processor, "llava_v1", FIXTURE / "images")
    release_ids = [processor.image_token_id if t == -200 else t for t in case["input_ids"][0]]
    assert sample.input_ids == release_ids
    assert sample.labels == case["labels"][0]
    assert sum(y != IGNORE_INDEX for y in sample.labels) == case["num_answer_tokens"]


def test_llava_v1_multi_turn_masks_everything_but_each_answer_and_its_eos(processor):
    record = {
        "id": "multi",
        "image": "img0.png",
        "conversations": [
            {"from": "human", "value": "What is it?\n<image>"},  # <image> moves to the front
            {"from": "gpt", "value": "A red circle."},
            {"from": "human", "value": "And the colour?"},
            {"from": "gpt", "value": "Red."},
        ],
    }
    sample = tokenize_record(record, processor, "llava_v1", FIXTURE / "images")
    # Exact masks on the fixture tokenizer, as the release's round arithmetic yields them
    # (in round 2 the release keeps the "▁" that the answer's first word splits into).
    assert _labelled_tokens(processor, sample) == [
        *("▁A", "▁re", "d", "▁c", "i", "rc", "le", ".", "</s>"),
        *("▁", "R", "ed", ".", "</s>"),
    ]
    labelled = [i for i, y in enumerate(sample.labels) if y != IGNORE_INDEX]
    assert labelled == list(range(54, 63)) + list(range(85, 90))
    assert sample.input_ids[36] == processor.image_token_id  # after "USER: ", as released
    assert sample.labels[36] == IGNORE_INDEX


def test_plain_template_learns_caption_and_newline_only(processor):
    record = _record("Describe the image <image> please", "It is red.")
    sample = tokenize_record(record, processor, "plain", FIXTURE / "images")
    caption = processor.tokenizer("It is red.\n").input_ids[1:]  # the release drops the BOS
    # preprocess_plain: "<image>" + caption + "\n"; the human text is dropped
    assert sample.input_ids == [
        processor.tokenizer.bos_token_id,
        processor.image_token_id,
        *caption,
    ]
    assert sample.labels == [IGNORE_INDEX, IGNORE_INDEX, *caption]


def test_text_only_record_tokenizes_like_the_plain_tokenizer(processor):
    record = _record("Say hi.", "Hi!", image=None)
    sample = tokenize_record(record, processor, "llava_v1")
    prompt = processor.apply_template(
        [
            {"role": "user", "content": "Say hi."},
            {"role": "assistant", "content": "Hi!"},
        ],
        "llava_v1",
        add_generation_prompt=False,
    )
    assert sample.input_ids == processor.tokenizer(prompt).input_ids
    assert sample.images == []
    assert _labelled_tokens(processor, sample)[-1] == "</s>"


def test_long_text_is_cut_at_the_end_never_through_an_image(processor):
    record = _record("<image>\nWhat?", "word " * 200)
    full = tokenize_record(record, processor, "llava_v1", FIXTURE / "images")
    cut = tokenize_record(
        record, processor, "llava_v1", FIXTURE / "images", max_length=100, max_visual_tokens=16
    )
    assert len(cut.input_ids) + 15 == 100  # at m = M the sequence is exactly max_length
    assert cut.input_ids == full.input_ids[: len(cut.input_ids)]
    with pytest.raises(BadRecordError, match="too long"):
        tokenize_record(
            record, processor, "llava_v1", FIXTURE / "images", max_length=40, max_visual_tokens=16
        )


def test_release_round_mismatch_is_a_bad_record_not_a_silent_all_masked_sample(processor):
    record = _record("<image>\nQ?", "first</s>second")  # "</s>" in text breaks the rounds
    with pytest.raises(BadRecordError, match="tokenization mismatch"):
        tokenize_record(record, processor, "llava_v1", FIXTURE / "images")


def _write(tmp_path: Path, records: list[dict]) -> Path:
    path = tmp_path / "data.json"
    path.write_text(json.dumps(records))
    return path


BAD = [
    ({"id": "no-conv", "image": "img0.png"}, "no conversation"),
    (_record("<image>\nQ?", "A.", image=None) | {"id": "no-image"}, "0 image"),
    (_record("Q?", "A.") | {"id": "no-placeholder"}, "1 image"),
    (_record("<image>\nQ?", "A.", image="missing.png") | {"id": "missing-file"}, "not loadable"),
    (_record("<image>\nQ?", "A.", image="broken.png") | {"id": "broken-file"}, "not loadable"),
]


def test_skip_policy_counts_every_bad_record(tmp_path, processor):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    (tmp_path / "img0.png").write_bytes((FIXTURE / "images" / "img0.png").read_bytes())
    good = _record("<image>\nQ?", "A.") | {"id": "good"}
    data = LlavaJsonDataset(
        _write(tmp_path, [r for r, _ in BAD] + [good]), processor, image_folder=tmp_path
    )
    assert set(data.skipped_at_load) == {"no-conv", "no-image", "no-placeholder"}
    assert len(data) == 3  # the two files are found bad only when loaded
    items = [data[i] for i in range(len(data))]
    assert [item["id"] for item in items] == ["good"] * 3
    assert [item["num_skipped"] for item in items] == [2, 1, 0]


@pytest.mark.parametrize(("record", "reason"), BAD)
def test_fail_policy_names_the_record(tmp_path, processor, record, reason):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(BadRecordError, match=f"id={record['id']}.*{reason}"):
        data = LlavaJsonDataset(
            _write(tmp_path, [record]), processor, image_folder=tmp_path, bad_records="fail"
        )
        data[0]


def test_items_hold_one_placeholder_per_image_and_padded_pixels(tmp_path, processor):
    (tmp_path / "img1.png").write_bytes((FIXTURE / "images" / "img1.png").read_bytes())
    record = _record("<image>\nQ?", "A.", image="img1.png")  # 40x56: padded to a square
    item = LlavaJsonDataset(_write(tmp_path, [record]), processor, image_folder=tmp_path)[0]
    assert int((item["input_ids"] == processor.image_token_id).sum()) == 1
    assert tuple(item["pixel_values"].shape) == (1, 3, 32, 32)
    assert item["labels"].shape == item["input_ids"].shape


def test_modality_lengths_are_signed_word_counts(tmp_path, processor):
    records = [_record("<image>\nQ one?", "A b c."), _record("Q?", "Yes.", image=None)]
    data = LlavaJsonDataset(_write(tmp_path, records), processor, image_folder=tmp_path)
    assert data.modality_lengths == [6, -2]


def test_bad_arguments_are_refused(tmp_path, processor):
    path = _write(tmp_path, [_record("<image>\nQ?", "A.")])
    with pytest.raises(ValueError, match="template"):
        LlavaJsonDataset(path, processor, template="vicuna")
    with pytest.raises(ValueError, match="bad_records"):
        LlavaJsonDataset(path, processor, bad_records="ignore")
    with pytest.raises(FileNotFoundError):
        LlavaJsonDataset(tmp_path / "nope.json", processor)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        LlavaJsonDataset(tmp_path / "bad.json", processor)
    with pytest.raises(ValueError, match="No usable record"):
        LlavaJsonDataset([{"id": "x"}], processor)
