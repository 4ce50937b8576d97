"""`num_visual_tokens="auto"`: the budget chosen per request by a policy.

The image is encoded once at M (vision tower + connector); every attempt at a budget m reuses the
first m rows of those tokens, which is exact by the connector's prefix property. A policy (see
`mqt_llava.inference.policies`) picks each row's first budget and, after each answer, whether to
answer again at a larger one. Only the language model's prefill (and decode) is repeated.

[`answer_batch`] runs one batch of rows, each with a fixed budget or `"auto"`: the rows of a
round are generated together, each at its own budget (left padding keeps rows independent), so a
batch may mix fixed and automatic budgets. Every attempt's prefill FLOPs are counted
([`PrefillCost`], the meta-device count of `mqt-llava flops`), so the cost of escalation is
visible.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..model import check_num_visual_tokens
from ..model.padding import pad_batch

AUTO = "auto"
POLICY_FILE = "budget_policy.json"  # in a model folder: the policy `"auto"` uses by default


def check_budget(value: Any, max_tokens: int) -> int | str:
    """Validates a budget that may be `"auto"`: an integer in [1, M], or the string `"auto"`.

    Raises:
        ValueError: Anything else, naming what is accepted.
    """
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    try:
        return check_num_visual_tokens(value, max_tokens)
    except ValueError:
        raise ValueError(
            f"num_visual_tokens must be an integer between 1 and {max_tokens} or 'auto', "
            f"got {value!r}."
        ) from None


@dataclass
class Attempt:
    """One answer at one budget: the text, its confidence and the prefill FLOPs it cost."""

    num_visual_tokens: int
    text: str
    first_token_prob: float
    mean_logprob: float
    llm_gflops: float


@dataclass
class BudgetedAnswer:
    """The answer of one row, with the budget it was finally given and the work spent.

    Attributes:
        text: The answer of the last attempt.
        num_visual_tokens: The budget of the last attempt (the one the answer comes from).
        attempts: Every attempt, in order (one for a fixed budget).
        prefill_gflops: Vision tower + connector once, plus every attempt's LLM prefill.
        policy: The policy's name, or `"fixed"`.
        token_ids: The last attempt's generated ids (EOS and padding dropped).
    """

    text: str
    num_visual_tokens: int
    attempts: list[Attempt]
    prefill_gflops: float
    policy: str = "fixed"
    token_ids: list[int] = field(default_factory=list)

    def usage(self) -> dict[str, Any]:
        """What the server's `usage` and the eval records report."""
        return {
            "num_visual_tokens": self.num_visual_tokens,
            "budget_policy": self.policy,
            "attempted_budgets": [a.num_visual_tokens for a in self.attempts],
            "prefill_gflops": round(self.prefill_gflops, 6),
        }


class PrefillCost:
    """Prefill FLOPs of a model, counted once per shape on the meta device and cached.

    A fixed budget m costs vision + connector(m) + LLM(text + m). An automatic budget encodes at
    M once, so it costs vision + connector(M) + the LLM prefill of every attempt.

    Args:
        config: The model's `MQTLlavaConfig`.
    """

    def __init__(self, config):
        from ..model import MQTLlavaForConditionalGeneration
        from ..perf.flops import _flops, _meta_model, _pixel_values

        self._flops = _flops
        self.model = _meta_model(MQTLlavaForConditionalGeneration, config)
        self.max_visual_tokens = config.num_queries
        self.hidden = config.text_config.hidden_size
        with torch.no_grad():
            tflops, self._features = _flops(
                self.model.get_vision_features, _pixel_values(config.vision_config)
            )
        self.vision_gflops = tflops * 1e3
        self._connector: dict[int, float] = {}
        self._llm: dict[int, float] = {}

    @torch.no_grad()
    def connector_gflops(self, m: int) -> float:
        if m not in self._connector:
            tflops, _ = self._flops(self.model.connector, self._features, m)
            self._connector[m] = tflops * 1e3
        return self._connector[m]

    @torch.no_grad()
    def llm_gflops(self, context_tokens: int) -> float:
        """The LLM prefill on `context_tokens` tokens (text + visual), last-position logits."""
        from ..perf.flops import _llm_flops

        if context_tokens not in self._llm:
            embeds = torch.zeros(1, context_tokens, self.hidden, device="meta")
            self._llm[context_tokens] = _llm_flops(self.model, embeds, 0) * 1e3
        return self._llm[context_tokens]

    def fixed_gflops(self, text_tokens: int, m: int, images: int = 1) -> float:
        """One answer at a fixed budget m (each of `images` images encoded at m)."""
        if images == 0:
            return self.llm_gflops(text_tokens)
        vision = images * (self.vision_gflops + self.connector_gflops(m))
        return vision + self.llm_gflops(text_tokens + images * m)

    def auto_gflops(self, text_tokens: int, budgets: Sequence[int], images: int = 1) -> float:
        """Answers at each of `budgets` in turn, the images encoded once at M."""
        vision = images * (self.vision_gflops + self.connector_gflops(self.max_visual_tokens))
        llm = sum(self.llm_gflops(text_tokens + images * m) for m in budgets)
        return (vision if images else 0.0) + llm


@dataclass
class RowContext:
    """What a policy sees of one row before its first attempt."""

    prompt: str
    visual_tokens: torch.Tensor | None  # (k, M, D): the row's images encoded at M
    text_tokens: int


class BudgetPolicy:
    """A rule choosing each row's budgets. Subclasses override [`first`] and [`next`]."""

    name = "policy"

    def first(self, rows: Sequence[RowContext], model, processor) -> list[int]:
        """The first budget of each row."""
        raise NotImplementedError

    def next(self, m: int, attempt: Attempt) -> int | None:
        """The next budget after an attempt at m, or None to keep its answer."""
        return None

    def to_dict(self) -> dict[str, Any]:
        """A JSON description from which [`load_policy`] rebuilds the policy."""
        raise NotImplementedError


@torch.inference_mode()
def generate_scored(
    model,
    processor,
    prompts: Sequence[str],
    visual_tokens: Sequence[torch.Tensor | None],
    budgets: Sequence[int],
    max_new_tokens: int,
) -> list[tuple[str, list[int], float, float]]:
    """Greedy answers of a batch whose rows may have different budgets, with confidences.

    Args:
        model: The model, in eval mode.
        processor: Its processor.
        prompts: Rendered prompts; each `<image>` stands for one of the row's images.
        visual_tokens: Per row, (k, >= m, D) tokens of its k images (None without images).
        budgets: Per row, its budget m (the first m tokens of each image are used).
        max_new_tokens: Generation limit.

    Returns:
        Per row: (text, generated ids without EOS/padding, first-token probability, mean
        log-probability of the answer's tokens).
    """
    ids, pieces = [], []
    for prompt, tokens, m in zip(prompts, visual_tokens, budgets, strict=True):
        count = prompt.count(processor.image_token)
        ids.append(processor.tokenize_prompt(prompt, [m] * count))
        if count:
            pieces.append(tokens[:, :m].reshape(-1, tokens.shape[-1]))  # prefix property
    pad_id = processor.tokenizer.pad_token_id
    input_ids, attention_mask = pad_batch(ids, pad_id, "left")
    kwargs: dict[str, Any] = {}
    if pieces:
        kwargs["visual_tokens"] = torch.cat(pieces)  # (sum of k * m, D)
    out = model.generate(
        input_ids=input_ids.to(model.device),
        attention_mask=attention_mask.to(model.device),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=pad_id,
        output_logits=True,
        return_dict_in_generate=True,
        **kwargs,
    )
    new = out.sequences[:, input_ids.shape[1] :].cpu()  # (B, T)
    logprobs = torch.stack(out.logits, dim=1).float().log_softmax(-1).cpu()  # (B, T, V)
    chosen = logprobs.gather(-1, new.unsqueeze(-1)).squeeze(-1)  # (B, T)
    eos = model.generation_config.eos_token_id
    eos = set([eos] if isinstance(eos, int) else (eos or [])) | {processor.tokenizer.eos_token_id}
    results = []
    for row in range(new.shape[0]):
        tokens = new[row].tolist()
        end = next((i for i, t in enumerate(tokens) if t in eos), len(tokens))
        # The answer's own tokens; an empty answer is judged by its end-of-sequence token.
        span = chosen[row, : max(end, 1)]
        text = processor.decode(tokens[:end], skip_special_tokens=True).strip()
        first = float(chosen[row, 0].exp())
        results.append((text, tokens[:end], first, float(span.mean())))
    return results


def answer_batch(
    model,
    processor,
    prompts: Sequence[str],
    visual_tokens: Sequence[torch.Tensor | None],
    budgets: Sequence[int | str],
    policy: BudgetPolicy | None,
    max_new_tokens: int,
    cost: PrefillCost | None = None,
) -> list[BudgetedAnswer]:
    """Answers a batch whose rows each have a fixed budget or `"auto"`.

    Args:
        model: The model, in eval mode.
        processor: Its processor.
        prompts: Rendered prompts.
        visual_tokens: Per row, (k, M, D) tokens of its images encoded at M (None without).
        budgets: Per row, an integer m or `"auto"`.
        policy: Chooses the budgets of the `"auto"` rows (required if there are any).
        max_new_tokens: Generation limit.
        cost: FLOP counter (built from the model's config when None).

    Returns:
        One [`BudgetedAnswer`] per row, in order.
    """
    big_m = model.config.num_queries
    budgets = [check_budget(b, big_m) for b in budgets]
    auto = [b == AUTO for b in budgets]
    if any(auto) and policy is None:
        raise ValueError("num_visual_tokens='auto' needs a budget policy; none was given.")
    cost = cost or PrefillCost(model.config)
    counts = [p.count(processor.image_token) for p in prompts]
    text_tokens = [
        len(processor.tokenize_prompt(p, [1] * k)) - k for p, k in zip(prompts, counts, strict=True)
    ]
    current: list[int] = [0 if a else int(b) for a, b in zip(auto, budgets, strict=True)]
    if any(auto):
        rows = [i for i, a in enumerate(auto) if a]
        contexts = [RowContext(prompts[i], visual_tokens[i], text_tokens[i]) for i in rows]
        for i, m in zip(rows, policy.first(contexts, model, processor), strict=True):
            current[i] = check_num_visual_tokens(m, big_m)
    attempts: list[list[Attempt]] = [[] for _ in prompts]
    final: list[tuple[str, list[int]]] = [("", [])] * len(prompts)
    active = list(range(len(prompts)))
    while active:
        outputs = generate_scored(
            model,
            processor,
            [prompts[i] for i in active],
            [visual_tokens[i] for i in active],
            [current[i] for i in active],
            max_new_tokens,
        )
        still = []
        for i, (text, ids, first, mean) in zip(active, outputs, strict=True):
            m = current[i]
            llm = cost.llm_gflops(text_tokens[i] + counts[i] * m)
            attempt = Attempt(m, text, first, mean, llm)
            attempts[i].append(attempt)
            final[i] = (text, ids)
            nxt = policy.next(m, attempt) if auto[i] else None
            if nxt is not None and nxt != m and len(attempts[i]) <= big_m:
                current[i] = check_num_visual_tokens(nxt, big_m)
                still.append(i)
        active = still
    answers = []
    for i in range(len(prompts)):
        tried = [a.num_visual_tokens for a in attempts[i]]
        if auto[i]:
            gflops = cost.auto_gflops(text_tokens[i], tried, counts[i])
        else:
            gflops = cost.fixed_gflops(text_tokens[i], tried[0], counts[i])
        name = policy.name if auto[i] else "fixed"
        answers.append(
            BudgetedAnswer(final[i][0], current[i], attempts[i], gflops, name, final[i][1])
        )
    return answers


def model_folder(model) -> Path | None:
    """The local folder a model was loaded from (where its `budget_policy.json` may be)."""
    path = getattr(model, "name_or_path", None)
    return Path(path) if path and Path(path).is_dir() else None


def load_policy(spec: str | Path | dict | BudgetPolicy | None, model_dir: Path | None = None):
    """A policy from a JSON file, a dict, or a model folder's `budget_policy.json`.

    Args:
        spec: A [`BudgetPolicy`] (returned as is), a dict as written by `to_dict`, a path to such
            a JSON file, or None for the model folder's default.
        model_dir: Where a default policy file and relative router weights are looked up.

    Returns:
        The policy; without any spec and without a policy file, the escalation policy with its
        default ladder and threshold.

    Raises:
        ValueError: An unknown policy name or malformed description.
        FileNotFoundError: A named file does not exist.
    """
    from .policies import build_policy, default_policy

    if isinstance(spec, BudgetPolicy):
        return spec
    base = model_dir
    if spec is None:
        path = Path(model_dir) / POLICY_FILE if model_dir is not None else None
        if path is None or not path.is_file():
            return default_policy()
        spec = path
    if not isinstance(spec, dict):
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"budget policy file {path} not found")
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"budget policy file {path} is not valid JSON: {err}") from None
        base = path.parent
    return build_policy(spec, base)


def summary(answers: Sequence[BudgetedAnswer]) -> dict[str, float]:
    """Mean final budget, mean attempts and mean prefill GFLOPs of a set of answers."""
    n = max(len(answers), 1)
    return {
        "mean_num_visual_tokens": sum(a.num_visual_tokens for a in answers) / n,
        "mean_attempts": sum(len(a.attempts) for a in answers) / n,
        "mean_prefill_gflops": sum(a.prefill_gflops for a in answers) / n,
    }


def attempts_json(answer: BudgetedAnswer) -> list[dict[str, Any]]:
    """The attempts of an answer as JSON-ready dicts."""
    return [asdict(a) for a in answer.attempts]
