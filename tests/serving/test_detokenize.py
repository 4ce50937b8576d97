"""Streaming detokenization: pieces that add up to the answer, stop strings, limits."""

from __future__ import annotations

import threading

import pytest

from mqt_llava.serving.detokenize import StreamDecoder, held_back

EOS = 0
# A byte-level toy vocabulary: "é" is split over two tokens, as byte-fallback tokenizers do.
VOCAB = {1: b"hel", 2: b"lo", 3: b" w", 4: b"orld", 5: b"\xc3", 6: b"\xa9", 7: b" ", 8: b"!"}


class ByteTokenizer:
    def decode(self, ids, skip_special_tokens=True):
        return b"".join(VOCAB[i] for i in ids).decode("utf-8", errors="replace")


def decode(tokens, stops=(), max_tokens=100, cancel_after=None):
    pieces, finished = [], []
    cancelled = threading.Event()
    decoder = StreamDecoder(ByteTokenizer(), {EOS}, stops, max_tokens, pieces.append,
                            lambda reason, n: finished.append((reason, n)), cancelled)  # fmt: skip
    for i, token in enumerate(tokens):
        if cancel_after is not None and i == cancel_after:
            cancelled.set()
        decoder.push(token)
    decoder.finish("length")
    return pieces, finished


def test_pieces_add_up_and_never_split_a_character():
    pieces, finished = decode([7, 1, 2, 3, 5, 6, 8, EOS, 1])
    assert "".join(pieces) == "hello wé!"  # the leading space of the answer is dropped
    assert "\ufffd" not in "".join(pieces) and len(pieces) >= 4
    assert finished == [("stop", 8)]  # end-of-sequence counted, tokens after it ignored


@pytest.mark.parametrize(
    "stops,text", [(["lo w"], "hel"), (["orld", "o w"], "hell"), (["é"], "hello w"), (["x"], None)]
)
def test_a_stop_string_ends_the_answer_even_across_tokens(stops, text):
    pieces, finished = decode([1, 2, 3, 5, 6, 4], stops=stops)
    if text is None:  # no stop string: the whole answer, to the length limit
        assert "".join(pieces) == "hello wéorld" and finished == [("length", 6)]
    else:
        assert "".join(pieces) == text and finished[0][0] == "stop"


def test_max_tokens_and_cancellation():
    pieces, finished = decode([1, 2, 3, 4], max_tokens=2)
    assert "".join(pieces) == "hello" and finished == [("length", 2)]
    pieces, finished = decode([1, 2, 3, 4], cancel_after=2)
    assert finished == [] and "".join(pieces) == "hello"  # quiet once cancelled


@pytest.mark.parametrize(
    "text,stops,held",
    [("hello wor", ("world",), 3), ("hello", ("world",), 0), ("ab", ("b", "abc"), 2),
     ("", ("x",), 0), ("xyz", (), 0)],
)  # fmt: skip
def test_held_back_is_the_longest_possible_start_of_a_stop(text, stops, held):
    assert held_back(text, stops) == held
