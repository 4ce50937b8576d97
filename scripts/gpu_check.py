"""GPU check at the release's size: MQT-LLaVA-7B's shape against transformers' LLaVA, one command.

Builds the 7B shape on the GPU (CLIP ViT-L/14-336 + a 32-layer, 4096-wide Llama, random
weights in bfloat16; nothing is downloaded) and a stock `LlavaForConditionalGeneration` that
*shares* its vision tower and language model (same modules), differing only in the connector:
ours at m tokens, LLaVA-1.5's two-layer MLP at every patch (576). Same prompt for both.

It reports, and writes as `gpu_check.json` and `gpu_check.md` under `--out`:
- prefill latency (one forward with the image, last-position logits) at m = 1, 16, 64, 256 and
  for LLaVA at 576, with the time ratio LLaVA / ours next to the FLOP ratio (counted on the meta
  device by `mqt_llava.perf.flops`);
- decode milliseconds per token (greedy `generate`, forced length, prefill subtracted);
- peak GPU memory of each variant's prefill (weights included);
- batch-32 throughput of `eval`-style generation (images encoded once, `visual_tokens`
  passed to `generate`, 16 new tokens) at m = 16 and 256, and LLaVA's at 576.

    python scripts/gpu_check.py --out runs/gpu_check                 # the 7B shape, CUDA, bf16
    python scripts/gpu_check.py --preset tiny --device cpu --out /tmp/g   # plumbing check on CPU

About 30 GB of GPU memory and a few minutes at the 7B shape (untested on a GPU so far).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

BUDGETS = (1, 16, 64, 256)
TINY_VISION = dict(
    model_type="clip_vision_model", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
    num_attention_heads=4, image_size=336, patch_size=14, projection_dim=64,
)  # fmt: skip
TINY_TEXT = dict(
    model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=4, vocab_size=1000, max_position_embeddings=2048,
)  # fmt: skip


def preset(name: str):
    """The MQT-LLaVA config of `7b` (the release's shape) or `tiny` (same grid, tiny widths)."""
    from mqt_llava.model import MQTLlavaConfig
    from mqt_llava.model.presets import preset_config

    if name == "7b":
        return preset_config("mqt-llava-7b")
    return MQTLlavaConfig(
        vision_config=dict(TINY_VISION), text_config=dict(TINY_TEXT), num_queries=256,
        num_heads=4, image_token_id=1000, num_visual_tokens=256,
    )  # fmt: skip


def build(config, device: torch.device, dtype: torch.dtype, seed: int = 0):
    """Our model on `device` and a stock LLaVA sharing its tower, decoder and head."""
    from transformers import LlavaForConditionalGeneration

    from mqt_llava.model import MQTLlavaForConditionalGeneration
    from mqt_llava.perf.flops import baseline_config

    torch.manual_seed(seed)
    with torch.device(device):
        ours = MQTLlavaForConditionalGeneration._from_config(config, dtype=dtype)
    ours = ours.to(device).eval()  # a no-op when the device context already placed it
    llava_config = baseline_config(config)
    vocab = config.text_config.vocab_size
    if llava_config.image_token_id >= vocab:  # the stock model embeds placeholder ids first
        llava_config.image_token_id = vocab - 1
    with torch.device("meta"):
        stock = LlavaForConditionalGeneration(llava_config)
    stock.model.vision_tower = ours.vision_tower
    stock.model.language_model = ours.language_model.get_decoder()
    stock.lm_head = ours.language_model.get_output_embeddings()
    projector = stock.model.multi_modal_projector.to_empty(device=device)
    for linear in (projector.linear_1, projector.linear_2):
        linear.reset_parameters()
    projector.to(dtype)
    return ours, stock.eval()


def prompt(text: torch.Tensor, image_token_id: int, n: int, batch: int = 1) -> dict:
    """Text ids with n placeholders after the first 35 tokens (where llava_v1 puts the image)."""
    placeholders = torch.full((n,), image_token_id, device=text.device)
    ids = torch.cat([text[:35], placeholders, text[35:]])[None].expand(batch, -1)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn, device, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class StepClock:
    """A stopping criterion that stamps every generation step (after a device sync)."""

    def __init__(self, device: torch.device):
        self.device, self.stamps = device, []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        sync(self.device)
        self.stamps.append(time.perf_counter())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def decode_seconds(model, inputs: dict, device, new_tokens: int, repeats: int) -> float:
    """Median seconds of one decode step of greedy `generate` (its prefill step left out)."""
    from transformers import StoppingCriteriaList

    steps = []
    for _ in range(repeats + 1):  # the first run warms up
        clock = StepClock(device)
        model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                       do_sample=False, pad_token_id=0,
                       stopping_criteria=StoppingCriteriaList([clock]))  # fmt: skip
        steps.append([b - a for a, b in zip(clock.stamps, clock.stamps[1:], strict=False)])
    return statistics.median(x for run in steps[1:] for x in run)


def peak_gb(fn, device) -> float | None:
    if device.type != "cuda":
        return None
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    sync(device)
    return torch.cuda.max_memory_allocated(device) / 1e9


@torch.inference_mode()
def run(args) -> dict:
    from mqt_llava.perf.flops import baseline_config, count_llava_flops, count_mqt_flops

    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    config = preset(args.preset)
    ours, stock = build(config, device, dtype)
    gen = torch.Generator().manual_seed(0)
    size = config.vision_config.image_size
    pixels = torch.randn(1, 3, size, size, generator=gen).to(device, dtype)
    vocab = config.text_config.vocab_size
    text = torch.randint(3, vocab - 1, (args.prompt_tokens,), generator=gen).to(device)
    patches = stock.config.image_seq_length
    variants = [(f"m={m}", m, ours, {**prompt(text, config.image_token_id, m)}) for m in BUDGETS]
    for _, m, _, inputs in variants:
        inputs.update(pixel_values=pixels, num_visual_tokens=m)
    llava_inputs = {**prompt(text, stock.config.image_token_id, patches), "pixel_values": pixels}
    variants.append((f"llava-{patches}", patches, stock, llava_inputs))
    flops = {r.num_visual_tokens: r.total_tflops for r in count_mqt_flops(config, BUDGETS, 60)}
    flops[patches] = count_llava_flops(baseline_config(config), 60).total_tflops
    n = args.decode_tokens
    rows = []
    for name, m, model, inputs in variants:

        def prefill(model=model, inputs=inputs):
            model(**inputs, logits_to_keep=1, use_cache=True)

        seconds = median_seconds(prefill, device, args.repeats, args.warmup)
        step = decode_seconds(model, inputs, device, n + 1, args.repeats)
        rows.append(
            {
                "variant": name,
                "visual_tokens": m,
                "prefill_ms": 1e3 * seconds,
                "decode_ms_per_token": 1e3 * step,
                "prefill_tflops": flops[m],
                "peak_gpu_gb": peak_gb(prefill, device),
            }
        )
    base = rows[-1]
    for row in rows:
        row["time_ratio"] = base["prefill_ms"] / row["prefill_ms"]
        row["flop_ratio"] = base["prefill_tflops"] / row["prefill_tflops"]
    return {
        "rows": rows,
        "batch": throughput(args, ours, stock, config, text, device, dtype),
        "conditions": conditions(args, device, ours),
    }


def throughput(args, ours, stock, config, text, device, dtype) -> list[dict]:
    """Eval-style batches: images encoded once, then `generate` with the visual tokens."""
    b, new = args.batch, 16
    size = config.vision_config.image_size
    pixels = torch.randn(b, 3, size, size, generator=torch.Generator().manual_seed(1))
    pixels = pixels.to(device, dtype)
    results = []
    for m in (16, 256):

        def answer(m=m):
            visual = ours.get_image_features(pixels, m)  # (B, m, D)
            ids = prompt(text, config.image_token_id, m, b)
            tokens = visual.reshape(-1, visual.shape[-1])  # (B * m, D), as eval passes them
            ours.generate(**ids, visual_tokens=tokens, max_new_tokens=new, min_new_tokens=new,
                          do_sample=False, pad_token_id=0)  # fmt: skip

        seconds = median_seconds(answer, device, args.repeats, 1)
        results.append(
            {"variant": f"m={m}", "batch": b, "seconds": seconds, "answers_per_s": b / seconds}
        )
    patches = stock.config.image_seq_length

    def llava():
        ids = prompt(text, stock.config.image_token_id, patches, b)
        stock.generate(**ids, pixel_values=pixels, max_new_tokens=new, min_new_tokens=new,
                       do_sample=False, pad_token_id=0)  # fmt: skip

    seconds = median_seconds(llava, device, args.repeats, 1)
    results.append(
        {
            "variant": f"llava-{patches}",
            "batch": b,
            "seconds": seconds,
            "answers_per_s": b / seconds,
        }
    )
    return results


def conditions(args, device, ours) -> dict:
    import transformers

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "preset": args.preset,
        "device": str(device),
        "gpu": gpu,
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "dtype": args.dtype,
        "parameters_b": sum(p.numel() for p in ours.parameters()) / 1e9,
        "prompt_tokens": args.prompt_tokens,
        "decode_tokens": args.decode_tokens,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def markdown(result: dict) -> str:
    c = result["conditions"]
    where = c["gpu"] or f"{c['device']} ({c['cpu']}, {c['threads']} threads)"
    lines = [
        f"GPU check, preset `{c['preset']}` ({c['parameters_b']:.2f} B parameters), {c['dtype']}, "
        f"on {where}; torch {c['torch']}, transformers {c['transformers']}; "
        f"{c['prompt_tokens']} text tokens, medians of {c['repeats']} runs.",
        "",
        "| variant | visual tokens | prefill ms | LLaVA / this, time | LLaVA / this, FLOPs "
        "| decode ms/token | peak GPU GB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        peak = "n/a" if r["peak_gpu_gb"] is None else f"{r['peak_gpu_gb']:.1f}"
        lines.append(
            f"| {r['variant']} | {r['visual_tokens']} | {r['prefill_ms']:.1f} "
            f"| {r['time_ratio']:.2f}x | {r['flop_ratio']:.2f}x "
            f"| {r['decode_ms_per_token']:.2f} | {peak} |"
        )
    lines += ["", "| eval-style batch | size | seconds | answers/s |", "|---|---:|---:|---:|"]
    for r in result["batch"]:
        lines.append(
            f"| {r['variant']} | {r['batch']} | {r['seconds']:.2f} | {r['answers_per_s']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the JSON and Markdown")
    parser.add_argument("--preset", choices=("7b", "tiny"), default="7b")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default="bfloat16")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--prompt-tokens", type=int, default=60)
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args(argv)
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA GPU here: run on a GPU machine, or --preset tiny --device cpu")
    result = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "gpu_check.md").write_text(markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
