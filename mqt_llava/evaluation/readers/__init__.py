"""Benchmark readers: a benchmark's files in the layout LLaVA-1.5's evaluation scripts read
(``playground/data/eval/<benchmark>``) → `EvalItem` s with the release's prompts.

`BENCHMARKS` maps each ``--benchmark`` name to a `Benchmark`: how to read its items, where its
official annotations are (for the scorer), the release's ``max_new_tokens`` and which metric is
its headline number. Nothing here opens an image or imports model code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from mqt_llava.evaluation.readers import (
    llava_json,
    mmbench,
    mme,
    mmmu,
    question_jsonl,
    scienceqa,
    shapes,
)
from mqt_llava.evaluation.readers._common import OPTION_LETTER, SHORT_ANSWER, EvalItem

# (data folder, question file or None, image folder or None) -> items
ReadFn = Callable[[Path, Path | None, Path | None], list[EvalItem]]
# (data folder, question file or None, output folder) -> official annotations or None
AnnotationsFn = Callable[[Path, Path | None, Path], Path | None]
# (data folder, question file or None) -> the question file the scorer also reads, or None
ScorerQuestionsFn = Callable[[Path, Path | None], Path | None]
# (data folder, question file or None) -> the title of this particular data set
TitleFn = Callable[[Path, Path | None], str]


def _no_questions(data: Path, questions: Path | None) -> None:
    return None


@dataclass(frozen=True)
class Benchmark:
    """How to evaluate one benchmark.

    Attributes:
        name: The ``--benchmark`` name, also the scorer's name in `mqt_llava.evaluation.SCORERS`.
        title: Its name in reports ("VQAv2", "MME-P", ...).
        read: Reads the items.
        annotations: Finds the official annotations in the benchmark folder (None when there
            are none, e.g. VQAv2 test-dev, whose answers go to the evaluation server).
        scorer_questions: The question file the scorer also reads (POPE, VizWiz, MMMU).
        max_new_tokens: The release's generation limit for this benchmark.
        headline: Path of the headline metric in the scorer's result, e.g. ``("accuracy",)``.
        percent: Whether the headline is a percentage (MME's is a 0–2000 score).
        title_of: The title of the data actually read, for sets that are not one benchmark
            (LLaVA-JSON: the file name); None: ``title``.
    """

    name: str
    title: str
    read: ReadFn
    annotations: AnnotationsFn
    scorer_questions: ScorerQuestionsFn = _no_questions
    max_new_tokens: int = 128
    headline: tuple[str, ...] = ("accuracy",)
    percent: bool = True
    title_of: TitleFn | None = None


def _jsonl(name: str, title: str, **kwargs) -> Benchmark:
    return Benchmark(
        name,
        title,
        partial(question_jsonl.read, name),
        lambda data, questions, out: question_jsonl.annotations(name, data),
        partial(question_jsonl.scorer_questions, name),
        **kwargs,
    )


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        _jsonl("vqav2", "VQAv2"),
        _jsonl("gqa", "GQA"),
        _jsonl("vizwiz", "VizWiz"),
        _jsonl("textvqa", "TextVQA"),
        _jsonl("pope", "POPE (F1)", headline=("average", "f1")),
        _jsonl("seed", "SEED-Bench"),
        Benchmark(
            "mme",
            "MME-P",
            mme.read,
            lambda data, questions, out: mme.annotations(data),
            headline=("perception",),
            percent=False,
        ),
        Benchmark(
            "mmbench",
            "MMBench",
            mmbench.read,
            lambda data, questions, out: mmbench.annotations(data, questions),
            max_new_tokens=1024,
        ),
        Benchmark(
            "scienceqa",
            "SQA-IMG",
            scienceqa.read,
            lambda data, questions, out: scienceqa.annotations(data),
            max_new_tokens=1024,
            headline=("img_accuracy",),
        ),
        Benchmark("mmmu", "MMMU", mmmu.read, mmmu.annotations, mmmu.question_file),
        Benchmark(
            "shapes",
            "ShapesVQA",
            shapes.read,
            lambda data, questions, out: shapes.annotations(data, questions),
            max_new_tokens=16,
        ),
        Benchmark(
            "llavajson",
            "LLaVA-JSON",
            llava_json.read,
            lambda data, questions, out: llava_json.annotations(data, questions),
            max_new_tokens=16,
            title_of=llava_json.title,
        ),
    )
}
_ALIASES = {"sqa": "scienceqa", "seedbench": "seed", "shapesvqa": "shapes", "vqa2": "vqav2"}


def get_benchmark(name: str) -> Benchmark:
    """The benchmark called ``name`` (case, "-" and "_" ignored; sqa, seedbench aliases).

    Raises:
        ValueError: Unknown name; the message lists the supported ones.
    """
    key = name.lower().replace("-", "").replace("_", "")
    key = _ALIASES.get(key, key)
    if key not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; supported: {', '.join(sorted(BENCHMARKS))}")
    return BENCHMARKS[key]


def headline_value(benchmark: Benchmark, metrics: dict) -> float | None:
    """The headline number of a scorer result, or None if the result lacks it."""
    value = metrics
    for key in benchmark.headline:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if isinstance(value, (int, float)) else None


__all__ = [
    "BENCHMARKS",
    "OPTION_LETTER",
    "SHORT_ANSWER",
    "Benchmark",
    "EvalItem",
    "get_benchmark",
    "headline_value",
]
