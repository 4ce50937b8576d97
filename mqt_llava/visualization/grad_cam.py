"""Grad-CAM of single visual tokens: which image patches does visual token k carry to the answer?

For a budget m the model turns the vision encoder's patch features A (N, C) into m visual tokens
T_1..T_m, and the language model turns those into an answer. A target score s (see
[`parse_target`]) is differentiated with respect to A, **through token k only**:

    g_k = d s / d A  with every visual token except T_k held fixed
        = J_k^T (d s / d T_k),     J_k = d T_k / d A                       # (N, C)

(the same as detaching all tokens but T_k before the language model). Then, on the patch grid:

    Grad-CAM          map_k[n] = ReLU( sum_c  w_c A[n, c] ),  w_c = mean_n g_k[n, c]
    grad x activation map_k[n] = ReLU( sum_c  g_k[n, c] A[n, c] )

With `baseline="mean"` (the default), A is replaced by A - mean_n A[n] in both formulas:
activations are measured from the image's average patch rather than from zero; `"zero"` is the
classic form. Transformer patch features share a large common component (on the bundled model
its norm is ~55, against ~2.5 per channel of spread across patches), and from zero the maps
mostly measure it: in the pointing game (scripts/gradcam_pointing_game.py) the most relevant
token's map finds the object more often from the mean, with either method.

Each map is reshaped to the patch grid (rows, cols) and divided by its maximum (all zeros when
nothing is positive). The unnormalised mass `sum_n map_k[n]` is the token's *relevance*.

The whole path pixels -> encoder -> A -> connector -> language model runs with gradients enabled
(nothing on it is wrapped in no-grad); only the greedy answer itself is generated without them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from PIL import Image

from ..model import MQTLlavaForConditionalGeneration, MQTLlavaProcessor, check_num_visual_tokens
from ..model.images import ImageInput

Method = Literal["gradcam", "gradxact"]
METHODS = ("gradcam", "gradxact")
Baseline = Literal["zero", "mean"]
BASELINES = ("zero", "mean")
TokenSpec = int | Sequence[int] | Literal["all"]


@dataclass(frozen=True)
class Target:
    """What the maps explain: `kind="answer"` or `kind="logit"` with a token `id`."""

    kind: Literal["answer", "logit"]
    token_id: int | None = None

    def __str__(self) -> str:
        return "answer" if self.kind == "answer" else f"logit:{self.token_id}"


def parse_target(spec: str | Target, vocab_size: int | None = None) -> Target:
    """Parses a target: `"answer"` or `"logit:ID"`.

    `answer` is the summed logit (pre-softmax score) of the model's own greedy answer tokens,
    teacher-forced after the prompt (the EOS logit at the first answer position when the answer is
    empty). `logit:ID` is the logit of token ID at the first answer position (right after the
    prompt). Logits, not log-probabilities, as in Grad-CAM: a log-probability saturates near 0
    when the model is sure, and its vanishing gradients leave maps and relevances to rounding.

    Raises:
        ValueError: For any other text, or an ID outside the vocabulary.
    """
    if isinstance(spec, Target):
        target = spec
    elif spec == "answer":
        target = Target("answer")
    elif isinstance(spec, str) and spec.startswith("logit:") and spec[6:].strip().isdigit():
        target = Target("logit", int(spec[6:]))
    else:
        raise ValueError(
            f"target must be 'answer' or 'logit:ID' (ID a token id, e.g. logit:319), got {spec!r}."
        )
    if target.kind == "logit" and vocab_size is not None and not 0 <= target.token_id < vocab_size:
        raise ValueError(
            f"target token id {target.token_id} is outside the vocabulary (0..{vocab_size - 1})."
        )
    return target


def resolve_tokens(tokens: TokenSpec, budget: int) -> list[int]:
    """The 0-based visual-token indices to explain at one budget.

    Args:
        tokens: An index, a list of indices, or `"all"` (every token of the budget).
        budget: m; valid indices are 0..m-1.

    Raises:
        ValueError: For a negative index or one that does not exist at this budget.
    """
    if isinstance(tokens, str):
        if tokens != "all":
            raise ValueError(
                f"tokens must be an index, a list of indices or 'all', got {tokens!r}."
            )
        return list(range(budget))
    wanted = [tokens] if isinstance(tokens, (int, np.integer)) else list(tokens)
    if not wanted:
        raise ValueError("tokens is empty: give at least one visual-token index, or 'all'.")
    for k in wanted:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise ValueError(f"visual-token indices are integers >= 0, got {k!r}.")
        if k >= budget:
            raise ValueError(
                f"visual token {k} does not exist at a budget of {budget} tokens (indices "
                f"0..{budget - 1}): choose a smaller token index or drop budgets below {k + 1}."
            )
    return [int(k) for k in dict.fromkeys(wanted)]


@dataclass
class GradCAMResult:
    """Maps of [`gradcam`], indexable as `result[budget][token]` -> (rows, cols) array in [0, 1].

    Attributes:
        maps: budget -> token -> (rows, cols) float32 map normalised to [0, 1].
        raw: The same maps before normalisation.
        relevance: budget -> token -> unnormalised mass of the map (how much positive evidence
            for the target flows through that token).
        answers: budget -> the greedy answer whose score was explained (`target="answer"`).
        target: The target explained, as text.
        method: `"gradcam"` or `"gradxact"`.
        baseline: `"zero"` or `"mean"`: what the activations were measured from.
        image: The image as the model saw it (padded to square, resized, cropped), RGB.
    """

    maps: dict[int, dict[int, np.ndarray]]
    raw: dict[int, dict[int, np.ndarray]]
    relevance: dict[int, dict[int, float]]
    answers: dict[int, str]
    target: str
    method: str
    image: Image.Image = field(repr=False)
    baseline: str = "mean"

    def __getitem__(self, budget: int) -> dict[int, np.ndarray]:
        return self.maps[budget]

    def most_relevant_token(self, budget: int) -> int:
        """The explained token with the largest relevance at `budget`."""
        scores = self.relevance[budget]
        return max(scores, key=scores.get)


def model_view(processor: MQTLlavaProcessor, pixel_values: torch.Tensor) -> Image.Image:
    """Undoes the image processor's normalisation: the picture the vision tower received.

    Args:
        processor: The processor that made `pixel_values`.
        pixel_values: (3, H, W) one preprocessed image.

    Returns:
        An RGB image of H x W pixels (the padded-to-square, resized and cropped input).
    """
    ip = processor.image_processor
    normalised = getattr(ip, "do_normalize", True)
    mean = torch.tensor(ip.image_mean if normalised else [0.0] * 3)[:, None, None]
    std = torch.tensor(ip.image_std if normalised else [1.0] * 3)[:, None, None]
    scale = getattr(ip, "rescale_factor", 1 / 255) if getattr(ip, "do_rescale", True) else 1.0
    pixels = (pixel_values.detach().float().cpu() * std + mean) / scale  # (3, H, W) in 0..255
    array = pixels.clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(array, "RGB")


def patch_grid(model: MQTLlavaForConditionalGeneration) -> tuple[int, int]:
    """`(rows, cols)` of the vision tower's patch grid."""
    return tuple(model.config.feature_grid)


def to_grid(values: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(..., N) per-patch values -> (..., rows, cols); a leading CLS entry (N = rows*cols+1) is
    dropped, as the vision features keep it under the "full" strategy of a CLIP tower."""
    rows, cols = grid
    if values.shape[-1] == rows * cols + 1:
        values = values[..., 1:]
    if values.shape[-1] != rows * cols:
        raise ValueError(
            f"{values.shape[-1]} patch features do not fill the {rows}x{cols} patch grid."
        )
    return values.unflatten(-1, (rows, cols))


def _prompt_ids(model, processor, question: str, m: int, template: str) -> torch.Tensor:
    """(1, L) prompt ids with m image placeholders, ending where the answer starts."""
    prompt = processor.build_prompt(question, num_images=1, template=template)
    return torch.tensor([processor.tokenize_prompt(prompt, [m])], device=model.device)


@torch.no_grad()
def greedy_answer(
    model, input_ids: torch.Tensor, pixel_values: torch.Tensor, m: int, max_new_tokens: int
) -> torch.Tensor:
    """The model's greedy answer ids (1-D), without the end-of-sequence token."""
    out = model.generate(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        pixel_values=pixel_values,
        num_visual_tokens=m,
        max_new_tokens=max_new_tokens,
        do_sample=False,
    )
    answer = out[0, input_ids.shape[1] :]
    eos = model.generation_config.eos_token_id
    eos = {eos} if isinstance(eos, int) else set(eos or [])
    ends = [i for i, t in enumerate(answer.tolist()) if t in eos]
    return answer[: ends[0]] if ends else answer


def _score(logits: torch.Tensor, prompt_len: int, answer: torch.Tensor, target: Target, eos: int):
    """The scalar to explain from (1, L, V) logits of prompt + answer (pre-softmax scores)."""
    first = logits[0, prompt_len - 1].float()  # (V,) predicts the first answer token
    if target.kind == "logit":
        return first[target.token_id]
    if answer.numel() == 0:
        return first[eos]
    steps = logits[0, prompt_len - 1 : prompt_len - 1 + answer.numel()].float()  # (A, V)
    return steps.gather(-1, answer[:, None]).sum()


def token_cam(
    features: torch.Tensor, grad: torch.Tensor, method: Method, baseline: Baseline = "mean"
) -> torch.Tensor:
    """One class-activation map from patch features and the gradient through one token.

    Args:
        features: (N, C) patch features A.
        grad: (N, C) gradient of the target with respect to A through one visual token.
        method: `"gradcam"` (channel weights = gradient averaged over patches) or `"gradxact"`
            (per-patch gradient times activation).
        baseline: `"mean"` measures the activations from the image's mean patch feature,
            A - mean_n A[n]; `"zero"` takes A as it is (classic Grad-CAM).

    Returns:
        (N,) non-negative, unnormalised map.
    """
    if baseline == "mean":
        features = features - features.mean(0, keepdim=True)
    if method == "gradcam":
        weights = grad.mean(0)  # (C,)
        return torch.relu(features @ weights)  # (N,)
    return torch.relu((grad * features).sum(-1))  # (N,)


def gradcam(
    model: MQTLlavaForConditionalGeneration,
    processor: MQTLlavaProcessor,
    image: ImageInput,
    question: str,
    budgets: Sequence[int],
    tokens: TokenSpec = 0,
    target: str | Target = "answer",
    method: Method = "gradcam",
    baseline: Baseline = "mean",
    template: str = "llava_v1",
    max_new_tokens: int = 16,
) -> GradCAMResult:
    """Grad-CAM maps of visual tokens over the vision encoder's patch grid, for several budgets.

    Args:
        model: The model (any dtype/device; it is not modified).
        processor: Its processor.
        image: A path, bytes, PIL image or uint8 array.
        question: The question, without `<image>`.
        budgets: Budgets m to explain, each in [1, M].
        tokens: 0-based visual-token index(es) to explain at every budget, or `"all"`.
        target: `"answer"` or `"logit:ID"` (see [`parse_target`]).
        method: `"gradcam"` or `"gradxact"` (see the module docstring).
        baseline: `"zero"` or `"mean"` (see the module docstring).
        template: Chat template of the prompt.
        max_new_tokens: Length limit of the greedy answer (`target="answer"`).

    Returns:
        [`GradCAMResult`]: `result[m][k]` is a (rows, cols) float32 array in [0, 1].

    Raises:
        ValueError: For a bad budget, token index, target, method or baseline.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}.")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}.")
    if isinstance(budgets, (int, np.integer)):
        budgets = [int(budgets)]
    if not budgets:
        raise ValueError("budgets is empty: give at least one num_visual_tokens value.")
    budgets = [check_num_visual_tokens(m, model.config.num_queries) for m in budgets]
    wanted = {m: resolve_tokens(tokens, m) for m in budgets}
    vocab = model.get_output_embeddings().weight.shape[0]
    target = parse_target(target, vocab)
    grid = patch_grid(model)
    pixels = processor.preprocess_images([image]).to(model.device)  # (1, 3, H, W)
    eos = processor.tokenizer.eos_token_id
    view = model_view(processor, pixels[0])
    result = GradCAMResult({}, {}, {}, {}, str(target), method, view, baseline)
    for m in dict.fromkeys(budgets):
        ids = _prompt_ids(model, processor, question, m, template)
        answer = ids.new_zeros(0)
        if target.kind == "answer":
            answer = greedy_answer(model, ids, pixels, m, max_new_tokens)
            result.answers[m] = processor.decode(answer, skip_special_tokens=True).strip()
        maps = _budget_maps(
            model, ids, answer, pixels, m, wanted[m], target, (method, baseline), eos
        )
        result.raw[m] = {k: to_grid(v, grid).numpy() for k, v in maps.items()}
        result.relevance[m] = {k: float(v.sum()) for k, v in result.raw[m].items()}
        result.maps[m] = {k: _normalise(v) for k, v in result.raw[m].items()}
    return result


def _budget_maps(model, ids, answer, pixels, m, tokens, target, how, eos):
    """(N,) maps of `tokens` at budget m; one language-model pass, one connector pass per token."""
    full = torch.cat([ids, answer[None]], dim=1) if answer.numel() else ids
    with torch.enable_grad():
        # Pixels require grad so that the encoder is on the graph even with frozen weights.
        pixels = pixels.detach().to(next(model.vision_tower.parameters()).dtype)
        pixels.requires_grad_(True)
        features = model.get_vision_features(pixels)  # (1, N, C)
        visual = model.connector(features.to(model.connector.query.dtype), m)  # (1, m, D)
        embed_dtype = model.get_input_embeddings().weight.dtype
        out = model(
            input_ids=full,
            attention_mask=torch.ones_like(full),
            visual_tokens=visual[0].to(embed_dtype),
        )
        score = _score(out.logits, ids.shape[1], answer, target, eos)
        # d score / d T_k for every token at once. This frees the language model's graph only:
        # the connector's and encoder's parts are not traversed and stay for the loop below.
        (token_grads,) = torch.autograd.grad(score, visual)  # (1, m, D)
        maps = {}
        for k in tokens:
            # The gradient through T_k alone: J_k^T (d score / d T_k).
            (grad,) = torch.autograd.grad(
                visual[0, k], features, grad_outputs=token_grads[0, k], retain_graph=True
            )  # (1, N, C)
            cam = token_cam(features[0].detach().float(), grad[0].float(), *how)
            maps[k] = cam.cpu()
    return maps


def _normalise(cam: np.ndarray) -> np.ndarray:
    peak = float(cam.max())
    out = cam / peak if peak > 0 else np.zeros_like(cam)
    return out.astype(np.float32)
