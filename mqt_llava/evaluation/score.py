"""``mqt-llava score``: score an answer file against a benchmark's official annotations.

One entry point, `score`, dispatching on the benchmark name to the readers and pure scorers in
`mqt_llava.evaluation.scorers`. Nothing here imports a model.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mqt_llava.evaluation.scorers import (
    gqa,
    llava_json,
    mmbench,
    mme,
    multiple_choice,
    pope,
    scienceqa,
    shapes,
    vqa,
)

# (answers, annotations, questions or None) -> metrics
ScoreFiles = Callable[[Path, Path, Path | None], dict]

SCORERS: dict[str, ScoreFiles] = {
    "gqa": gqa.score_gqa_files,
    "llavajson": llava_json.score_llava_json_files,
    "mmbench": mmbench.score_mmbench_files,
    "mme": mme.score_mme_files,
    "mmmu": multiple_choice.score_mmmu_files,
    "pope": pope.score_pope_files,
    "scienceqa": scienceqa.score_scienceqa_files,
    "seed": multiple_choice.score_seed_files,
    "shapes": shapes.score_shapes_files,
    "textvqa": vqa.score_textvqa_files,
    "vizwiz": vqa.score_vizwiz_files,
    "vqav2": vqa.score_vqav2_files,
}
_ALIASES = {"sqa": "scienceqa", "seedbench": "seed", "shapesvqa": "shapes", "vqa2": "vqav2"}


def _canonical(benchmark: str) -> str:
    key = benchmark.lower().replace("-", "").replace("_", "")
    return _ALIASES.get(key, key)


def score(benchmark: str, answers: Path, annotations: Path, questions: Path | None = None) -> dict:
    """Scores a LLaVA-1.5-format answer file (JSONL) with the benchmark's official metric.

    Args:
        benchmark: One of gqa, llava-json, mmbench, mme, mmmu, pope, scienceqa, seed, shapes,
            textvqa, vizwiz, vqav2 (case, "-" and "_" ignored).
        answers: The answer JSONL, one ``{"question_id", "prompt", "text", ...}`` per line.
        annotations: The official annotation file or folder: VQAv2 ``*_annotations.json``, VizWiz
            ``val.json``, ``TextVQA_0.5.1_val.json``, GQA ``testdev_balanced_questions.json``,
            the folder of ``coco_pope_*.json``, ``MME_Benchmark_release_version/``, the MMBench
            TSV, the ScienceQA folder with ``problems.json`` and ``pid_splits.json``,
            ``SEED-Bench.json``, MMMU ``answer_dict_val.json``, the ShapesVQA split file
            (``test.json``), the LLaVA-JSON test set itself.
        questions: The question file where the answers alone do not say enough: POPE
            (``llava_pope_test.jsonl``, for each question's split), VizWiz (question id →
            image), MMMU (option texts). Ignored by the other benchmarks.

    Returns:
        ``{"benchmark": <name>, <metric>: <value>, ...}``; accuracies are percentages.

    Raises:
        ValueError: The benchmark is unknown (the message lists the supported ones).
        FileNotFoundError: A path does not exist (the message names the flag).
        AnnotationFormatError: A file is malformed (a ValueError naming file, line, expectation).
    """
    name = _canonical(benchmark)
    if name not in SCORERS:
        raise ValueError(
            f"unknown benchmark {benchmark!r}; supported: {', '.join(sorted(SCORERS))}"
        )
    paths = {"--answers": answers, "--annotations": annotations, "--questions": questions}
    for flag, path in paths.items():
        if path is not None and not Path(path).exists():
            raise FileNotFoundError(f"{flag} {path}: no such file or folder")
    result = SCORERS[name](Path(answers), Path(annotations), questions and Path(questions))
    return {"benchmark": name, **result}
