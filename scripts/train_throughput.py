"""Training throughput with `uniform-even` budgets vs always `fixed:M`, side by side.

Stage-2 training (connector + LLM, vision frozen) of a small MQT-LLaVA built from configs,
through the real recipe path (`mqt_llava.training.train`), on generated image records. The two
policies alternate, `--repeats` times each, in one process; the first `--warmup` steps of each
run are left out. Reports median samples/s and tokens/s (visual tokens included) and the ratio.

    python scripts/train_throughput.py                     # CPU, float32, 1 thread
    python scripts/train_throughput.py --threads 2 --steps 8 --repeats 3

On a CPU, timings swing with other load: compare the ratio, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOKENIZER = ROOT / "tests" / "data" / "original-tiny" / "checkpoint"


def write_data(folder: Path, n: int) -> Path:
    from PIL import Image

    (folder / "images").mkdir(parents=True, exist_ok=True)
    colours = [(220, 30, 30), (30, 200, 30), (30, 30, 220), (200, 200, 40)]
    records = []
    for i in range(n):
        Image.new("RGB", (64, 48), colours[i % 4]).save(folder / "images" / f"{i}.png")
        records.append(
            {
                "id": str(i),
                "image": f"{i}.png",
                "conversations": [
                    {"from": "human", "value": "<image>\nDescribe the picture in one sentence."},
                    {"from": "gpt", "value": "A plain picture filled with one bright colour."},
                ],
            }
        )
    (folder / "train.json").write_text(json.dumps(records))
    return folder / "train.json"


def overrides(data: Path, out: Path, policy: str, steps: int, batch: int, m: int) -> list[str]:
    side = int(m**0.5)
    vision = "{model_type: clip_vision_model, hidden_size: 256, intermediate_size: 1024, "
    vision += "num_hidden_layers: 4, num_attention_heads: 4, image_size: 64, patch_size: 4}"
    text = "{model_type: llama, hidden_size: 512, intermediate_size: 1376, num_hidden_layers: 8, "
    text += "num_attention_heads: 8, num_key_value_heads: 8, max_position_embeddings: 2048}"
    processor = "{class: CLIPImageProcessorPil, size: {shortest_edge: 64}, "
    processor += "crop_size: {height: 64, width: 64}}"
    return [
        f"output_dir={out}",
        f"model_init={{vision: {vision}, text: {text}, tokenizer: {TOKENIZER}, "
        f"image_processor: {processor}, "
        f"connector: {{num_queries: {m}, num_heads: 8, query_grid: [{side}, {side}]}}}}",
        "train_modules=[connector, language_model]",
        f"budget.policy={policy}",
        f"data.train_json={data}",
        f"data.image_folder={data.parent / 'images'}",
        "export.connector=false",
        "export.full_model=false",
        f"training.max_steps={steps}",
        f"training.per_device_train_batch_size={batch}",
        "training.learning_rate=1e-4",
        "training.save_strategy=no",
        "training.disable_tqdm=true",
    ]


def run(policy: str, data: Path, out: Path, args) -> tuple[float, float, float]:
    from mqt_llava.training.config import load_recipe
    from mqt_llava.training.recipe import train

    recipe = out.parent / "bench.yaml"
    recipe.write_text("name: throughput\n")
    config = load_recipe(recipe, overrides(data, out, policy, args.steps, args.batch, args.m))
    logs = [e for e in train(config).log_history if "loss" in e][args.warmup :]
    samples = statistics.median(e["samples_per_second"] for e in logs)
    tokens = statistics.median(e["tokens_per_second"] for e in logs)
    mean_m = statistics.mean(e["num_visual_tokens"] for e in logs)
    return samples, tokens, mean_m


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=1, help="steps left out of each run")
    parser.add_argument("--repeats", type=int, default=2, help="runs per policy, interleaved")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--m", type=int, default=256, help="M, the connector's queries")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    policies = ["uniform-even", f"fixed:{args.m}"]
    results: dict[str, list[tuple[float, float, float]]] = {p: [] for p in policies}
    with tempfile.TemporaryDirectory() as tmp:
        data = write_data(Path(tmp) / "data", args.batch * args.steps)
        for r in range(args.repeats):
            for policy in policies:
                out = Path(tmp) / f"{policy.replace(':', '-')}-{r}"
                results[policy].append(run(policy, data, out, args))
    print(
        f"stage-2 training, M={args.m}, batch {args.batch}, {args.steps} steps x {args.repeats} "
        f"runs per policy (first {args.warmup} left out), float32, torch threads {args.threads}, "
        f"device cpu"
    )
    print(f"{'policy':<14} {'mean m':>7} {'samples/s':>10} {'tokens/s':>10}")
    medians = {}
    for policy in policies:
        samples = statistics.median(r[0] for r in results[policy])
        tokens = statistics.median(r[1] for r in results[policy])
        mean_m = statistics.mean(r[2] for r in results[policy])
        medians[policy] = samples
        print(f"{policy:<14} {mean_m:>7.1f} {samples:>10.2f} {tokens:>10.0f}")
    ratio = medians["uniform-even"] / medians[f"fixed:{args.m}"]
    print(f"uniform-even / fixed:{args.m} samples/s = {ratio:.2f}x")


if __name__ == "__main__":
    main()
