"""``mqt-llava submit``: the files LLaVA-1.5's ``scripts/convert_*.py`` write for evaluation
servers and external scorers, from an answer file (JSONL, as ``eval`` writes it).

Each converter reproduces its original's output: the same records in the same order, the same
answer post-processing and the same JSON text (``json.dump`` defaults: ``", "`` / ``": "``
separators, ASCII escapes, no final newline; MM-Vet's ``indent=2``; SEED's JSON lines). The
MMBench ``.xlsx`` has the same sheet, columns, cells and styles as pandas'
``to_excel(engine="openpyxl")`` writes: every part of the file but ``docProps/core.xml``, which
stores the time of creation, is byte-identical to the original's (checked with pandas 3.1.1).

==========  ======================================  =========================================
benchmark   --questions                             output
==========  ======================================  =========================================
vqav2       llava_vqav2_mscoco_test2015.jsonl       [{"question_id", "answer"}] (test-dev
                                                    answers; other test questions get "")
vizwiz      llava_test.jsonl                        [{"image", "answer"}]
mmbench     the MMBench TSV (mmbench_dev_*.tsv)     .xlsx: TSV columns but hint, category,
                                                    source, image, comment, l2-category, with
                                                    "prediction" as the 7th column
seed        SEED-Bench.json                         JSON lines {"question_id", "prediction"}
mmvet       (none)                                  {"v1_<question_id>": answer}
gqa         (none)                                  [{"questionId", "prediction"}] for eval.py
==========  ======================================  =========================================
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mqt_llava.evaluation.scorers._io import format_error, read_json, read_jsonl, require_keys
from mqt_llava.evaluation.scorers.answer_normalization import normalize_evalai_answer


@dataclass(frozen=True)
class Submission:
    """What a converter produced.

    Attributes:
        content: The file's bytes (None for the xlsx, written by openpyxl itself).
        records: Records written.
        note: One line for the user (unanswered questions, skipped lines).
    """

    content: bytes | None
    records: int
    note: str = ""


def read_answer_records(path: Path, tolerant: bool = False) -> tuple[list[dict[str, Any]], int]:
    """The answer file's records in file order, and the number of lines skipped.

    Args:
        path: The answer JSONL.
        tolerant: Skip lines that are not JSON, as the VQAv2 and VizWiz converters do (they
            count them as ``error_line``); otherwise such a line is an error, as it is for the
            other converters (``json.loads`` raises there).
    """
    if not tolerant:
        records = [record for _, record in read_jsonl(path)]
    else:
        records, skipped = [], 0
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                skipped += 1
                continue
            records.append(record)
        for record in records:
            require_keys(record, ("question_id", "text"), path, None)
        return records, skipped
    for lineno, record in enumerate(records, start=1):
        require_keys(record, ("question_id", "text"), path, lineno)
    return records, 0


def _dump(obj: Any, indent: int | None = None) -> bytes:
    """``json.dump(obj, f)``'s text (``json.dump`` and ``json.dumps`` write the same)."""
    return json.dumps(obj, indent=indent).encode("ascii")


def _latest(records: list[dict[str, Any]]) -> dict[Any, str]:
    """``{x["question_id"]: x["text"]}``: a repeated id keeps its last answer; ids are compared
    as the originals compare them (``1`` and ``"1"`` differ)."""
    return {record["question_id"]: record["text"] for record in records}


def _question_lines(path: Path | None, benchmark: str, expected: str) -> list[dict[str, Any]]:
    if path is None:
        raise ValueError(f"submit {benchmark} needs --questions {expected}")
    return [record for _, record in read_jsonl(path)]


def vqav2_submission(answers: Path, questions: Path | None) -> Submission:
    """``convert_vqav2_for_submission.py``: every question of the *test* split's question file,
    answered with the EvalAI-processed text of its answer, or "" (the test-dev answers cover
    part of the test split; the server wants the whole split)."""
    records, skipped = read_answer_records(answers, tolerant=True)
    results = _latest(records)
    split = _question_lines(questions, "vqav2", "llava_vqav2_mscoco_test2015.jsonl")
    out = []
    for x in split:
        qid = x["question_id"]
        out.append(
            {"question_id": qid, "answer": normalize_evalai_answer(results[qid])}
            if qid in results
            else {"question_id": qid, "answer": ""}
        )
    unanswered = sum(x["question_id"] not in results for x in split)
    note = f'{unanswered} of {len(split)} questions unanswered (answer "")'
    return Submission(_dump(out), len(out), note + _skipped(skipped))


def vizwiz_submission(answers: Path, questions: Path | None) -> Submission:
    """``convert_vizwiz_for_submission.py``: ``{"image", "answer"}`` per question of
    ``llava_test.jsonl``, the answer EvalAI-processed; every question must be answered."""
    records, skipped = read_answer_records(answers, tolerant=True)
    results = _latest(records)
    split = _question_lines(questions, "vizwiz", "llava_test.jsonl")
    out = []
    for x in split:
        if x["question_id"] not in results:  # the original asserts
            raise format_error(answers, f"no answer for VizWiz question_id {x['question_id']!r}")
        out.append(
            {"image": x["image"], "answer": normalize_evalai_answer(results[x["question_id"]])}
        )
    return Submission(_dump(out), len(out), _skipped(skipped).lstrip("; "))


def gqa_submission(answers: Path, questions: Path | None = None) -> Submission:
    """``convert_gqa_for_eval.py``: ``{"questionId", "prediction"}`` per answer line, in file
    order, the text without trailing periods and lower-cased."""
    records, _ = read_answer_records(answers)
    out = [
        {"questionId": r["question_id"], "prediction": r["text"].rstrip(".").lower()}
        for r in records
    ]
    return Submission(_dump(out), len(out))


def mmvet_submission(answers: Path, questions: Path | None = None) -> Submission:
    """``convert_mmvet_for_eval.py``: ``{"v1_<question_id>": text}``, ``indent=2``."""
    records, _ = read_answer_records(answers)
    out = {f"v1_{r['question_id']}": r["text"] for r in records}
    return Submission(_dump(out, indent=2), len(out))


def seed_submission(answers: Path, questions: Path | None) -> Submission:
    """``convert_seed_for_submission.py``: one ``{"question_id", "prediction"}`` line per
    question of ``SEED-Bench.json``, in its order; an answer is found by the question id as
    written there, else by its integer value (LLaVA's question file uses integers)."""
    if questions is None:
        raise ValueError("submit seed needs --questions SEED-Bench.json")
    data = read_json(questions)
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
        raise format_error(questions, "expected SEED-Bench.json: an object with a 'questions' list")
    records, _ = read_answer_records(answers)
    results = {r["question_id"]: r for r in records}
    lines = []
    for question in data["questions"]:
        qid = question["question_id"]
        result = results.get(qid)
        if result is None:
            try:
                result = results.get(int(qid))
            except (TypeError, ValueError):
                result = None
        if result is None:  # the original raises KeyError
            raise format_error(answers, f"no answer for SEED-Bench question_id {qid!r}")
        lines.append(json.dumps({"question_id": qid, "prediction": result["text"]}) + "\n")
    return Submission("".join(lines).encode("ascii"), len(lines))


def _skipped(count: int) -> str:
    return f"; {count} answer lines were not JSON and were skipped" if count else ""


def mmbench_submission(answers: Path, questions: Path | None, out: Path) -> Submission:
    """``convert_mmbench_for_submission.py``: writes the xlsx to ``out`` (see
    `mqt_llava.evaluation.submission_xlsx`)."""
    from mqt_llava.evaluation.submission_xlsx import write_mmbench_xlsx

    if questions is None:
        raise ValueError("submit mmbench needs --questions mmbench_dev_20230712.tsv (the TSV)")
    records, _ = read_answer_records(answers)
    rows, unanswered = write_mmbench_xlsx(questions, records, out)
    return Submission(None, rows, f"{unanswered} of {rows} rows without a prediction")


CONVERTERS: dict[str, Callable[[Path, Path | None], Submission]] = {
    "vqav2": vqav2_submission,
    "vizwiz": vizwiz_submission,
    "seed": seed_submission,
    "mmvet": mmvet_submission,
    "gqa": gqa_submission,
}
SUPPORTED = (*CONVERTERS, "mmbench")
_ALIASES = {"vqa2": "vqav2", "seedbench": "seed", "mmvet": "mmvet"}


def submit(benchmark: str, answers: Path, out: Path, questions: Path | None = None) -> Submission:
    """Writes the submission file of ``benchmark`` for ``answers`` to ``out``.

    Args:
        benchmark: vqav2, vizwiz, mmbench, seed, mmvet or gqa (case, "-" and "_" ignored).
        answers: The answer file (JSONL) of ``mqt-llava eval`` or LLaVA's scripts.
        out: The file to write (its folder is created).
        questions: The file the converter also reads (see the module's table).

    Raises:
        ValueError: Unknown benchmark, a missing ``--questions``, or malformed files.
        FileNotFoundError: ``answers`` or ``questions`` does not exist.
    """
    key = benchmark.lower().replace("-", "").replace("_", "")
    key = _ALIASES.get(key, key)
    if key not in SUPPORTED:
        raise ValueError(f"unknown benchmark {benchmark!r}; supported: {', '.join(SUPPORTED)}")
    for flag, path in (("--answers", answers), ("--questions", questions)):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{flag} {path}: no such file")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if key == "mmbench":
        return mmbench_submission(Path(answers), questions, out)
    result = CONVERTERS[key](Path(answers), questions)
    assert result.content is not None
    out.write_bytes(result.content)
    return result
