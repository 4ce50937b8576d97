"""The budget sampler: policies, determinism per (seed, step), per-forward mode, bad policies."""

import pytest

from mqt_llava.training.sampler import BudgetSampler


@pytest.mark.parametrize(
    ("policy", "support"),
    [
        ("fixed:4", [4]),
        ("fixed:M", [16]),
        ("uniform-even", [2, 4, 6, 8, 10, 12, 14, 16]),
        ("uniform", list(range(1, 17))),
        ("log-uniform", list(range(1, 17))),
        ("choice:2,8,16", [2, 8, 16]),
    ],
)
def test_policies_draw_only_from_their_support(policy, support):
    sampler = BudgetSampler(policy, max_tokens=16, seed=3)
    assert sampler.support == support
    draws = [sampler(step) for step in range(300)]
    assert set(draws) <= set(support)
    if len(support) > 1:
        assert len(set(draws)) >= min(len(support), 6)  # not stuck on one value


def test_uniform_even_is_the_papers_set_at_m256():
    sampler = BudgetSampler("uniform-even", max_tokens=256, seed=0)
    assert sampler.support == list(range(2, 257, 2))
    assert all(sampler(s) % 2 == 0 for s in range(200))


def test_log_uniform_favours_small_budgets():
    sampler = BudgetSampler("log-uniform", max_tokens=256, seed=0)
    draws = [sampler(s) for s in range(2000)]
    small = sum(d <= 16 for d in draws)
    assert small > 0.4 * len(draws)  # uniform would give 6 %


def test_m_is_a_function_of_seed_and_step_only():
    a = BudgetSampler("uniform-even", max_tokens=16, seed=7)
    b = BudgetSampler("uniform-even", max_tokens=16, seed=7)
    steps = range(50)
    assert [a(s) for s in steps] == [b(s) for s in steps]
    # same m on every rank and micro-batch of a step
    assert all(
        a(s, micro_batch=k, rank=r) == a(s) for s in steps for k in range(3) for r in range(4)
    )
    other_seed = BudgetSampler("uniform-even", max_tokens=16, seed=8)
    assert [a(s) for s in steps] != [other_seed(s) for s in steps]


def test_per_forward_draws_anew_for_each_micro_batch_and_rank():
    sampler = BudgetSampler("uniform-even", max_tokens=256, seed=0, per_forward=True)
    micro = {sampler(5, micro_batch=k) for k in range(20)}
    ranks = {sampler(5, rank=r) for r in range(20)}
    assert len(micro) > 5 and len(ranks) > 5
    assert sampler(5, 2, 1) == sampler(5, 2, 1)  # still reproducible


@pytest.mark.parametrize(
    ("policy", "words"),
    [
        ("fixed:0", "between 1 and 16"),
        ("fixed:17", "between 1 and 16"),
        ("choice:2,x", "not an integer"),
        ("gaussian", "accepted"),
        ("fixed:", "accepted"),
    ],
)
def test_bad_policies_are_refused_with_the_accepted_forms(policy, words):
    with pytest.raises(ValueError, match=words):
        BudgetSampler(policy, max_tokens=16)
