"""Prefill latency and decode speed per budget, against the stock `transformers` LLaVA.

One process builds a random-weight MQT-LLaVA and a stock `LlavaForConditionalGeneration` that
*shares* its vision tower and language model (same modules, same weights); only the connector
differs: our Matryoshka Query Transformer at m tokens, or LLaVA-1.5's two-layer MLP at every
patch. Every repetition runs every variant in a rotated order (interleaved, so that load from
other processes spreads over all of them); figures are medians over repetitions.

Per variant it measures:
- prefill: one forward over the prompt with the image (`use_cache=True`, last-position logits),
  split by forward hooks into vision tower, connector and LLM (decoder + head);
- decode: the per-step time of `generate` after its prefill (a stopping criterion stamps every
  step), and the same for the bare language model on a text-only prompt of the same length, so
  both decode at the same context length;
- peak activation memory of the prefill: live tensor bytes beyond the weights
  ([`PeakTensorMemory`]), in a separate untimed pass.
FLOPs come from [`flops`](flops.py), counted on the meta device for the same prompt.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from transformers import StoppingCriteria, StoppingCriteriaList

from ..model.presets import preset_config
from .flops import BUDGETS, baseline_config, flops_report
from .memory import PeakTensorMemory
from .report import summarize

# Wall time, and the CPU time of the calling thread: with one intra-op thread all of the model's
# work runs on that thread, and its CPU time leaves out the time it waits for a core, the main
# source of noise on a shared machine.
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.thread_time}


def _now() -> dict[str, float]:
    return {name: clock() for name, clock in CLOCKS.items()}


def _since(start: dict[str, float]) -> dict[str, float]:
    return {name: clock() - start[name] for name, clock in CLOCKS.items()}


@dataclass
class Variant:
    """One model at one budget, its inputs, and its samples: `samples[(measure, clock)]`."""

    name: str
    num_visual_tokens: int
    model: nn.Module
    inputs: dict[str, Any]
    samples: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    peak_bytes: int = 0


class _PartTimer:
    """Time spent inside given modules, by forward hooks (CPU execution is synchronous)."""

    def __init__(self, parts: dict[str, list[nn.Module]]):
        self.seconds: dict[str, dict[str, float]] = {}
        self._start: dict[int, dict[str, float]] = {}
        self._handles = []
        for name, modules in parts.items():
            for module in modules:
                self._handles.append(module.register_forward_pre_hook(self._pre))
                self._handles.append(module.register_forward_hook(self._post(name)))

    def _pre(self, module, args) -> None:
        self._start[id(module)] = _now()

    def _post(self, name: str) -> Callable:
        def hook(module, args, output) -> None:
            total = self.seconds.setdefault(name, dict.fromkeys(CLOCKS, 0.0))
            for clock, seconds in _since(self._start.pop(id(module))).items():
                total[clock] += seconds

        return hook

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


class _StepClock(StoppingCriteria):
    """Stamps the time of every generation step and never stops generation."""

    def __init__(self):
        self.stamps: list[dict[str, float]] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        self.stamps.append(_now())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def decode_step_seconds(
    model: nn.Module, inputs: dict[str, Any], new_tokens: int
) -> dict[str, list[float]]:
    """Seconds of each decode step of greedy `generate` (its prefill step left out), per clock."""
    clock = _StepClock()
    with torch.no_grad():
        model.generate(
            **inputs,
            max_new_tokens=new_tokens,
            do_sample=False,
            stopping_criteria=StoppingCriteriaList([clock]),
            pad_token_id=0,
        )
    pairs = list(zip(clock.stamps, clock.stamps[1:], strict=False))
    return {name: [b[name] - a[name] for a, b in pairs] for name in CLOCKS}


def build_models(config, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """A random MQT-LLaVA and a stock `LlavaForConditionalGeneration` sharing its backbones.

    The stock model's vision tower, decoder and LM head *are* ours (the same modules), so any
    difference in time comes from the connector, the number of visual tokens and the glue code.
    Its placeholder id is the LM's last vocabulary id when ours lies outside the vocabulary (the
    stock model embeds placeholder ids before replacing them).
    """
    from transformers import LlavaForConditionalGeneration

    from ..model import MQTLlavaForConditionalGeneration

    torch.manual_seed(seed)
    ours = MQTLlavaForConditionalGeneration(config).eval()
    llava_config = baseline_config(config)
    vocab = config.text_config.vocab_size
    if llava_config.image_token_id >= vocab:
        llava_config.image_token_id = vocab - 1
    with torch.device("meta"):  # no memory or init time for the parts replaced right below
        stock = LlavaForConditionalGeneration(llava_config)
    stock.model.vision_tower = ours.vision_tower
    stock.model.language_model = ours.language_model.get_decoder()
    stock.lm_head = ours.language_model.get_output_embeddings()
    projector = stock.model.multi_modal_projector.to_empty(device="cpu")
    for linear in (projector.linear_1, projector.linear_2):
        linear.reset_parameters()
    return ours, stock.eval()


def _prompt(text: torch.Tensor, image_token_id: int, m: int) -> dict[str, torch.Tensor]:
    """`text` ids with m placeholders after the first tokens (where llava_v1 puts `<image>`)."""
    split = min(len(text), 35)
    ids = torch.cat([text[:split], torch.full((m,), image_token_id), text[split:]])[None]
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def build_variants(
    ours: nn.Module, stock: nn.Module, budgets: list[int], prompt_tokens: int, seed: int = 0
) -> list[Variant]:
    """One variant per budget of `ours`, then the stock LLaVA at every patch (last)."""
    gen = torch.Generator().manual_seed(seed)
    size = ours.config.vision_config.image_size
    pixels = torch.randn(1, 3, size, size, generator=gen)
    text = torch.randint(3, ours.config.text_config.vocab_size - 1, (prompt_tokens,), generator=gen)
    variants = []
    for m in budgets:
        inputs = _prompt(text, ours.config.image_token_id, m)
        inputs.update(pixel_values=pixels, num_visual_tokens=m)
        variants.append(Variant(f"m={m}", m, ours, inputs))
    n = stock.config.image_seq_length
    inputs = {**_prompt(text, stock.config.image_token_id, n), "pixel_values": pixels}
    variants.append(Variant(f"llava-{n}", n, stock, inputs))
    return variants


def run_latency(
    config=None,
    budgets: list[int] | None = None,
    prompt_tokens: int = 60,
    new_tokens: int = 16,
    repeats: int = 5,
    warmup: int = 1,
    threads: int = 1,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measures every variant, interleaved; returns medians, ratios and the run's conditions.

    Args:
        config: An `MQTLlavaConfig`; default the `bench` preset (`mqt_llava.model.presets`).
        budgets: Budgets of our model; default those of `flops.BUDGETS` up to M.
        prompt_tokens: Text tokens of the prompt (visual tokens come on top).
        new_tokens: Tokens generated per decode measurement (>= 2).
        repeats: Timed repetitions (each runs every variant once).
        warmup: Untimed repetitions first (oneDNN and the allocator warm up per shape).
        threads: `torch.set_num_threads` for the run; with 1, ratios use CPU time.
        seed: Seed of the random weights and inputs.
        progress: Called with a line of text after each repetition.

    Returns:
        `{"rows": [...], "baseline": {...}, "conditions": {...}}`, see [`report.summarize`].
    """
    from ..model import check_num_visual_tokens

    config = config if config is not None else preset_config("bench")
    if budgets is None:
        budgets = [m for m in BUDGETS if m <= config.num_queries]
    budgets = [check_num_visual_tokens(m, config.num_queries) for m in budgets]
    for name, value, low in (
        ("repeats", repeats, 1),
        ("new_tokens", new_tokens, 2),
        ("threads", threads, 1),
        ("warmup", warmup, 0),
        ("prompt_tokens", prompt_tokens, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        variants, conditions = _run(
            config, budgets, prompt_tokens, new_tokens, repeats, warmup, seed, progress
        )
    finally:
        torch.set_num_threads(previous_threads)
    conditions.update(
        prompt_tokens=prompt_tokens,
        new_tokens=new_tokens,
        repeats=repeats,
        warmup=warmup,
    )
    clock = "cpu" if threads == 1 else "wall"
    return summarize(variants, flops_report(config, budgets, prompt_tokens), conditions, clock)


def _run(config, budgets, prompt_tokens, new_tokens, repeats, warmup, seed, progress):
    """Builds the models and variants, measures them interleaved; returns them and conditions."""
    load_before = os.getloadavg()
    ours, stock = build_models(config, seed)
    variants = build_variants(ours, stock, budgets, prompt_tokens, seed)
    llm = ours.language_model
    timer = _PartTimer(
        {
            "vision": [ours.vision_tower],
            "connector": [ours.connector, stock.model.multi_modal_projector],
            "llm": [llm.get_decoder(), llm.get_output_embeddings()],
        }
    )
    start = time.perf_counter()
    try:
        for rep in range(warmup + repeats):
            shift = rep % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                _measure(variant, timer, llm, new_tokens, record=rep >= warmup, flip=rep % 2)
            if progress is not None:
                kind = "warm-up" if rep < warmup else "repetition"
                seconds = time.perf_counter() - start
                progress(f"{kind} {rep + 1}/{warmup + repeats} done ({seconds:.0f} s)")
    finally:
        timer.remove()
    weights = [*ours.parameters(), *ours.buffers(), *stock.parameters(), *stock.buffers()]
    for variant in variants:
        variant.peak_bytes = _peak_prefill_bytes(variant, weights)
    conditions = _conditions(load_before, time.perf_counter() - start, ours, stock)
    return variants, conditions


def _measure(
    variant: Variant, timer: _PartTimer, llm: nn.Module, new_tokens: int, record: bool, flip: int
) -> None:
    """One prefill and one decode measurement of `variant`, and the bare LLM's decode."""
    timer.seconds.clear()
    with torch.no_grad():
        start = _now()
        variant.model(**variant.inputs, logits_to_keep=1, use_cache=True)
        total = _since(start)
    # Copies: the hooks keep counting during the decode runs below.
    parts = {"prefill": total, **{name: dict(t) for name, t in timer.seconds.items()}}
    # The bare LLM on text of the same length decodes at the same context length.
    ids = variant.inputs["input_ids"].clamp(max=llm.config.vocab_size - 1)
    text_only = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    runs = [("decode", variant.model, variant.inputs), ("plain_decode", llm, text_only)]
    for measure, model, inputs in runs[::-1] if flip else runs:
        parts[measure] = decode_step_seconds(model, inputs, new_tokens)
    if not record:
        return
    for measure, by_clock in parts.items():
        for clock, value in by_clock.items():
            sink = variant.samples[(measure, clock)]
            sink.extend(value) if isinstance(value, list) else sink.append(value)


def _peak_prefill_bytes(variant: Variant, weights: list[torch.Tensor]) -> int:
    tensors = [t for t in variant.inputs.values() if isinstance(t, torch.Tensor)]
    with torch.no_grad(), PeakTensorMemory(ignore=[*weights, *tensors]) as memory:
        variant.model(**variant.inputs, logits_to_keep=1, use_cache=True)
    return memory.peak_bytes


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            names = (line.split(":", 1)[1] for line in f if line.startswith("model name"))
            return next(names).strip()
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def _conditions(load_before, seconds: float, ours: nn.Module, stock: nn.Module) -> dict[str, Any]:
    def count(module: nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    return {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "seconds": round(seconds, 1),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "parameters": {
            "vision": count(ours.vision_tower),
            "connector": count(ours.connector),
            "llava_projector": count(stock.model.multi_modal_projector),
            "llm": count(ours.language_model),
        },
        "dtype": str(next(ours.parameters()).dtype).removeprefix("torch."),
    }
