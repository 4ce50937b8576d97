"""Peak resident memory of `mqt-llava convert` on a 7B-shaped random checkpoint, built locally.

Writes a checkpoint in the release's layout (`llava_llama` config, Vicuna-7B-shaped Llama:
32 layers, width 4096, MLP 11008, vocabulary 32000; the M = 256, C = 1024 connector; bfloat16;
no tower copy, as in the release) in two safetensors shards (or `.bin` shards with `--format
bin`), plus a random CLIP ViT-L/14-336 tower folder for `--vision-tower`. Every tensor is
generated and written one at a time, so building it needs little memory too. Then it runs the
conversion in a fresh process and reports that process's peak RSS (`ru_maxrss`), next to the
peak of a process that only imports the converter's modules, and the checkpoint's size.

    python scripts/bench_convert_memory.py --work /tmp/convert-bench              # 7B shape
    python scripts/bench_convert_memory.py --work /tmp/cb --layers 8 --keep       # smaller

Needs ~2x the checkpoint size on disk (13.5 GB each for the 7B shape); `--keep` keeps the files.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "data" / "original-tiny"
# VmHWM (the peak RSS of this process image), not ru_maxrss: ru_maxrss survives exec and would
# report the parent's peak (the one that built the checkpoint).
CHILD = """
import re, sys, time
start = time.perf_counter()
from mqt_llava.model.convert import convert_checkpoint
if sys.argv[1] == "convert":
    convert_checkpoint(sys.argv[2], sys.argv[3], vision_tower=sys.argv[4])
status = open("/proc/self/status").read()
print(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1), time.perf_counter() - start)
"""


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def release_tensors(layers: int, width: int, mlp: int, vocab: int, m: int, c: int) -> list:
    """(name, shape) of the release's tensors, in its order (LM, then the connector)."""
    names = [("model.embed_tokens.weight", (vocab, width))]
    for i in range(layers):
        p = f"model.layers.{i}."
        names += [(p + f"self_attn.{k}_proj.weight", (width, width)) for k in "qkvo"]
        names += [
            (p + "mlp.gate_proj.weight", (mlp, width)),
            (p + "mlp.up_proj.weight", (mlp, width)),
            (p + "mlp.down_proj.weight", (width, mlp)),
            (p + "input_layernorm.weight", (width,)),
            (p + "post_attention_layernorm.weight", (width,)),
        ]
    names += [("model.norm.weight", (width,)), ("lm_head.weight", (vocab, width))]
    q = "model.query_abstractor."
    names += [
        (q + "query", (m, c)),
        (q + "pos_embed", (m, c)),
        (q + "proj", (c, width)),
        (q + "attn.in_proj_weight", (3 * c, c)),
        (q + "attn.in_proj_bias", (3 * c,)),
        (q + "attn.out_proj.weight", (c, c)),
        (q + "attn.out_proj.bias", (c,)),
        *[(q + f"ln_{k}.{w}", (c,)) for k in "qkv" for w in ("weight", "bias")],
    ]
    return names


def build_release(folder: Path, args) -> int:
    """Writes the random checkpoint; returns its weight bytes."""
    import torch

    from mqt_llava.model.weights_io import TensorEntry, write_safetensors

    folder.mkdir(parents=True)
    # Random values, generated once (64 MB) and tiled: drawing 7e9 normals on a shared CPU
    # takes far longer than the conversion, and the values do not change what is measured.
    pool = (torch.randn(2**25, generator=torch.Generator().manual_seed(0)) * 0.02).bfloat16()

    def random(shape):
        def make():
            count = int(torch.tensor(shape).prod())
            return pool.repeat(-(-count // pool.numel()))[:count].reshape(shape)

        return make

    tensors = release_tensors(args.layers, 4096, 11008, 32000, 256, 1024)
    half = len(tensors) // 2
    shards = [tensors[:half], tensors[half:]]
    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        if args.format == "safetensors":
            name = f"model-{i + 1:05d}-of-00002.safetensors"
            entries = [(n, TensorEntry(torch.bfloat16, s, load=random(s))) for n, s in shard]
            write_safetensors(folder / name, entries)
        else:
            name = f"pytorch_model-{i + 1:05d}-of-00002.bin"
            torch.save({n: random(s)() for n, s in shard}, folder / name)
        for n, s in shard:
            weight_map[n] = name
            total += 2 * int(torch.tensor(s).prod())
    index = "model.safetensors.index.json" if args.format == "safetensors" else None
    index = index or "pytorch_model.bin.index.json"
    (folder / index).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    config = json.loads((FIXTURE / "checkpoint" / "config.json").read_text())
    config.update(
        hidden_size=4096, intermediate_size=11008, num_hidden_layers=args.layers,
        num_attention_heads=32, num_key_value_heads=32, vocab_size=32000, mm_hidden_size=1024,
        max_position_embeddings=4096, torch_dtype="bfloat16",
        mm_vision_tower="openai/clip-vit-large-patch14-336",
    )  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    for name in ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(FIXTURE / "checkpoint" / name, folder / name)
    return total


def build_tower(folder: Path) -> None:
    """A random CLIP ViT-L/14-336 vision tower (bfloat16) with the release's preprocessing."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel

    from mqt_llava.model.configuration import CLIP_L_336_VISION_KWARGS

    with torch.device("meta"):
        model = CLIPVisionModel(CLIPVisionConfig(**CLIP_L_336_VISION_KWARGS))
    model = model.to_empty(device="cpu").to(torch.bfloat16)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.02)
    model.save_pretrained(folder)
    shutil.copy(FIXTURE / "vision_tower" / "preprocessor_config.json", folder)
    pre = json.loads((folder / "preprocessor_config.json").read_text())
    pre.update(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336})
    (folder / "preprocessor_config.json").write_text(json.dumps(pre))


def child(*argv: str, source: Path | None = None) -> tuple[float, float]:
    """Runs the converter in a fresh process; returns (peak RSS in GB, seconds).

    `source`: another source tree of the package (e.g. `git archive` of an older commit) to
    import the converter from instead, for a before/after comparison.
    """
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    if source is not None:
        env["PYTHONPATH"] = str(source)
    # `python -c` puts the working directory first on sys.path: run the other tree from itself.
    out = subprocess.run(
        [sys.executable, "-c", CHILD, *argv],
        env=env,
        cwd=source,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return int(out[-2]) / 2**20, float(out[-1])  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (must not exist)")
    parser.add_argument("--layers", type=int, default=32, help="Llama layers (32: the 7B shape)")
    parser.add_argument("--format", choices=("safetensors", "bin"), default="safetensors")
    parser.add_argument("--keep", action="store_true", help="keep the checkpoints afterwards")
    parser.add_argument(
        "--baseline-src", type=Path, help="also convert with the package in this source tree"
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True)
    try:
        start = time.perf_counter()
        size = build_release(args.work / "release", args)
        build_tower(args.work / "clip-vit-large-patch14-336")
        built = time.perf_counter() - start
        base_rss, _ = child("import-only")
        peak, seconds = child(
            "convert",
            str(args.work / "release"),
            str(args.work / "converted"),
            str(args.work / "clip-vit-large-patch14-336"),
        )
        out_bytes = sum(f.stat().st_size for f in (args.work / "converted").glob("*.safetensors"))
        baseline = None
        if args.baseline_src is not None:
            shutil.rmtree(args.work / "converted")  # disk: one output at a time
            baseline, _ = child(
                "convert",
                str(args.work / "release"),
                str(args.work / "converted"),
                str(args.work / "clip-vit-large-patch14-336"),
                source=args.baseline_src,
            )
        result = {
            "cpu": cpu_model(),
            "threads": int(os.environ.get("OMP_NUM_THREADS", "1")),
            "format": args.format,
            "llama_layers": args.layers,
            "checkpoint_gb": round(size / 1e9, 2),
            "converted_gb": round(out_bytes / 1e9, 2),
            "peak_rss_gb": round(peak, 2),
            "import_only_peak_rss_gb": round(base_rss, 2),
            "convert_seconds": round(seconds, 1),
            "baseline_peak_rss_gb": None if baseline is None else round(baseline, 2),
            "build_seconds": round(built, 1),
        }
        print(json.dumps(result, indent=2))
        print(
            f"converting a {size / 1e9:.1f} GB {args.format} checkpoint ({args.layers} layers): "
            f"peak RSS {peak:.2f} GB ({base_rss:.2f} GB of it the imports), {seconds:.0f} s"
        )
    finally:
        if not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
