"""The automatic-budget engine: exact answers per budget, mixed batches, FLOP accounting."""

from __future__ import annotations

import pytest

from mqt_llava.inference.budget import (
    AUTO,
    PrefillCost,
    answer_batch,
    check_budget,
    generate_scored,
)
from mqt_llava.inference.policies import Escalation
from mqt_llava.perf.flops import count_mqt_flops

MAX_NEW = 6


@pytest.fixture(scope="module")
def cost(vlm):
    return PrefillCost(vlm.model.config)


def test_check_budget_accepts_integers_and_auto_only():
    assert check_budget(16, 64) == 16
    assert check_budget("auto", 64) == AUTO
    assert check_budget(" AUTO ", 64) == AUTO
    for bad in (0, 65, "16", 2.0, True, "automatic", None):
        with pytest.raises(ValueError, match="between 1 and 64 or 'auto'"):
            check_budget(bad, 64)


def test_prefill_cost_matches_the_flops_command(vlm, cost):
    rows = count_mqt_flops(vlm.model.config, [1, 16, 64], prompt_tokens=37)
    for row in rows:
        assert cost.fixed_gflops(37, row.num_visual_tokens) == pytest.approx(
            row.total_tflops * 1e3, rel=1e-9
        )
    # Automatic: encoded once at M, then one LLM prefill per attempt.
    expected = cost.vision_gflops + cost.connector_gflops(64)
    expected += cost.llm_gflops(37 + 4) + cost.llm_gflops(37 + 64)
    assert cost.auto_gflops(37, [4, 64]) == pytest.approx(expected)
    assert cost.llm_gflops(37 + 64) > cost.llm_gflops(37 + 4) > 0


def test_a_batch_of_mixed_budgets_answers_each_row_as_alone(vlm, examples, encoded):
    prompts, visual = encoded
    budgets = [1, 64, 4, 16]
    rows = generate_scored(vlm.model, vlm.processor, prompts, visual, budgets, MAX_NEW)
    for (image, question), m, (text, ids, first, mean) in zip(examples, budgets, rows, strict=True):
        assert text == vlm.ask(image, question, m, max_new_tokens=MAX_NEW)
        assert 0 < first <= 1 and mean <= 0
        assert vlm.processor.decode(ids, skip_special_tokens=True).strip() == text


def test_auto_and_fixed_rows_share_a_batch(vlm, examples, encoded, cost):
    prompts, visual = encoded
    always = Escalation(ladder=(1, 8, 64), threshold=1.0)  # never confident enough: every rung
    budgets = [AUTO, 16, AUTO, 2]
    out = answer_batch(vlm.model, vlm.processor, prompts, visual, budgets, always, MAX_NEW, cost)
    for (image, question), answer, budget in zip(examples, out, budgets, strict=True):
        tried = [a.num_visual_tokens for a in answer.attempts]
        if budget == AUTO:
            assert tried == [1, 8, 64] and answer.num_visual_tokens == 64
            assert answer.policy == "escalation"
            assert [a.text for a in answer.attempts] == [
                vlm.ask(image, question, m, max_new_tokens=MAX_NEW) for m in tried
            ]
        else:
            assert tried == [budget] and answer.policy == "fixed"
        assert answer.text == vlm.ask(image, question, answer.num_visual_tokens, max_new_tokens=6)
    text_tokens = len(vlm.processor.tokenize_prompt(prompts[0], [1])) - 1
    assert out[0].prefill_gflops == pytest.approx(cost.auto_gflops(text_tokens, [1, 8, 64]))
    text_tokens = len(vlm.processor.tokenize_prompt(prompts[1], [1])) - 1
    assert out[1].prefill_gflops == pytest.approx(cost.fixed_gflops(text_tokens, 16))
    assert out[0].usage()["attempted_budgets"] == [1, 8, 64]


def test_a_confident_first_answer_is_kept(vlm, encoded, cost):
    prompts, visual = encoded
    never = Escalation(ladder=(2, 64), threshold=0.0)
    out = answer_batch(vlm.model, vlm.processor, prompts, visual, [AUTO] * 4, never, MAX_NEW, cost)
    assert all([a.num_visual_tokens for a in ans.attempts] == [2] for ans in out)


def test_escalation_follows_the_confidence(vlm, encoded, cost):
    prompts, visual = encoded
    first = generate_scored(vlm.model, vlm.processor, prompts, visual, [1] * 4, MAX_NEW)
    confidences = sorted(row[2] for row in first)
    threshold = (confidences[1] + confidences[2]) / 2  # two rows under it, two over
    policy = Escalation(ladder=(1, 64), threshold=threshold)
    out = answer_batch(vlm.model, vlm.processor, prompts, visual, [AUTO] * 4, policy, MAX_NEW, cost)
    for row, answer in zip(first, out, strict=True):
        expected = [1] if row[2] >= threshold else [1, 64]
        assert [a.num_visual_tokens for a in answer.attempts] == expected


def test_auto_without_a_policy_is_refused(vlm, encoded):
    prompts, visual = encoded
    with pytest.raises(ValueError, match="needs a budget policy"):
        answer_batch(vlm.model, vlm.processor, prompts[:1], visual[:1], [AUTO], None, 4)


def test_escalation_validates_its_settings():
    with pytest.raises(ValueError, match="increasing"):
        Escalation(ladder=(16, 4))
    with pytest.raises(ValueError, match="threshold"):
        Escalation(threshold=1.5)
    with pytest.raises(ValueError, match="confidence"):
        Escalation(confidence="entropy")
