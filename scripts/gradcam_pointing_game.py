"""How often does the most relevant token's map point at the object? (docs/visualization.md)

The pointing game (`mqt_llava.visualization.pointing`) on generated single-object scenes with
the bundled ShapesVQA model (or `--model`): for each map setting (Grad-CAM or gradient x
activation, activations from zero or from the image's mean patch) and budget, the share of
scenes where the most relevant token's map peaks inside the object's box (one patch of
tolerance). The question is "What colour is the <shape>?"; each budget explains its own answer.

    python scripts/gradcam_pointing_game.py --scenes 60 --out pointing.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

SETTINGS = [("gradcam", "zero"), ("gradcam", "mean"), ("gradxact", "zero"), ("gradxact", "mean")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="default: the bundled model")
    parser.add_argument("--scenes", type=int, default=60, help="single-object scenes")
    parser.add_argument("--seed", type=int, default=1, help="scene sampling seed")
    parser.add_argument("--budgets", default="8,16,64", help="comma-separated budgets")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--out", type=Path, default=None, help="write the records as JSON")
    args = parser.parse_args()

    import torch

    import mqt_llava
    from mqt_llava.data.shapes_scene import single_object_scenes
    from mqt_llava.visualization.pointing import hit_rates, pointing_game

    if args.threads:
        torch.set_num_threads(args.threads)
    vlm = mqt_llava.load(args.model)
    budgets = [int(m) for m in args.budgets.split(",")]
    scenes = single_object_scenes(args.scenes, args.seed)
    start = time.perf_counter()
    records = pointing_game(vlm.model, vlm.processor, scenes, budgets, SETTINGS, vlm.template)
    seconds = time.perf_counter() - start

    rates = hit_rates(records)
    small = hit_rates([r for r in records if r["size"] == "small"], ("method", "baseline"))
    correct = hit_rates([{**r, "hit": r["correct"]} for r in records], by=("m",))
    print(
        f"pointing game: {args.scenes} single-object scenes (seed {args.seed}); hit = the most "
        "relevant token's map peaks within 1 patch of the object's box"
    )
    print("| method | baseline | " + " | ".join(f"m={m}" for m in budgets) + " | small, all m |")
    print("|---|---|" + "---:|" * (len(budgets) + 1))
    for method, baseline in SETTINGS:
        cells = [f"{100 * rates[(method, baseline, m)]:.0f} %" for m in budgets]
        on_small = small.get((method, baseline), float("nan"))
        print(f"| {method} | {baseline} | " + " | ".join(cells) + f" | {100 * on_small:.0f} % |")
    answers = ", ".join(f"m={m}: {100 * correct[(m,)]:.0f} %" for m in budgets)
    print(f"answers right: {answers}; {seconds:.0f} s")
    if args.out:
        args.out.write_text(json.dumps(records, indent=1) + "\n")


if __name__ == "__main__":
    main()
