"""`mqt-llava gradcam` and `mqt-llava attention`: maps of visual tokens as PNGs and a grid figure.

Imported for `--help`: torch, transformers and matplotlib are imported inside the run functions.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import cli_args
from ..hub.cli_args import model_reference

# The paper's teaser budgets; the default keeps those the model has (m <= M).
TEASER_BUDGETS = (8, 16, 64, 256)
# Columns of the grid figure with `--token all` (every map is still written as its own PNG).
MAX_GRID_TOKENS = 8


_budgets = cli_args.budget_list


def _tokens(text: str) -> list[int] | str:
    if text.strip() == "all":
        return "all"
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 'all' or 0-based token indices separated by commas (e.g. 0 or 0,5), "
            f"got {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("expected a token index (e.g. 0) or 'all'")
    return values


def _load(model: Path | None, device: str | None):
    cli_args.quiet_transformers()
    from ..inference import load

    return load(model, device=device)


def _default_budgets(budgets: list[int] | None, max_tokens: int) -> list[int]:
    if budgets:
        return budgets
    return [m for m in TEASER_BUDGETS if m <= max_tokens] or [max_tokens]


def _grid_tokens(maps: dict[int, dict[int, object]]) -> tuple[list[int], str]:
    """The grid's columns, and a note when `--token all` gave more than fit."""
    tokens = sorted({k for per_budget in maps.values() for k in per_budget})
    if len(tokens) <= MAX_GRID_TOKENS:
        return tokens, ""
    shown = tokens[:MAX_GRID_TOKENS]
    return shown, f" (grid shows tokens {shown[0]}..{shown[-1]}; every map has its own PNG)"


def _save_maps(out: Path, prefix: str, image, maps, normalise: str | None) -> int:
    """Writes `<prefix>_m<m>_token<k>.png` overlays and `<prefix>_maps.npz`; returns the count."""
    import numpy as np

    from .plotting import overlay

    arrays = {}
    for m, per_budget in maps.items():
        for k, cam in per_budget.items():
            overlay(image, cam, normalise=normalise).save(out / f"{prefix}_m{m}_token{k}.png")
            arrays[f"m{m}_token{k}"] = cam
    np.savez_compressed(out / f"{prefix}_maps.npz", **arrays)
    return len(arrays)


def gradcam_command(
    image: Path,
    question: str,
    model: Path | None,
    num_visual_tokens: list[int] | None,
    token: list[int] | str,
    target: str,
    method: str,
    max_new_tokens: int,
    device: str | None,
    out: Path,
    baseline: str = "mean",
) -> None:
    """Grad-CAM of visual tokens at several budgets: overlays, a grid figure and the arrays."""
    from ..model.images import load_image
    from .grad_cam import gradcam, parse_target
    from .plotting import save_grid

    picture = load_image(image)  # bad files fail here, before the model loads
    parse_target(target)  # and bad targets too
    vlm = _load(model, device)
    budgets = _default_budgets(num_visual_tokens, vlm.max_visual_tokens)
    result = gradcam(
        vlm.model, vlm.processor, picture, question, budgets, token, target, method,
        baseline, template=vlm.template, max_new_tokens=max_new_tokens,
    )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    count = _save_maps(out, "gradcam", result.image, result.maps, normalise=None)
    shown, note = _grid_tokens(result.maps)
    how = method if baseline == "zero" else f"{method}, mean baseline"
    grid = save_grid(
        result.image, result.maps, out / "gradcam_grid.png", tokens=shown,
        title=f"Grad-CAM ({how}) of {result.target}: {question}", row_labels=result.answers,
    )  # fmt: skip
    summary = {
        "question": question,
        "target": result.target,
        "method": method,
        "baseline": baseline,
        "budgets": {
            str(m): {
                "answer": result.answers.get(m),
                "most_relevant_token": result.most_relevant_token(m),
                "relevance": {str(k): v for k, v in result.relevance[m].items()},
            }
            for m in result.maps
        },
    }
    (out / "gradcam.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{'tokens':>6}  {'top token':>9}  answer")
    for m in result.maps:
        answer = "".join(ch for ch in result.answers.get(m, "") if ch.isprintable())
        print(f"{m:>6}  {result.most_relevant_token(m):>9}  {answer}")
    print(f"wrote {count} overlays, gradcam_maps.npz and gradcam.json to {out}; grid: {grid}{note}")


def attention_command(
    image: Path | None,
    model: Path | None,
    num_visual_tokens: list[int] | None,
    token: list[int] | str,
    head: int | None,
    device: str | None,
    out: Path,
) -> None:
    """The connector's attention map of each query (visual token) over the patch grid."""
    from PIL import Image

    from ..model.images import load_image
    from .attention import connector_attention
    from .grad_cam import model_view, resolve_tokens
    from .plotting import save_grid

    picture = load_image(image) if image is not None else None
    vlm = _load(model, device)
    budgets = _default_budgets(num_visual_tokens, vlm.max_visual_tokens)
    pixels = vlm.processor.preprocess_images([picture]) if picture is not None else None
    attention = connector_attention(vlm.model, budgets, pixels, head=head)
    maps = {m: {k: attention[m][k] for k in resolve_tokens(token, m)} for m in attention}
    if pixels is not None:
        view = model_view(vlm.processor, pixels[0])
    else:  # position-only keys: the map is the same for every image; draw it on plain grey
        size = vlm.processor.preprocess_images([Image.new("RGB", (8, 8))]).shape[-1]
        view = Image.new("RGB", (size, size), (128, 128, 128))
    out.mkdir(parents=True, exist_ok=True)
    count = _save_maps(out, "attention", view, maps, normalise="minmax")
    heads = "mean over heads" if head is None else f"head {head}"
    keys = vlm.model.config.key_source
    shown, note = _grid_tokens(maps)
    grid = save_grid(
        view, maps, out / "attention_grid.png", tokens=shown,
        title=f"Connector attention ({heads}; {keys} keys)",
        normalise="minmax",
    )  # fmt: skip
    print(
        f"connector keys: {keys}"
        + (" (the same map for every image)" if keys == "position" else "")
    )
    print(f"wrote {count} overlays and attention_maps.npz to {out}; grid: {grid}{note}")


def register(subparsers) -> None:
    """Adds `gradcam` and `attention` to the `mqt-llava` command."""
    budgets_help = "budgets, e.g. 8,16,64,256 (default: those of 8,16,64,256 that are <= M)"
    token_help = "0-based visual-token index(es), e.g. 0 or 0,5, or 'all' (default: 0)"

    p = subparsers.add_parser(
        "gradcam",
        help="Grad-CAM of visual tokens at several budgets (PNG overlays + grid figure).",
        description=gradcam_command.__doc__,
    )
    p.add_argument("--image", type=Path, required=True)
    p.add_argument("--question", required=True, help="the question, without <image>")
    p.add_argument("--model", type=model_reference, help="model folder or hub id")
    p.add_argument("--num-visual-tokens", type=_budgets, help=budgets_help)
    p.add_argument("--token", type=_tokens, default=[0], help=token_help)
    p.add_argument(
        "--target",
        default="answer",
        help="'answer' (summed logits of the greedy answer) or 'logit:ID' (default: answer)",
    )
    p.add_argument("--method", choices=("gradcam", "gradxact"), default="gradcam")
    p.add_argument(
        "--baseline",
        choices=("mean", "zero"),
        default="mean",
        help="activations measured from the image's mean patch feature (default) or from zero "
        "(classic Grad-CAM)",
    )
    p.add_argument(
        "--max-new-tokens",
        type=cli_args.positive_int,
        default=16,
        help="greedy answer length limit",
    )
    p.add_argument(
        "--device", type=cli_args.device, help="cpu, cuda, ... (default: cuda if available)"
    )
    cli_args.add_threads_argument(p)
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.set_defaults(
        run=lambda a: gradcam_command(
            a.image,
            a.question,
            a.model,
            a.num_visual_tokens,
            a.token,
            a.target,
            a.method,
            a.max_new_tokens,
            a.device,
            a.out,
            a.baseline,
        )
    )

    p = subparsers.add_parser(
        "attention",
        help="The connector's attention map of each visual token (PNG overlays + grid figure).",
        description=attention_command.__doc__,
    )
    p.add_argument("--image", type=Path, help="needed for content-key models; optional otherwise")
    p.add_argument("--model", type=model_reference, help="model folder or hub id")
    p.add_argument("--num-visual-tokens", type=_budgets, help=budgets_help)
    p.add_argument("--token", type=_tokens, default=[0], help=token_help)
    p.add_argument(
        "--head",
        type=cli_args.nonnegative_int,
        help="one head's map (default: the mean over heads)",
    )
    p.add_argument(
        "--device", type=cli_args.device, help="cpu, cuda, ... (default: cuda if available)"
    )
    cli_args.add_threads_argument(p)
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.set_defaults(
        run=lambda a: attention_command(
            a.image, a.model, a.num_visual_tokens, a.token, a.head, a.device, a.out
        )
    )
