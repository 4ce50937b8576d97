"""The VQA answer normalisation against hand-worked cases from the official toolkit's rules."""

import pytest

from mqt_llava.evaluation.scorers.answer_normalization import (
    normalize_evalai_answer,
    normalize_vqa_answer,
    process_digit_article,
    process_punctuation,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Two", "2"),  # number words become digits...
        ("none", "0"),  # ...including "none"
        ("eleven", "eleven"),  # ...but only zero to ten
        ("The dog", "dog"),  # articles dropped
        ("an apple a day", "apple day"),
        ("dont", "don't"),  # contractions restored
        ("Im", "im"),  # the map's capitalised keys never fire: words are lower-cased first
        ("  Red   Car ", "red car"),  # whitespace collapsed
    ],
)
def test_digit_article(text, expected):
    assert process_digit_article(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hello-world", "hello world"),  # a mark touching no space becomes a space
        ("left - right", "left  right"),  # a mark next to a space is deleted (on every mark!)
        ("yes!", "yes "),  # "!" touches no space: becomes a space
        ("yes !", "yes "),  # " !" touches a space: deleted
        ("1,000", "1000"),  # digit,digit anywhere: every mark is deleted
        ("red, blue", "red blue"),  # ", " touches a space: deleted
        ("3.5", "3.5"),  # a decimal point survives
        ("end.", "end"),  # a period not before a digit goes
        ("v1.2.", "v1.2"),
        ("a:b", "a:b"),  # ":" and "'" are not in the toolkit's list
    ],
)
def test_punctuation(text, expected):
    assert process_punctuation(text) == expected


def test_punctuation_decides_on_the_input_text_not_the_running_output():
    # "(" is tested first; the text has " (" so every "(" goes. ")" has no neighbouring space in
    # the *input* ("(b)" ends the string), so it becomes a space, even though the output changed.
    assert process_punctuation("a (b)") == "a b "


def test_only_the_first_32_periods_are_stripped():
    # The toolkit passes re.UNICODE (32) where `re.sub` takes `count`.
    assert process_punctuation("." * 40) == "." * 8


@pytest.mark.parametrize(
    ("text", "vqa", "evalai"),
    [
        ("Two.", "2", "2"),
        ("Yes, there is.", "yes there is", "yes there is"),
        # EvalAI splits the possessive off; the VQA toolkit leaves it.
        ("The cat's toy", "cat's toy", "cat 's toy"),
        # EvalAI deletes every "?" and "," first, so "a,b" joins instead of splitting.
        ("x,y?", "x y", "xy"),
        ("Ten\tdogs\n", "10 dogs", "10 dogs"),
        ("e.g. two", "eg 2", "eg 2"),
    ],
)
def test_full_normalisers(text, vqa, evalai):
    assert normalize_vqa_answer(text) == vqa
    assert normalize_evalai_answer(text) == evalai
