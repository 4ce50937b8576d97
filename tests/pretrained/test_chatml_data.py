"""Training records in SmolLM2's own chat template (`chatml`): what carries loss."""

from __future__ import annotations

import pytest

from mqt_llava.data.conversation import IGNORE_INDEX, tokenize_record
from mqt_llava.pretrained.assemble import SMOLLM2_DIR

RECORD = {
    "id": "r0",
    "conversations": [
        {"from": "human", "value": "<image>\nWhat colour is the square?"},
        {"from": "gpt", "value": "blue"},
        {"from": "human", "value": "And the triangle?"},
        {"from": "gpt", "value": "The triangle is yellow."},
    ],
}


@pytest.fixture(scope="module")
def processor(backbones):
    from transformers import AutoTokenizer, BitImageProcessorPil

    from mqt_llava.model import MQTLlavaProcessor

    tokenizer = AutoTokenizer.from_pretrained(backbones / SMOLLM2_DIR)
    return MQTLlavaProcessor(BitImageProcessorPil(), tokenizer, num_queries=4, num_visual_tokens=4)


def test_only_the_answers_and_their_end_of_turn_carry_loss(processor, tmp_path):
    (tmp_path / "a.png").write_bytes(b"")  # records are tokenized without opening images
    record = {**RECORD, "image": "a.png"}
    sample = tokenize_record(record, processor, "chatml", image_folder=tmp_path)
    learned = [y for y in sample.labels if y != IGNORE_INDEX]
    text = processor.tokenizer.decode(learned)
    assert text == "blue<|im_end|>The triangle is yellow.<|im_end|>"
    assert sample.input_ids.count(processor.image_token_id) == 1
    prompt = processor.tokenizer.decode(sample.input_ids)
    assert prompt.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert "<|im_start|>user\n<image>\nWhat colour is the square?<|im_end|>" in prompt
