"""The engine's path for batches holding `"num_visual_tokens": "auto"` requests.

Such a batch is answered by `mqt_llava.inference.budget.answer_batch`: every image is encoded once
at M, the fixed-budget rows are answered at their budget and the automatic rows as the engine's
budget policy decides (the model folder's `budget_policy.json`, else escalation), all rows of a
round in one `generate` call. The answers are not streamed token by token: an automatic answer
is only known once the policy keeps it. Each answer is then fed through the job's
`StreamDecoder`, so stop strings and `max_tokens` apply exactly as on the streaming path, and
`usage` reports the budget kept, the budgets tried and the prefill GFLOPs spent.
"""

from __future__ import annotations

import torch

from ..inference.budget import AUTO, PrefillCost, answer_batch, load_policy, model_folder


def engine_policy(engine):
    """The engine's budget policy and FLOP counter, built on first use."""
    if getattr(engine, "_budget_policy", None) is None:
        engine._budget_policy = load_policy(
            getattr(engine, "budget_policy", None), model_folder(engine.model)
        )
        engine._budget_cost = PrefillCost(engine.model.config)
    return engine._budget_policy, engine._budget_cost


@torch.inference_mode()
def generate_jobs(engine, batch: list) -> None:
    """Answers a batch of greedy jobs, some with `"auto"` budgets (called in the worker)."""
    model, processor = engine.model, engine.processor
    policy, cost = engine_policy(engine)
    big_m = model.config.num_queries
    visual, budgets = [], []
    for job in batch:
        if job.pixel_values is None:
            visual.append(None)
        else:
            pixels = job.pixel_values.to(model.device, model.dtype)
            visual.append(model.get_image_features(pixels, big_m))  # (k, M, D), encoded once
        budgets.append(AUTO if job.auto else (job.budgets[0] if job.budgets else 1))
    answers = answer_batch(
        model,
        processor,
        [job.prompt for job in batch],
        visual,
        budgets,
        policy,
        max(job.max_tokens for job in batch),
        cost,
    )
    for job, answer in zip(batch, answers, strict=True):
        count = job.prompt.count(processor.image_token)
        if job.auto:
            job.budgets = [answer.num_visual_tokens] * count
            job.input_ids = processor.tokenize_prompt(job.prompt, job.budgets)
        job.budget_usage = answer.usage()
        decoder = engine._decoder(job)
        for token in answer.token_ids:
            if decoder.done or job.cancelled.is_set():
                break
            decoder.push(token)
        ended = len(answer.token_ids) < max(j.max_tokens for j in batch)
        decoder.finish("stop" if ended else "length")
