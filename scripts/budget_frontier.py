"""The accuracy / prefill-FLOPs frontier of `num_visual_tokens="auto"` on ShapesVQA.

    python scripts/budget_frontier.py --data runs/shapes-data --router-data runs/shapes-data-1 \
        --out runs/budget-frontier [--model DIR] [--limit N] [--band POINTS]

1. Sweep: every question of the router-training set (``--router-data``: a ShapesVQA set of
   another seed, so its questions are unseen by the model and by the reported splits), of val and
   of test is answered at every budget, recording the answer's correctness and confidence
   (``sweep_<name>.pt``; reused when present).
2. Router: trained on the router-training sweep (the model's own correctness per budget).
3. Calibration on val: escalation ladders x confidences x thresholds, router slacks; the
   val-Pareto settings are kept.
4. Report on test: fixed budgets, the kept settings, the oracle; ``frontier.json``,
   ``frontier.md`` and ``frontier.png``; the chosen policies as JSON files for
   ``mqt-llava eval --num-visual-tokens auto --budget-policy FILE``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

BUDGETS = [1, 2, 4, 8, 16, 32, 64]
MAX_NEW_TOKENS = 16  # the release-style limit `eval` uses for ShapesVQA
THRESHOLDS = [round(x, 3) for x in np.linspace(0.05, 0.99, 48)] + [0.995, 0.999]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def sweep(vlm, items, gold, budgets, probe, batch_size, cost) -> dict:
    """Answers every item at every budget: correctness, confidences, FLOPs, router features."""
    from mqt_llava.evaluation.scorers.shapes import shapes_prediction
    from mqt_llava.inference.budget import RowContext, generate_scored
    from mqt_llava.inference.generation import encode_images
    from mqt_llava.inference.policies.router import router_features

    model, processor = vlm.model, vlm.processor
    big_m = model.config.num_queries
    n, k = len(items), len(budgets)
    table = {name: np.zeros((n, k)) for name in ("correct", "first_token", "mean_prob")}
    table.update(fixed_gflops=np.zeros((n, k)), llm_gflops=np.zeros((n, k)))
    table["encode_gflops"] = np.zeros(n)
    features, types, text_tokens = [], [], []
    start = time.time()
    for s in range(0, n, batch_size):
        batch = items[s : s + batch_size]
        visual = encode_images(model, processor, [it.image for it in batch], big_m)  # (B, M, D)
        prompts = [processor.build_prompt(it.question, 1, "llava_v1") for it in batch]
        rows = [RowContext(p, visual[i : i + 1], 0) for i, p in enumerate(prompts)]
        features.append(router_features(model, processor, rows, probe))
        text = [len(processor.tokenize_prompt(p, [1])) - 1 for p in prompts]
        for j, m in enumerate(budgets):
            out = generate_scored(
                model, processor, prompts, [visual[i : i + 1] for i in range(len(batch))],
                [m] * len(batch), MAX_NEW_TOKENS,
            )  # fmt: skip
            for i, (answer, _, first, mean) in enumerate(out):
                row = s + i
                right = gold[str(batch[i].question_id)].lower()
                table["correct"][row, j] = shapes_prediction(answer) == right
                table["first_token"][row, j] = first
                table["mean_prob"][row, j] = np.exp(mean)
                table["fixed_gflops"][row, j] = cost.fixed_gflops(text[i], m)
                table["llm_gflops"][row, j] = cost.llm_gflops(text[i] + m)
        for i in range(len(batch)):
            table["encode_gflops"][s + i] = cost.auto_gflops(text[i], [])
            text_tokens.append(text[i])
            types.append(batch[i].metadata.get("question_type", ""))
        done = s + len(batch)
        if done % (batch_size * 25) == 0 or done == n:
            print(f"  {done}/{n} questions, {time.time() - start:.0f} s", file=sys.stderr)
    return {
        "budgets": list(budgets),
        **{key: torch.from_numpy(value) for key, value in table.items()},
        "features": torch.cat(features),
        "types": types,
        "text_tokens": text_tokens,
        "question_ids": [str(it.question_id) for it in items],
        "seconds": time.time() - start,
    }


def load_split(path: Path, limit: int | None):
    """The split's items (first `limit`) and its gold answers by question id."""
    from mqt_llava.evaluation.readers import shapes

    gold = {str(r["id"]): str(r["answer"]) for r in json.loads(path.read_text())}
    return shapes.read(path.parent, path)[:limit], gold


def as_table(data: dict):
    from mqt_llava.inference.policies.simulate import SweepTable

    return SweepTable(
        data["budgets"],
        data["correct"].numpy().astype(bool),
        data["first_token"].numpy(),
        data["mean_prob"].numpy(),
        data["fixed_gflops"].numpy(),
        data["llm_gflops"].numpy(),
        data["encode_gflops"].numpy(),
    )


def escalation_settings(budgets):
    """Every ladder of 2-4 swept budgets ending at 16 or more, both confidences, all thresholds."""
    for size in (2, 3, 4):
        for ladder in itertools.combinations(budgets, size):
            if ladder[-1] >= 16:
                for confidence in ("first_token", "mean_prob"):
                    for threshold in THRESHOLDS:
                        yield {
                            "ladder": list(ladder),
                            "threshold": threshold,
                            "confidence": confidence,
                        }


def spread(items, count):
    """At most `count` items, evenly spaced, first and last kept."""
    if len(items) <= count:
        return list(items)
    picks = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in sorted(set(picks))]


def calibrate(val, test, candidates, count, target):
    """Val-Pareto settings of one family, with their val and test points.

    `candidates` are (setting, replay) pairs; `replay(table)` gives a Point. Returns the spread
    of the val frontier plus the `matched` setting: the cheapest whose val accuracy >= target.
    """
    from mqt_llava.inference.policies.simulate import pareto

    scored = [(setting, replay, replay(val)) for setting, replay in candidates]
    front_ids = {id(p) for p in pareto([p for _, _, p in scored])}
    front = sorted((s for s in scored if id(s[2]) in front_ids), key=lambda s: s[2].gflops)
    chosen = spread(front, count)
    reaching = [s for s in front if s[2].accuracy >= target]
    matched = reaching[0] if reaching else None
    if matched is not None and all(matched is not c for c in chosen):
        chosen.append(matched)
    rows = []
    for setting, replay, point in sorted(chosen, key=lambda s: s[2].gflops):
        rows.append(
            {"setting": setting, "val": asdict(point), "test": asdict(replay(test)),
             "matched": matched is not None and setting is matched[0]}
        )  # fmt: skip
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="ShapesVQA folder (val, test)")
    parser.add_argument("--router-data", type=Path, required=True, help="another seed's folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", type=Path, help="model folder (default: the bundled model)")
    parser.add_argument("--limit", type=int, help="only the first N questions of each split")
    parser.add_argument("--val-limit", type=int, help="only N val questions")
    parser.add_argument("--router-limit", type=int, help="only N router-training questions")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--probe", type=int, default=4, help="router's visual-token budget")
    parser.add_argument("--bench", type=Path, help="`mqt-llava bench --out` JSON for ms targets")
    parser.add_argument(
        "--band",
        type=float,
        default=0.25,
        help="points of val accuracy below fixed-M that a *matched* policy may lose (default 0.25)",
    )
    args = parser.parse_args(argv)
    if args.band < 0:
        parser.error(f"--band must be >= 0 points of accuracy, got {args.band}")
    torch.set_num_threads(1)

    from mqt_llava.inference import load
    from mqt_llava.inference.budget import PrefillCost
    from mqt_llava.inference.policies import CostModel, Escalation, Router
    from mqt_llava.inference.policies.router import choose, train_router
    from mqt_llava.inference.policies.simulate import (
        chosen_point,
        escalation_point,
        fixed_points,
        interpolate_fixed,
        oracle_point,
    )

    args.out.mkdir(parents=True, exist_ok=True)
    vlm = load(args.model, device="cpu")
    cost = PrefillCost(vlm.model.config)
    splits = {  # test first: the fixed budgets and the oracle need nothing else
        "test": ([args.data / "test.json"], args.limit),
        "val": ([args.data / "val.json"], args.val_limit or args.limit),
        "router": ([args.router_data / "test.json"], args.router_limit or args.limit),
    }
    sweeps = {}
    for name, (files, limit) in splits.items():
        path = args.out / f"sweep_{name}.pt"
        if not path.is_file():
            items, gold = [], {}
            for file in files:
                more, more_gold = load_split(file, limit)
                items += more
                gold.update(more_gold)
            print(f"sweep {name}: {len(items)} questions x {len(BUDGETS)} budgets", file=sys.stderr)
            torch.save(sweep(vlm, items, gold, BUDGETS, args.probe, args.batch_size, cost), path)
        sweeps[name] = torch.load(path, weights_only=False)
    tables = {name: as_table(data) for name, data in sweeps.items()}
    val, test = tables["val"], tables["test"]

    net = train_router(sweeps["router"]["features"], sweeps["router"]["correct"].bool())
    router_probs = {
        name: torch.sigmoid(net(sweeps[name]["features"])).detach() for name in ("val", "test")
    }
    fixed_val, fixed_test = fixed_points(val), fixed_points(test)
    target = fixed_val[-1].accuracy - args.band  # 0.25: a margin inside the 0.5-point band

    def esc(setting):
        return lambda t: escalation_point(t, **setting)

    def rout(slack):
        def replay(t):
            probs = router_probs["val" if t is val else "test"]
            return chosen_point(f"router slack {slack:g}", t, choose(probs, BUDGETS, slack))

        return replay

    families = {}
    for confidence in ("first_token", "mean_prob"):
        candidates = [
            (s, esc(s)) for s in escalation_settings(BUDGETS) if s["confidence"] == confidence
        ]
        families[f"escalation ({confidence})"] = calibrate(val, test, candidates, 7, target)
    slacks = [0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0]
    families["router"] = calibrate(val, test, [({"slack": s}, rout(s)) for s in slacks], 7, target)
    oracle = oracle_point(test)
    best_fixed = max(
        (p for p in fixed_test if p.gflops <= oracle.gflops),
        key=lambda p: p.accuracy,
        default=fixed_test[0],
    )

    latency = []
    if args.bench is not None:
        model = CostModel.from_bench(args.bench)
        text = np.asarray(sweeps["test"]["text_tokens"])
        for ms in np.quantile(
            [model.predict_ms(t + m) for t in text[:1] for m in BUDGETS], [0.1, 0.3, 0.5, 0.7, 0.9]
        ):
            choice = [
                max([m for m in BUDGETS if model.predict_ms(t + m) <= ms] or [1]) for t in text
            ]
            latency.append(
                {
                    "max_prefill_ms": round(float(ms), 3),
                    "test": asdict(chosen_point(f"latency ≤{ms:.2f} ms", test, choice)),
                }
            )

    for row in latency:
        curve = interpolate_fixed(fixed_test, row["test"]["gflops"])
        row["fixed_curve_test"] = curve
        row["above_fixed_curve_test"] = bool(row["test"]["accuracy"] > curve)
    for rows in families.values():
        for row in rows:
            curve = interpolate_fixed(fixed_test, row["test"]["gflops"])
            row["fixed_curve_test"] = curve
            row["above_fixed_curve_test"] = bool(row["test"]["accuracy"] > curve)
    result = {
        "machine": {
            "cpu": cpu_model(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "sweep_seconds": {name: data["seconds"] for name, data in sweeps.items()},
        "questions": {name: len(data["types"]) for name, data in sweeps.items()},
        "fixed_val": [asdict(p) for p in fixed_val],
        "fixed_test": [asdict(p) for p in fixed_test],
        "families": families,
        "latency": latency,
        "oracle_test": asdict(oracle),
        "oracle_gap": {
            "best_fixed_at_or_below": asdict(best_fixed),
            "fixed_curve_at_oracle_gflops": interpolate_fixed(fixed_test, oracle.gflops),
        },
        "calibration_target_val_accuracy": target,
        "band": args.band,
    }
    (args.out / "frontier.json").write_text(json.dumps(result, indent=2) + "\n")
    Router(net, BUDGETS, args.probe).save(args.out)
    for name, rows in families.items():
        for row in rows:
            if row["matched"]:
                slug = name.split()[0] + (
                    "_" + row["setting"]["confidence"] if "confidence" in row["setting"] else ""
                )
                spec = (
                    Escalation(**row["setting"]).to_dict()
                    if "ladder" in row["setting"]
                    else {**Router(net, BUDGETS, args.probe, row["setting"]["slack"]).to_dict()}
                )
                (args.out / f"policy_{slug}.json").write_text(json.dumps(spec, indent=2) + "\n")
    from budget_frontier_report import write_report

    write_report(result, args.out)
    print((args.out / "frontier.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
