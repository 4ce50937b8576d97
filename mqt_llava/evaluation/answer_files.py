"""The files of an evaluation run: answers per budget, ``run.json`` and ``metrics.json``.

Answers are LLaVA-1.5 answer files (one JSON line per question), appended batch by batch and
fsynced, so an interrupted run keeps every finished batch; ``run.json`` holds the settings that
change the answers, so a resumed run is refused if they differ; both it and ``metrics.json`` are
written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mqt_llava.evaluation.readers import Benchmark, EvalItem

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


def append_answers(path: Path, records: Sequence[dict[str, Any]]) -> None:
    """Appends records as JSON lines in one write, then flushes them to disk."""
    with open(path, "a", encoding="utf-8") as file:
        file.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        file.flush()
        os.fsync(file.fileno())


def answer_record(item: EvalItem, text: str, m: int, model_id: str) -> dict[str, Any]:
    return {
        "question_id": item.question_id,
        "prompt": item.prompt,
        "text": text,
        **item.answer_fields,
        "answer_id": answer_id(model_id, item.key, m),
        "model_id": model_id,
        "metadata": {"num_visual_tokens": m, **item.metadata},
    }


def check_unique(items: Sequence[EvalItem]) -> None:
    seen: set[tuple[str, str]] = set()
    for item in items:
        if item.key in seen:
            raise ValueError(
                f"question {item.question_id!r} appears twice with the same prompt; "
                "resuming needs (question_id, prompt) to be unique"
            )
        seen.add(item.key)


def current_answers(path: Path, keys: set[tuple[str, str]] | None, folder: Path) -> Path:
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


def write_atomically(path: Path, text: str) -> None:
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
    write_atomically(path, json.dumps(settings, indent=2) + "\n")


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
    write_atomically(path, json.dumps(payload, indent=2) + "\n")
    return path
