"""`MQTLlava.ask(..., num_visual_tokens="auto")` and `mqt-llava ask --num-visual-tokens auto`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .budget import (
    AUTO,
    Attempt,
    BudgetedAnswer,
    BudgetPolicy,
    PrefillCost,
    answer_batch,
    check_budget,
    load_policy,
    model_folder,
)


class AutoAnswer(str):
    """The text of an answer whose budget was chosen automatically (`ask(..., "auto")`).

    A `str`, so code that expects `ask`'s text keeps working, with what was chosen attached:
    `num_visual_tokens` (the budget of the kept answer), `attempts` and `prefill_gflops`.
    """

    num_visual_tokens: int
    attempts: list[Attempt]
    prefill_gflops: float
    policy: str

    @classmethod
    def of(cls, answer: BudgetedAnswer) -> AutoAnswer:
        text = cls(answer.text)
        text.num_visual_tokens, text.attempts = answer.num_visual_tokens, answer.attempts
        text.prefill_gflops, text.policy = answer.prefill_gflops, answer.policy
        return text

    def usage(self) -> dict[str, Any]:
        """What the server's `usage` and the eval records report (see [`BudgetedAnswer`])."""
        return BudgetedAnswer.usage(self)  # the same attributes, the same report


@torch.inference_mode()
def ask_auto(
    vlm,
    image,
    question: str,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    policy: BudgetPolicy | str | Path | dict | None = None,
) -> AutoAnswer:
    """`MQTLlava.ask(..., num_visual_tokens="auto")`: the image encoded once at M, then the
    policy's attempts.

    Raises:
        ValueError: Sampling was asked for (the policies read greedy answers' confidences).
    """
    if temperature != 0:
        raise ValueError(
            "num_visual_tokens='auto' answers greedily (temperature 0), got "
            f"temperature={temperature}."
        )
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}.")
    from .generation import encode_images

    model, processor = vlm.model, vlm.processor
    policy = load_policy(policy, model_folder(model))
    visual = encode_images(model, processor, [image], model.config.num_queries)  # (1, M, D)
    prompt = processor.build_prompt(question, num_images=1, template=vlm.template)
    answer = answer_batch(model, processor, [prompt], [visual], [AUTO], policy, max_new_tokens)
    return AutoAnswer.of(answer[0])


def print_answers(
    vlm,
    image,
    question: str,
    budgets: Sequence[int | str],
    max_new_tokens: int,
    policy: BudgetPolicy | str | Path | dict | None = None,
) -> None:
    """`mqt-llava ask --num-visual-tokens ...` with `auto` among the budgets: one line each."""
    import time

    budgets = [check_budget(m, vlm.max_visual_tokens) for m in budgets]  # all, before any work
    if AUTO in budgets:  # a missing or malformed policy file fails before the table starts
        policy = load_policy(policy, model_folder(vlm.model))
    print(f"{'tokens':>8}  {'seconds':>7}  {'GFLOPs':>7}  answer")
    cost = PrefillCost(vlm.model.config)
    for m in budgets:
        start = time.perf_counter()
        if m == AUTO:
            answer = ask_auto(vlm, image, question, max_new_tokens, 0.0, policy)
            tried = ",".join(str(a.num_visual_tokens) for a in answer.attempts)
            label, gflops = f"auto:{answer.num_visual_tokens}", answer.prefill_gflops
            note = f"  [{answer.policy}, tried {tried}]"
        else:
            answer = vlm.ask(image, question, m, max_new_tokens)
            label, note = str(m), ""
            prompt = vlm.processor.build_prompt(question, num_images=1, template=vlm.template)
            text = len(vlm.processor.tokenize_prompt(prompt, [1])) - 1
            gflops = cost.fixed_gflops(text, m)
        seconds = time.perf_counter() - start
        print(f"{label:>8}  {seconds:>7.2f}  {gflops:>7.4f}  {answer}{note}")
