"""`MQTLlava.ask_budgets` encodes the image once (at the largest budget) and slices per budget."""

from __future__ import annotations

import pytest

BUDGETS = [1, 4, 16, 64]


@pytest.fixture
def tower_calls(vlm):
    """Counts the vision tower's forward calls while the test runs."""
    calls = []
    handle = vlm.model.vision_tower.register_forward_hook(lambda *_: calls.append(1))
    yield calls
    handle.remove()


def test_ask_budgets_encodes_once_and_answers_as_separate_asks(vlm, examples, tower_calls):
    image, question = examples[0]
    answers = vlm.ask_budgets(image, question, BUDGETS, max_new_tokens=4)
    assert len(tower_calls) == 1
    assert [a.num_visual_tokens for a in answers] == BUDGETS
    separate = [vlm.ask(image, question, m, max_new_tokens=4) for m in BUDGETS]
    assert len(tower_calls) == 1 + len(BUDGETS)  # each separate ask encodes again
    assert [a.text for a in answers] == separate
    assert all(a.seconds > 0 for a in answers)


def test_ask_budgets_matches_ask_on_every_example(vlm, examples):
    for image, question in examples[1:]:
        answers = vlm.ask_budgets(image, question, [2, 8, 32], max_new_tokens=4)
        assert [a.text for a in answers] == [
            vlm.ask(image, question, m, max_new_tokens=4) for m in (2, 8, 32)
        ]


@pytest.mark.parametrize(
    ("budgets", "kwargs", "message"),
    [
        ([0, 4], {}, "between 1 and 64"),
        ([65], {}, "between 1 and 64"),
        ([4], {"max_new_tokens": 0}, "max_new_tokens must be at least 1"),
        ([4], {"temperature": -1.0}, "temperature must be >= 0"),
    ],
)
def test_ask_budgets_refuses_bad_settings_before_encoding(
    vlm, examples, tower_calls, budgets, kwargs, message
):
    image, question = examples[0]
    with pytest.raises(ValueError, match=message):
        vlm.ask_budgets(image, question, budgets, **kwargs)
    assert tower_calls == []
