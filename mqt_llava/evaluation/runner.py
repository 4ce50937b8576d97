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

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mqt_llava.evaluation.readers import Benchmark, EvalItem, headline_value
from mqt_llava.evaluation.score import score
from mqt_llava.evaluation.scorers import AnnotationFormatError

RUN_FILE, METRICS_FILE = "run.json", "metrics.json"
# Settings that change the answers: a resumed run must use the same ones.
_RUN_KEYS = ("benchmark", "model", "batch_size", "max_new_tokens", "template")


def answer_file(out: Path, num_visual_tokens: int) -> Path:
    """Where the answers at budget m are written."""
    return Path(out) / f"answers_m{num_visual_tokens}.jsonl"


def answer_id(model_id: str, key: tuple[str, str], num_visual_tokens: int) -> str:
    """A deterministic answer id (the release draws a random one), so reruns write equal files."""
    text = json.dumps([model_id, *key, num_visual_tokens])
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:22]


def finished_keys(path: Path) -> set[tuple[str, str]]:
    """The (question id, prompt) keys already answered in an answer file.

    A last line cut short by an interruption (no newline, or not JSON) is removed from the file,
    so that appending continues on a clean line.
    """
    if not path.is_file():
        return set()
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1  # everything after the last newline is an unfinished line
    keys = set()
    for line in data[:keep].splitlines():
        if line.strip():
            record = json.loads(line)
            keys.add((str(record["question_id"]), str(record.get("prompt", ""))))
    if keep < len(data):
        with open(path, "r+b") as file:
            file.truncate(keep)
    return keys


def _append(path: Path, records: Sequence[dict[str, Any]]) -> None:
    """Appends records as JSON lines in one write, then flushes them to disk."""
    with open(path, "a", encoding="utf-8") as file:
        file.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        file.flush()
        os.fsync(file.fileno())


def _record(item: EvalItem, text: str, m: int, model_id: str) -> dict[str, Any]:
    return {
        "question_id": item.question_id,
        "prompt": item.prompt,
        "text": text,
        **item.answer_fields,
        "answer_id": answer_id(model_id, item.key, m),
        "model_id": model_id,
        "metadata": {"num_visual_tokens": m, **item.metadata},
    }


def _check_unique(items: Sequence[EvalItem]) -> None:
    seen: set[tuple[str, str]] = set()
    for item in items:
        if item.key in seen:
            raise ValueError(
                f"question {item.question_id!r} appears twice with the same prompt; "
                "resuming needs (question_id, prompt) to be unique"
            )
        seen.add(item.key)


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
    _check_unique(items)
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
                records = [_record(batch[i], texts[i], m, model_id) for i in todo[m]]
                _append(files[m], records)
                done[m].update(batch[i].key for i in todo[m])
                bar.update(len(records))
            if on_batch is not None:
                on_batch(index)
    finally:
        bar.close()
    return files


def _current_answers(path: Path, keys: set[tuple[str, str]] | None, folder: Path) -> Path:
    """``path`` itself, or a copy in ``folder`` holding only the answers to ``keys``: an answer
    file resumed from a larger run (a smaller ``--limit``) keeps the older answers, which must
    not be scored."""
    if keys is None:
        return path
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = []
    for line in lines:
        record = json.loads(line) if line.strip() else None
        if record and (str(record["question_id"]), str(record.get("prompt", ""))) in keys:
            kept.append(line)
    if len(kept) == len(lines):
        return path
    subset = folder / path.name
    subset.write_text("".join(kept), encoding="utf-8")
    return subset


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
                    answers = _current_answers(path, keys, Path(tmp))
                    metrics = score(benchmark.name, answers, annotations, scorer_questions)
                except (AnnotationFormatError, ValueError, FileNotFoundError) as err:
                    row["error"] = str(err)
                else:
                    row["metrics"] = metrics
                    row["score"] = headline_value(benchmark, metrics)
            results.append(row)
    return results


def _write_atomically(path: Path, text: str) -> None:
    """Writes ``text`` to a temporary file beside ``path``, then renames it over ``path``: an
    interruption leaves the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_run_file(out: Path, settings: dict[str, Any], overwrite: bool) -> None:
    """Refuses to resume a run made with other settings. Writes nothing (`write_run_file` does,
    once the run is known to start), so a refused command leaves ``out`` as it was.

    Raises:
        ValueError: ``out`` holds a run of another benchmark, model, batch size, generation
            limit or template, or its ``run.json`` is damaged.
    """
    path = out / RUN_FILE
    if overwrite or not path.is_file():
        return
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(previous, dict):
            raise ValueError("not a JSON object")
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(
            f"{path} is damaged ({err}); delete it to resume the answers in {out} with the "
            "settings given now, or pass --overwrite to start over"
        ) from None
    changed = [k for k in _RUN_KEYS if previous.get(k) != settings.get(k)]
    if changed:
        detail = ", ".join(f"{k}: {previous.get(k)!r} → {settings.get(k)!r}" for k in changed)
        raise ValueError(
            f"{out} holds a run with other settings ({detail}); resume with the same "
            "settings, choose another --out, or pass --overwrite"
        )


def write_run_file(out: Path, settings: dict[str, Any], overwrite: bool) -> None:
    """Records the run's settings in ``run.json`` (atomically); with ``overwrite``, first clears
    the earlier run's answers and metrics."""
    path = out / RUN_FILE
    if overwrite:
        for stale in [*out.glob("answers_m*.jsonl"), path, out / METRICS_FILE]:
            stale.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, json.dumps(settings, indent=2) + "\n")


def write_metrics(
    out: Path,
    benchmark: Benchmark,
    settings: dict[str, Any],
    results: list[dict[str, Any]],
    annotations: Path | None,
) -> Path:
    """Writes ``metrics.json``: the run's settings, the headline per budget and all metrics."""
    payload = {
        "benchmark": benchmark.name,
        "title": settings.get("title", benchmark.title),
        "model": settings["model"],
        "num_questions": settings["num_questions"],
        "headline": ".".join(benchmark.headline),
        "percent": benchmark.percent,
        "annotations": str(annotations) if annotations is not None else None,
        "results": results,
    }
    path = out / METRICS_FILE
    _write_atomically(path, json.dumps(payload, indent=2) + "\n")
    return path


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
    _check_unique(items)
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
