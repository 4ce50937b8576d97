"""Prefill FLOPs per visual-token budget, counted on the meta device (no weights needed).

Each model is built on PyTorch's meta device, so a 7B configuration costs no memory, and its
prefill runs under `torch.utils.flop_counter.FlopCounterMode`, which counts the matmul-type
operations (linear, bmm, convolution, attention) of what actually executes. Three parts are
counted separately:

- vision: the vision tower on one image (all its layers run, as in the release);
- connector: our Matryoshka Query Transformer at budget m, or LLaVA-1.5's two-layer MLP;
- LLM: the language model on `prompt_tokens` text tokens plus the visual tokens, with logits for
  the last position only (what a prefill before generation needs).

The baseline is the stock `transformers` `LlavaForConditionalGeneration` with the same vision
tower and LLM, a two-layer GELU MLP projector and every patch as a visual token (576 for
CLIP ViT-L/14-336): LLaVA-1.5.

Attention runs in its "eager" form: with SDPA on CPU/meta the counter misses the attention
matmuls. The placeholder merge (a masked copy, 0 FLOPs) is skipped: both models' merges check the
placeholder count with `.item()`, which meta tensors cannot answer, so the parts are run one by one
and the LLM gets the spliced `inputs_embeds` directly.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

BUDGETS = (1, 2, 4, 8, 16, 36, 64, 144, 256)


@dataclass
class FlopsRow:
    """Prefill FLOPs of one configuration, in TFLOPs (10^12 floating-point operations)."""

    num_visual_tokens: int
    vision_tflops: float
    connector_tflops: float
    llm_tflops: float
    total_tflops: float


def load_config(model_dir: str | Path):
    """The `MQTLlavaConfig` of a saved model folder (only `config.json` is read).

    Raises:
        FileNotFoundError: If the folder has no `config.json`.
    """
    from ..model import MQTLlavaConfig

    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"No config.json in {path}: pass a saved MQT-LLaVA model folder.")
    return MQTLlavaConfig.from_pretrained(path)


def baseline_config(config):
    """The LLaVA-1.5 twin of an MQT-LLaVA config: same tower and LLM, two-layer MLP projector.

    Args:
        config: An `MQTLlavaConfig`.

    Returns:
        A `transformers.LlavaConfig` whose image gives every patch as a visual token.
    """
    from transformers import LlavaConfig

    rows, cols = config.feature_grid
    return LlavaConfig(
        vision_config=copy.deepcopy(config.vision_config),
        text_config=copy.deepcopy(config.text_config),
        image_token_id=config.image_token_id,
        vision_feature_layer=config.vision_feature_layer,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        projector_hidden_act="gelu",
        image_seq_length=rows * cols,
    )


def _flops(fn, *args, **kwargs) -> tuple[float, Any]:
    """Runs `fn` under the FLOP counter; returns (TFLOPs, result)."""
    with FlopCounterMode(display=False) as counter:
        result = fn(*args, **kwargs)
    return counter.get_total_flops() / 1e12, result


def _meta_model(model_class, config):
    """Builds `model_class(config)` on the meta device with eager attention (counted by the
    FLOP counter, unlike SDPA), in eval mode."""
    with torch.device("meta"):
        model = model_class._from_config(config, attn_implementation="eager")
    return model.eval()


def _pixel_values(vision_config, batch: int = 1) -> torch.Tensor:
    size = vision_config.image_size
    return torch.zeros(batch, vision_config.num_channels, size, size, device="meta")


def _llm_flops(model, visual: torch.Tensor, prompt_tokens: int) -> float:
    """FLOPs of the LLM prefill on `prompt_tokens` text embeddings + `visual` (1, m, D), with
    last-position logits. `model` is either composite model: both accept `inputs_embeds`."""
    text = torch.zeros(1, prompt_tokens, visual.shape[-1], device="meta")
    embeds = torch.cat([visual.to(text.dtype), text], dim=1)  # (1, m + prompt, D)
    mask = torch.ones(embeds.shape[:2], dtype=torch.long, device="meta")  # avoids .item()
    tflops, _ = _flops(
        model, inputs_embeds=embeds, attention_mask=mask, logits_to_keep=1, use_cache=False
    )
    return tflops


@torch.no_grad()
def count_mqt_flops(
    config, budgets: tuple[int, ...] | list[int] = BUDGETS, prompt_tokens: int = 60
) -> list[FlopsRow]:
    """Prefill FLOPs of an MQT-LLaVA configuration at each budget.

    Args:
        config: An `MQTLlavaConfig` (it is not modified).
        budgets: Budgets m to count, each in [1, M].
        prompt_tokens: Text tokens of the prompt (the visual tokens come on top).

    Returns:
        One [`FlopsRow`] per budget.
    """
    from ..model import MQTLlavaForConditionalGeneration, check_num_visual_tokens

    budgets = [check_num_visual_tokens(m, config.num_queries) for m in budgets]
    _check_prompt_tokens(prompt_tokens)
    model = _meta_model(MQTLlavaForConditionalGeneration, config)
    vision, features = _flops(model.get_vision_features, _pixel_values(config.vision_config))
    rows = []
    for m in budgets:
        connector, visual = _flops(model.connector, features, m)  # (1, m, D)
        llm = _llm_flops(model, visual, prompt_tokens)
        rows.append(FlopsRow(m, vision, connector, llm, vision + connector + llm))
    return rows


@torch.no_grad()
def count_llava_flops(llava_config, prompt_tokens: int = 60) -> FlopsRow:
    """Prefill FLOPs of a stock `transformers` LLaVA (the LLaVA-1.5 baseline).

    Args:
        llava_config: A `transformers.LlavaConfig`, e.g. from [`baseline_config`].
        prompt_tokens: Text tokens of the prompt (the image's patches come on top).

    Returns:
        A [`FlopsRow`] whose `num_visual_tokens` is the number of patches.
    """
    from transformers import LlavaForConditionalGeneration

    _check_prompt_tokens(prompt_tokens)
    model = _meta_model(LlavaForConditionalGeneration, llava_config)
    pixels = _pixel_values(llava_config.vision_config)
    vision, outputs = _flops(model.model.vision_tower, pixels, output_hidden_states=True)
    features = outputs.hidden_states[llava_config.vision_feature_layer]  # (1, N(+1), C)
    if llava_config.vision_feature_select_strategy == "default":
        features = features[:, 1:]  # CLS dropped, as LlavaModel.get_image_features does
    connector, visual = _flops(model.model.multi_modal_projector, features)  # (1, N, D)
    llm = _llm_flops(model, visual, prompt_tokens)
    return FlopsRow(visual.shape[1], vision, connector, llm, vision + connector + llm)


def flops_report(
    config, budgets: tuple[int, ...] | list[int] | None = None, prompt_tokens: int = 60
) -> dict[str, Any]:
    """The baseline and per-budget rows, as the `--json` output prints them.

    Args:
        config: An `MQTLlavaConfig`.
        budgets: Budgets to count; default: those of [`BUDGETS`] up to M, and M itself.
        prompt_tokens: Text tokens of the prompt.

    Returns:
        `{"baseline": {...}, "rows": [{...}, ...], "prompt_tokens": int}`, FLOPs in TFLOPs.
    """
    if budgets is None:
        budgets = sorted({m for m in BUDGETS if m <= config.num_queries} | {config.num_queries})
    baseline = count_llava_flops(baseline_config(config), prompt_tokens)
    rows = count_mqt_flops(config, budgets, prompt_tokens)
    return {
        "baseline": asdict(baseline),
        "rows": [asdict(row) for row in rows],
        "prompt_tokens": prompt_tokens,
    }


def format_report(report: dict[str, Any]) -> str:
    """A plain-text table of a [`flops_report`], with ratios against the baseline."""
    base = report["baseline"]
    # The unit follows the model's size, so that a small model's figures are not all 0.000.
    scale, unit = next(
        (s, u)
        for s, u in ((1, "TFLOPs"), (1e3, "GFLOPs"), (1e6, "MFLOPs"), (1e9, "kFLOPs"))
        if base["total_tflops"] * s >= 1 or u == "kFLOPs"
    )
    lines = [
        f"Prefill {unit}, one image + {report['prompt_tokens']} text tokens, last-position logits",
        f"{'tokens':>8} {'vision':>8} {'connector':>10} {'LLM':>8} {'total':>8}"
        f" {'base/total':>10} {'base/LLM':>9}",
    ]

    def line(name: str, row: dict) -> str:
        return (
            f"{name:>8} {scale * row['vision_tflops']:8.3f} {scale * row['connector_tflops']:10.4f}"
            f" {scale * row['llm_tflops']:8.3f} {scale * row['total_tflops']:8.3f}"
            f" {base['total_tflops'] / row['total_tflops']:9.2f}x"
            f" {base['llm_tflops'] / row['llm_tflops']:8.2f}x"
        )

    for row in report["rows"]:
        lines.append(line(str(row["num_visual_tokens"]), row))
    lines.append(line(f"LLaVA{base['num_visual_tokens']}", base))
    return "\n".join(lines)


def _check_prompt_tokens(prompt_tokens: int) -> None:
    if isinstance(prompt_tokens, bool) or not isinstance(prompt_tokens, int) or prompt_tokens < 0:
        raise ValueError(f"prompt_tokens must be an integer >= 0, got {prompt_tokens!r}.")
