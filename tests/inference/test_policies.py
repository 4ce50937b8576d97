"""Router, latency target, policy files and the offline replay used for calibration."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from mqt_llava.inference.budget import (
    AUTO,
    POLICY_FILE,
    PrefillCost,
    RowContext,
    answer_batch,
    generate_scored,
    load_policy,
)
from mqt_llava.inference.policies import CostModel, Escalation, LatencyTarget, Router
from mqt_llava.inference.policies.router import choose, router_features, train_router
from mqt_llava.inference.policies.simulate import (
    SweepTable,
    chosen_point,
    escalation_point,
    fixed_points,
    interpolate_fixed,
    oracle_point,
    pareto,
)


def test_router_learns_which_budget_suffices():
    # Feature 0 says whether the question is hard (needs the second budget).
    gen = torch.Generator().manual_seed(0)
    hard = torch.rand(400, generator=gen) > 0.5
    features = torch.stack([hard.float(), torch.randn(400, generator=gen)], 1)
    correct = torch.stack([~hard, torch.ones(400, dtype=torch.bool)], 1)
    net = train_router(features, correct, hidden=8, steps=300, lr=0.05)
    router = Router(net, [4, 64], slack=0.1)
    picked = choose(router.predict(features), router.ladder, router.slack)
    assert picked == [64 if h else 4 for h in hard.tolist()]
    assert choose(router.predict(features), [4, 64], 1.0) == [4] * 400  # slack 1: smallest


def test_router_weights_round_trip_through_a_policy_file(tmp_path, vlm, encoded):
    prompts, visual = encoded
    rows = [RowContext(p, v, 0) for p, v in zip(prompts, visual, strict=True)]
    features = router_features(vlm.model, vlm.processor, rows, 4)
    assert features.shape == (4, 3 * vlm.model.config.text_config.hidden_size)
    correct = torch.tensor([[1, 1], [0, 1], [0, 0], [1, 1]], dtype=torch.bool)
    router = Router(train_router(features, correct, steps=50), [4, 64], probe=4, slack=0.05)
    spec = router.save(tmp_path)
    (tmp_path / "policy.json").write_text(json.dumps(spec))
    loaded = load_policy(tmp_path / "policy.json")
    assert isinstance(loaded, Router) and loaded.to_dict() == spec
    assert torch.equal(loaded.predict(features), router.predict(features))
    chosen = loaded.first(rows, vlm.model, vlm.processor)
    assert chosen == choose(router.predict(features), [4, 64], 0.05)
    out = answer_batch(vlm.model, vlm.processor, prompts, visual, [AUTO] * 4, loaded, 4)
    assert [a.num_visual_tokens for a in out] == chosen
    assert all(len(a.attempts) == 1 and a.policy == "router" for a in out)


def test_cost_model_fits_a_bench_result_and_the_target_picks_the_largest_fitting_budget(
    tmp_path, vlm, encoded
):
    rows = [{"context_tokens": 60 + m, "prefill_ms": 10.0 + 0.5 * (60 + m)} for m in (1, 16, 64)]
    (tmp_path / "bench.json").write_text(json.dumps({"rows": rows, "baseline": {}}))
    model = CostModel.from_bench(tmp_path / "bench.json")
    assert model.intercept_ms == pytest.approx(10.0) and model.per_token_ms == pytest.approx(0.5)
    prompts, visual = encoded
    text = len(vlm.processor.tokenize_prompt(prompts[0], [1])) - 1
    ms = model.predict_ms(text + 20) + 0.1  # budget 20 fits, 21 does not
    policy = LatencyTarget(max_prefill_ms=ms, cost_model=model)
    row = RowContext(prompts[0], visual[0], text)
    assert policy.first([row], vlm.model, vlm.processor) == [20]
    assert LatencyTarget(max_prefill_ms=0.001, cost_model=model).first([row], vlm.model, None) == [
        1
    ]
    cost = PrefillCost(vlm.model.config)
    flops = LatencyTarget(max_prefill_gflops=cost.fixed_gflops(text, 8), ladder=[1, 4, 8, 16, 64])
    assert flops.first([row], vlm.model, None) == [8]
    spec = {"policy": "latency", "max_prefill_ms": ms, "cost_model": "bench.json"}
    (tmp_path / "latency.json").write_text(json.dumps(spec))
    assert load_policy(tmp_path / "latency.json").first([row], vlm.model, None) == [20]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "exactly one"),
        ({"max_prefill_ms": 5.0}, "needs a cost model"),
        ({"max_prefill_gflops": -1.0}, "positive"),
    ],
)
def test_latency_target_refuses_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LatencyTarget(**kwargs)


def test_bench_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="mqt-llava bench"):
        CostModel.from_bench(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text('{"rows": [{"x": 1}]}')
    with pytest.raises(ValueError, match="not a `mqt-llava bench --out` result"):
        CostModel.from_bench(tmp_path / "bad.json")


def test_policy_files(tmp_path):
    assert isinstance(load_policy(None, tmp_path), Escalation)  # no file: the default
    (tmp_path / POLICY_FILE).write_text(
        '{"policy": "escalation", "ladder": [2, 32], "threshold": 0.5}'
    )
    policy = load_policy(None, tmp_path)
    assert policy.ladder == [2, 32] and policy.threshold == 0.5
    assert load_policy(policy.to_dict()).to_dict() == policy.to_dict()
    with pytest.raises(ValueError, match="unknown budget policy 'magic'"):
        load_policy({"policy": "magic"})
    with pytest.raises(FileNotFoundError, match="not found"):
        load_policy(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_policy(tmp_path / "broken.json")


def test_replay_equals_the_real_escalation(vlm, encoded):
    """The offline replay (used to calibrate thresholds) gives the real run's budgets and FLOPs."""
    prompts, visual = encoded
    budgets = [1, 4, 16, 64]
    model, processor = vlm.model, vlm.processor
    cost = PrefillCost(model.config)
    text = [len(processor.tokenize_prompt(p, [1])) - 1 for p in prompts]
    sweep = [generate_scored(model, processor, prompts, visual, [m] * 4, 6) for m in budgets]
    first = np.array([[row[2] for row in col] for col in sweep]).T  # (N, K)
    table = SweepTable(
        budgets,
        np.array([[i % 2 == k % 2 for k in range(4)] for i in range(4)]),  # any labels
        first,
        np.array([[np.exp(row[3]) for row in col] for col in sweep]).T,
        np.array([[cost.fixed_gflops(t, m) for m in budgets] for t in text]),
        np.array([[cost.llm_gflops(t + m) for m in budgets] for t in text]),
        np.array([cost.auto_gflops(t, []) for t in text]),
    )
    threshold = float(np.median(first[:, 0]))
    policy = Escalation(ladder=(1, 16, 64), threshold=threshold)
    real = answer_batch(model, processor, prompts, visual, [AUTO] * 4, policy, 6, cost)
    replay = escalation_point(table, [1, 16, 64], threshold)
    assert replay.gflops == pytest.approx(np.mean([a.prefill_gflops for a in real]))
    assert replay.mean_budget == pytest.approx(np.mean([a.num_visual_tokens for a in real]))
    fixed = fixed_points(table)
    assert [p.gflops for p in fixed] == sorted(p.gflops for p in fixed)
    oracle = oracle_point(table)  # row i is right at budgets of its parity: smallest right one
    assert oracle.mean_budget == pytest.approx(np.mean([4, 1, 4, 1]))
    assert chosen_point("x", table, [64] * 4).accuracy == 100 * table.correct[:, 3].mean()
    assert interpolate_fixed(fixed, fixed[1].gflops) == pytest.approx(fixed[1].accuracy)
    front = pareto(fixed)
    assert all(a.accuracy < b.accuracy for a, b in itertools.pairwise(front))
