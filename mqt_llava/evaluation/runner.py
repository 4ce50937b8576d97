"""``mqt-llava eval``: answer a benchmark at several budgets, resumably, then score it.

Output folder (``--out``)::

    run.json              what was run (benchmark, model, data, batch size, generation limit)
    answers_m{m}.jsonl    one LLaVA-1.5 answer file per budget m
    metrics.json          the scorer's metrics per budget and the headline number

Each batch of questions is encoded once by the vision tower and the connector at the largest
budget; every budget slices its prefix of those tokens (exact, by the prefix property). Answers
are appended batch by batch, flushed and fsynced, so an interrupted run keeps every finished
batch; rerunning the same command skips the finished question ids of each budget. Batches are
cut from the full question list at fixed positions, so a resumed run generates every batch with
the same neighbours, hence the same answers, as an uninterrupted one.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mqt_llava.evaluation.answer_files import (
    METRICS_FILE,
    answer_file,
    answer_record,
    append_answers,
    check_run_file,
    check_unique,
    current_answers,
    finished_keys,
    write_metrics,
    write_run_file,
)
from mqt_llava.evaluation.readers import Benchmark, EvalItem, headline_value
from mqt_llava.evaluation.score import score
from mqt_llava.evaluation.scorers import AnnotationFormatError


def run_budgets(
    model,
    processor,
    items: Sequence[EvalItem],
    budgets: Sequence[int],
    out: Path,
    model_id: str,
    batch_size: int = 8,
    max_new_tokens: int = 128,
    template: str = "llava_v1",
    progress: bool = True,
    on_batch: Callable[[int], None] | None = None,
) -> dict[int, Path]:
    """Answers every item at every budget, resuming from the answer files already in ``out``.

    Args:
        model: An `MQTLlavaForConditionalGeneration` in eval mode.
        processor: Its `MQTLlavaProcessor`.
        items: The questions, in the order they are batched.
        budgets: Budgets m, validated against the model's M.
        out: Output folder; ``answers_m{m}.jsonl`` per budget.
        model_id: The answers' ``model_id``.
        batch_size: Questions per batch (the same value must be used to resume).
        max_new_tokens: Generation limit.
        template: Chat template of the prompts.
        progress: Show a progress bar (on stderr).
        on_batch: Called with the batch index after each processed batch (tests use it to
            interrupt a run).

    Returns:
        Budget → answer file.
    """
    from mqt_llava.inference.generation import encode_images, generate_answers
    from mqt_llava.model import check_num_visual_tokens

    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    if max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be at least 1, got {max_new_tokens}")
    budgets = sorted({check_num_visual_tokens(m, model.config.num_queries) for m in budgets})
    check_unique(items)
    out.mkdir(parents=True, exist_ok=True)
    files = {m: answer_file(out, m) for m in budgets}
    done = {m: finished_keys(files[m]) for m in budgets}
    wanted = {item.key for item in items}
    initial = sum(len(done[m] & wanted) for m in budgets)
    bar = tqdm(
        total=len(items) * len(budgets), initial=initial, unit="answer", disable=not progress
    )
    try:
        for index, start in enumerate(range(0, len(items), batch_size)):
            batch = items[start : start + batch_size]
            todo = {m: [i for i, it in enumerate(batch) if it.key not in done[m]] for m in budgets}
            if not any(todo.values()):
                continue
            images = [item.image for item in batch if item.image is not None]
            # One pass of the vision tower + connector for the whole sweep: (I, M_max, D).
            features = encode_images(model, processor, images, budgets[-1]) if images else None
            prompts = [
                processor.build_prompt(it.question, int(it.image is not None), template)
                for it in batch
            ]
            for m in budgets:
                if not todo[m]:
                    continue
                # The whole batch is generated even if part of it was answered before an
                # interruption: the same neighbours give the same padded batch, hence answers.
                texts = generate_answers(model, processor, prompts, features, m, max_new_tokens)
                records = [answer_record(batch[i], texts[i], m, model_id) for i in todo[m]]
                append_answers(files[m], records)
                done[m].update(batch[i].key for i in todo[m])
                bar.update(len(records))
            if on_batch is not None:
                on_batch(index)
    finally:
        bar.close()
    return files


def score_answers(
    benchmark: Benchmark,
    files: dict[int, Path],
    annotations: Path | None,
    scorer_questions: Path | None,
    keys: set[tuple[str, str]] | None = None,
) -> list[dict[str, Any]]:
    """Scores each budget's answer file; a scorer's refusal is recorded, not raised.

    Args:
        benchmark: The benchmark.
        files: Budget → answer file.
        annotations: The official annotations (None: nothing is scored).
        scorer_questions: The question file the scorer also reads, or None.
        keys: The (question id, prompt) of this run's questions; answers to other questions
            (left by an earlier, larger run in the same folder) are not scored. None: all.

    Returns:
        One ``{"num_visual_tokens", "answers", "score", "metrics"}`` per budget (``score`` and
        ``metrics`` None without annotations; ``error`` set if the scorer refused the files).
    """
    results = []
    with tempfile.TemporaryDirectory(prefix="mqt-llava-score-") as tmp:
        for m, path in sorted(files.items()):
            row: dict[str, Any] = {"num_visual_tokens": m, "answers": path.name}
            row["score"] = row["metrics"] = None
            if annotations is not None:
                try:
                    answers = current_answers(path, keys, Path(tmp))
                    metrics = score(benchmark.name, answers, annotations, scorer_questions)
                except (AnnotationFormatError, ValueError, FileNotFoundError) as err:
                    row["error"] = str(err)
                else:
                    row["metrics"] = metrics
                    row["score"] = headline_value(benchmark, metrics)
            results.append(row)
    return results


def evaluate(
    model: str | Path | None,
    benchmark: str,
    data: Path,
    num_visual_tokens: Sequence[int],
    out: Path,
    batch_size: int = 8,
    limit: int | None = None,
    max_new_tokens: int | None = None,
    questions: Path | None = None,
    image_folder: Path | None = None,
    annotations: Path | None = None,
    device: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    on_batch: Callable[[int], None] | None = None,
    template: str = "llava_v1",
    budget_policy=None,
) -> dict[str, Any]:
    """Evaluates a model on a benchmark at several budgets (the ``mqt-llava eval`` command).

    Args:
        model: A model folder (None: the bundled default model).
        benchmark: A name of `mqt_llava.evaluation.readers.BENCHMARKS`.
        data: The benchmark folder, laid out as LLaVA-1.5's ``playground/data/eval/<name>``.
        num_visual_tokens: The budgets to evaluate, each in [1, M].
        out: Output folder (answers per budget, ``metrics.json``); an earlier run there is
            resumed.
        batch_size: Questions per generation batch.
        limit: Only the first ``limit`` questions.
        max_new_tokens: Generation limit (default: the release's for the benchmark).
        questions: Question file instead of the benchmark's default one in ``data``.
        image_folder: Image folder instead of the benchmark's default one.
        annotations: Official annotations instead of those found in ``data``.
        device: cpu, cuda, ... (default: cuda if available).
        overwrite: Discard an earlier run in ``out`` instead of resuming it.
        progress: Show a progress bar.
        on_batch: Called after each batch with its index.
        template: Chat template of the prompts (the release's ``llava_v1``).
        budget_policy: For a budget ``"auto"`` (see `mqt_llava.evaluation.auto_budget`): a
            policy, its JSON file or dict; default: the model folder's, else escalation.

    Returns:
        The contents of ``metrics.json``.

    Raises:
        ValueError: Unknown benchmark, bad budget / batch size / limit, malformed files, or
            ``out`` holding a run with other settings.
        FileNotFoundError: A benchmark file, image or the model folder is missing.
    """
    from mqt_llava.evaluation.readers import get_benchmark
    from mqt_llava.inference import load
    from mqt_llava.model import check_num_visual_tokens

    spec = get_benchmark(benchmark)
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be at least 1, got {limit}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    if max_new_tokens is not None and max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be at least 1, got {max_new_tokens}")
    if not Path(data).exists():
        raise FileNotFoundError(f"--data {data}: no such folder")
    items = spec.read(Path(data), questions, image_folder)[:limit]
    if not items:
        raise ValueError(f"{data}: the {spec.name} question file holds no questions")
    model_path = str(Path(model).resolve()) if model is not None else "bundled default model"
    settings = {
        "benchmark": spec.name,
        "model": model_path,
        "data": str(Path(data).resolve()),
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens or spec.max_new_tokens,
        "template": template,
        "num_questions": len(items),
    }
    if spec.title_of is not None:
        settings["title"] = spec.title_of(Path(data), questions)
    check_unique(items)
    check_run_file(Path(out), settings, overwrite)  # before loading: a refusal costs nothing
    vlm = load(model, device=device)
    auto = [m for m in num_visual_tokens if m == "auto"]  # chosen per question by a policy
    num_visual_tokens = [m for m in num_visual_tokens if m != "auto"]
    for m in num_visual_tokens:  # a bad budget is refused before run.json is written
        check_num_visual_tokens(m, vlm.model.config.num_queries)
    write_run_file(Path(out), settings, overwrite)
    files = num_visual_tokens and run_budgets(
        vlm.model,
        vlm.processor,
        items,
        num_visual_tokens,
        Path(out),
        model_id=Path(model_path).name,
        batch_size=batch_size,
        max_new_tokens=settings["max_new_tokens"],
        template=template,
        progress=progress,
        on_batch=on_batch,
    )
    if annotations is None:
        annotations = spec.annotations(Path(data), questions, Path(out))
    elif not annotations.exists():
        raise FileNotFoundError(f"--annotations {annotations}: no such file or folder")
    scorer_questions = spec.scorer_questions(Path(data), questions) if annotations else None
    keys = {item.key for item in items}
    results = score_answers(spec, files or {}, annotations, scorer_questions, keys)
    if auto:
        from mqt_llava.evaluation.auto_budget import run_auto, score_auto

        path, means = run_auto(
            vlm, items, Path(out), Path(model_path).name, budget_policy, batch_size,
            settings["max_new_tokens"], template, progress,
        )  # fmt: skip
        results.append(score_auto(spec, path, means, annotations, scorer_questions))
    write_metrics(Path(out), spec, settings, results, annotations)
    return json.loads((Path(out) / METRICS_FILE).read_text(encoding="utf-8"))
