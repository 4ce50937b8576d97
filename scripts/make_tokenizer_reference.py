"""Writes the release tokenizer's ids for many prompts, computed by the original code's stack.

Run it in a separate environment with the release's tokenizer stack, `transformers==4.37.2`
(the slow, sentencepiece-backed `LlamaTokenizer`), `sentencepiece` and `protobuf`:

    python -m venv /tmp/tf437
    /tmp/tf437/bin/pip install transformers==4.37.2 sentencepiece protobuf
    /tmp/tf437/bin/python scripts/make_tokenizer_reference.py \
        tests/data/llama-tokenizer/reference_ids.json

For each tokenizer (LLaMA's real vocabulary, rebuilt in `tests/data/llama-tokenizer`, and the
parity fixture's), it loads `LlamaTokenizer(legacy=False)` as the release does and runs the
release's `tokenizer_image_token` (llava/mm_utils.py: the text around each `<image>` tokenized
separately, BOS kept once, each `<image>` replaced by IMAGE_TOKEN_INDEX = -200). The test suite
compares a converted checkpoint's processor with these ids (tests/model/test_release_tokenizer.py).
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import tempfile
from pathlib import Path

import transformers
from transformers import LlamaTokenizer

IMAGE_TOKEN_INDEX = -200
ROOT = Path(__file__).resolve().parent.parent
SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)


def tokenizer_image_token(prompt: str, tokenizer) -> list[int]:
    """The release's function (llava/mm_utils.py), restated."""
    chunks = [tokenizer(chunk).input_ids for chunk in prompt.split("<image>")]
    ids, offset = [], 0
    if chunks and chunks[0] and chunks[0][0] == tokenizer.bos_token_id:
        offset = 1
        ids.append(chunks[0][0])
    separated = [x for chunk in chunks for x in (chunk, [IMAGE_TOKEN_INDEX] * (offset + 1))][:-1]
    for x in separated:
        ids.extend(x[offset:])
    return ids


def prompts(seed: int = 0, count: int = 400) -> list[str]:
    """Hand-written prompts, then random ones mixing spaces, newlines, unicode and digits."""
    fixed = [
        f"{SYSTEM} USER: <image>\nWhat is shown in this image? ASSISTANT:",
        f"{SYSTEM} USER: <image>\nCompare the first picture <image> with this one. ASSISTANT:",
        "<image>\nCompare the first picture <image> with this one.",
        f"{SYSTEM} USER: <image>\nWhat colour is it? ASSISTANT: Blue.</s>USER:  And the shape? "
        "ASSISTANT:",
        f"{SYSTEM} USER: <image>\n leading space ASSISTANT:",
        "<image> leading",
        " leading",
        "trailing ",
        "  two leading spaces",
        "<image><image>\n",
        "<image>A caption of the picture.\n",
        "<image>\n\n\nmany newlines\n\n",
        "Numbers: 2024, 3.14159 and 1,000,000 <image> 42",
        "unicode: café, naïve, 漢字, Ꙋ, 🦙 <image> 🦙 again",
        "tabs\tand\t\ttabs <image>\t<image> end",
        "a ▁ literal underscore piece ▁▁ <image>▁start",
        "</s> starts with a special token <image></s>ends",
        "",
        " ",
        "<image>",
        " <image> ",
    ]
    rng = random.Random(seed)
    words = ["the", "cat", "Image", "picture", "12", "3.5", "é", "漢", "🦙", "ok?", "</s>", "-"]
    spaces = ["", " ", "  ", "\n", " \n", "\t", "\n\n"]
    generated = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(0, 8)):
            parts.append(rng.choice(spaces))
            parts.append(rng.choice(words + ["<image>"] * 2))
        parts.append(rng.choice(spaces))
        generated.append("".join(parts))
    return fixed + generated


def reference(folder: Path, texts: list[str]) -> list[dict]:
    tokenizer = LlamaTokenizer.from_pretrained(folder, legacy=False)
    assert not tokenizer.legacy
    return [{"prompt": t, "ids": tokenizer_image_token(t, tokenizer)} for t in texts]


def main() -> None:
    out = Path(sys.argv[1])
    texts = prompts()
    fixture = ROOT / "tests/data/original-tiny/checkpoint"
    with tempfile.TemporaryDirectory() as tmp:  # LLaMA's model with the release's config
        shutil.copy(ROOT / "tests/data/llama-tokenizer/tokenizer.model", tmp)
        for name in ("tokenizer_config.json", "special_tokens_map.json"):
            shutil.copy(fixture / name, tmp)
        llama = reference(Path(tmp), texts)
    payload = {
        "generator": f"transformers {transformers.__version__} LlamaTokenizer(legacy=False) "
        "and the release's tokenizer_image_token",
        "image_token_index": IMAGE_TOKEN_INDEX,
        "tokenizers": {"llama": llama, "fixture": reference(fixture, texts)},
    }
    out.write_text(json.dumps(payload, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(texts)} prompts x 2 tokenizers to {out}")


if __name__ == "__main__":
    main()
