"""The collator and the placeholder expansion: mixed image/text-only batches, any budget."""

from __future__ import annotations

import pytest
import torch
from tiny_models import FIXTURE

from mqt_llava.data.collator import LlavaCollator, expand_image_placeholders
from mqt_llava.data.conversation import IGNORE_INDEX
from mqt_llava.data.llava_json import LlavaJsonDataset


def _records() -> list[dict]:
    def rec(i, human, answer, image=None):
        r = {
            "id": str(i),
            "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": answer}],
        }
        if image:
            r["image"] = image
        return r

    return [
        rec(0, "<image>\nWhat is shown?", "Noise.", "img0.png"),
        rec(1, "Tell me a long story about a cat and a dog.", "Once upon a time."),
        rec(2, "<image>\nDescribe it.", "A tall picture with colours.", "img1.png"),
    ]


@pytest.fixture(scope="module")
def setup(tiny):
    model, processor = tiny
    data = LlavaJsonDataset(_records(), processor, image_folder=FIXTURE / "images")
    collator = LlavaCollator(processor.tokenizer.pad_token_id, processor.image_token_id)
    return model, processor, data, collator


def test_mixed_batch_keeps_one_placeholder_per_image_and_stacks_only_real_images(setup):
    _, processor, data, collator = setup
    items = [data[i] for i in range(3)]
    batch = collator(items)
    assert tuple(batch["pixel_values"].shape) == (2, 3, 32, 32)  # the text-only row has none
    assert (batch["input_ids"] == processor.image_token_id).sum(1).tolist() == [1, 0, 1]
    lengths = [len(item["input_ids"]) for item in items]
    assert batch["attention_mask"].sum(1).tolist() == lengths
    for row, n in enumerate(lengths):  # right padding, labels ignored there
        assert (batch["input_ids"][row, n:] == processor.tokenizer.pad_token_id).all()
        assert (batch["labels"][row, n:] == IGNORE_INDEX).all()
    assert int(batch["num_skipped"]) == 0


@pytest.mark.parametrize("m", [1, 2, 7, 16])
def test_expansion_equals_the_processor_at_every_budget(setup, m):
    _, processor, data, collator = setup
    items = [data[i] for i in range(3)]
    expanded = expand_image_placeholders(
        collator(items), m, processor.image_token_id, processor.tokenizer.pad_token_id
    )
    assert expanded["num_visual_tokens"] == m
    for row, item in enumerate(items):
        prompt_ids = item["input_ids"].tolist()
        n_images = prompt_ids.count(processor.image_token_id)
        want = []
        for t in prompt_ids:
            want.extend([t] * (m if t == processor.image_token_id else 1))
        length = len(want)
        assert expanded["input_ids"][row, :length].tolist() == want
        assert int(expanded["attention_mask"][row].sum()) == len(prompt_ids) + n_images * (m - 1)
        labels = expanded["labels"][row]
        assert (
            labels[expanded["input_ids"][row] == processor.image_token_id] == IGNORE_INDEX
        ).all()
        # the learned tokens are the same, whatever the budget
        assert [y for y in labels.tolist() if y != IGNORE_INDEX] == [
            y for y in item["labels"].tolist() if y != IGNORE_INDEX
        ]


def test_expanded_batch_runs_through_the_model_at_two_budgets(setup):
    model, processor, data, collator = setup
    pad = processor.tokenizer.pad_token_id
    batch = collator([data[i] for i in range(3)])
    for m in (2, 16):
        inputs = expand_image_placeholders(batch, m, processor.image_token_id, pad)
        inputs.pop("num_skipped")
        with torch.no_grad():
            out = model(**inputs)
        assert torch.isfinite(out.loss)
        assert out.image_features.shape[0] == 2 * m


def test_collator_can_expand_itself_for_a_fixed_budget(setup):
    _, processor, data, _ = setup
    collator = LlavaCollator(processor.tokenizer.pad_token_id, processor.image_token_id, 5)
    batch = collator([data[0], data[1]])
    assert (batch["input_ids"] == processor.image_token_id).sum(1).tolist() == [5, 0]
    assert batch["num_visual_tokens"] == 5


def test_text_only_batch_has_no_pixels_and_no_budget(setup):
    _, processor, data, collator = setup
    batch = collator([data[1]])
    assert "pixel_values" not in batch
    out = expand_image_placeholders(batch, 8, processor.image_token_id, 0)
    assert "num_visual_tokens" not in out
    assert torch.equal(out["input_ids"], batch["input_ids"])


def test_empty_batch_is_refused(setup):
    with pytest.raises(ValueError, match="empty"):
        setup[3]([])
