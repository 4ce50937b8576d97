"""Multiple-choice benchmarks: SEED-Bench (LLaVA-1.5's exact match) and MMMU (the official
MMMU answer parsing)."""

from __future__ import annotations

import ast
import re
import string
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mqt_llava.evaluation.scorers._io import (
    format_error,
    percent,
    read_answers,
    read_json,
    read_jsonl,
    require_keys,
)

# --- SEED-Bench -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedQuestion:
    """A SEED-Bench question: gold ``answer`` letter, ``question_type`` name, ``data_type``."""

    question_id: str
    answer: str
    question_type: str = ""
    data_type: str = "image"


def score_seed(predictions: Mapping[str, str], questions: Sequence[SeedQuestion]) -> dict:
    """SEED-Bench accuracy (%) as LLaVA-1.5's ``convert_seed_for_submission.py`` computes it: an
    answer is right only if its text *equals* the gold letter; an unanswered question is wrong.

    Returns:
        ``accuracy`` over all questions, ``per_data_type`` (image / video), ``per_question_type``,
        ``n`` and ``missing``.
    """
    hits = [predictions.get(q.question_id) == q.answer for q in questions]
    by_data: dict[str, list[bool]] = defaultdict(list)
    by_type: dict[str, list[bool]] = defaultdict(list)
    for question, hit in zip(questions, hits, strict=True):
        by_data[question.data_type].append(hit)
        by_type[question.question_type].append(hit)
    return {
        "accuracy": percent(sum(hits), len(hits)),
        "per_data_type": {k: percent(sum(v), len(v)) for k, v in sorted(by_data.items())},
        "per_question_type": {k: percent(sum(v), len(v)) for k, v in sorted(by_type.items())},
        "n": len(hits),
        "missing": sum(q.question_id not in predictions for q in questions),
    }


def score_seed_files(answers: Path, annotations: Path, questions: Path | None = None) -> dict:
    """Scores SEED-Bench answers against ``SEED-Bench.json``."""
    data = read_json(annotations)
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
        raise format_error(
            annotations, "expected SEED-Bench.json: an object with a 'questions' list"
        )
    type_names = {v: k for k, v in (data.get("question_type") or {}).items()}
    gold = []
    for entry in data["questions"]:
        require_keys(entry, ("question_id", "answer"), annotations, None)
        type_id = entry.get("question_type_id", "")
        gold.append(
            SeedQuestion(
                str(entry["question_id"]),
                str(entry["answer"]),
                str(type_names.get(type_id, type_id)),
                str(entry.get("data_type", "image")),
            )
        )
    predictions = {qid: answer.text for qid, answer in read_answers(answers).items()}
    return score_seed(predictions, gold)


# --- MMMU -------------------------------------------------------------------------------------


def parse_mmmu_choice(
    response: str, all_choices: Sequence[str], index2ans: Mapping[str, str] | None = None
) -> str | None:
    """The option letter a response picks, by MMMU's ``parse_multi_choice_response``.

    Candidates are "(X)" mentions, else " X " mentions, else (for responses longer than 5 words)
    options whose text appears; with several, the one mentioned last wins.

    Returns:
        The letter, or None where the official code would pick a random letter.
    """
    for char in (",", ".", "!", "?", ";", ":", "'"):  # one after the other, as the original does
        response = response.strip(char)
    response = f" {response} "
    candidates = [c for c in all_choices if f"({c})" in response]
    bracketed, by_content = bool(candidates), False
    if not candidates:
        candidates = [c for c in all_choices if f" {c} " in response]
    if not candidates and index2ans and len(response.split()) > 5:
        candidates = [i for i, ans in index2ans.items() if ans.lower() in response.lower()]
        by_content = bool(candidates)
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    if by_content:
        assert index2ans is not None
        starts = [response.lower().rfind(index2ans[c].lower()) for c in candidates]
    else:
        starts = [response.rfind(f"({c})" if bracketed else f" {c} ") for c in candidates]
    return candidates[starts.index(max(starts))]


_NUMBER_PATTERNS = (
    re.compile(r"-?\b\d{1,3}(?:,\d{3})+\b"),  # with thousands separators
    re.compile(r"-?\d+(?:\.\d+)?[eE][+-]?\d+"),  # scientific notation
    re.compile(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])"),  # plain
)
_TRIVIAL = frozenset({":", ",", ".", "!", "?", ";", "'"})


def _normalize_mmmu(text: str) -> list[str | float]:
    """MMMU's ``normalize_str``: a number becomes a float rounded to 2 places; a one-character
    string becomes two space-padded variants so it cannot match inside a word."""
    text = text.strip()
    try:
        return [round(float(text.replace(",", "")), 2)]
    except ValueError:
        text = text.lower()
        return [f" {text}", f"{text} "] if len(text) == 1 else [text]


def parse_mmmu_open(response: str) -> list[str | float]:
    """The candidate answers in an open-question response (MMMU's ``parse_open_response``)."""
    # Lower-cased before the split, so the "sentence end before a capital" split never fires.
    response = response.strip().strip(".").lower()
    sentences = re.split(r"\.\s(?=[A-Z])|\n", response)
    indicators = ["could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result "]
    keys = []
    for i, sentence in enumerate(sentences):
        if i == len(sentences) - 1:
            indicators.append("=")
        shortest: str | None = None
        for indicator in indicators:
            if indicator in sentence:
                tail = sentence.split(indicator)[-1].strip()
                if not shortest or len(tail) < len(shortest):
                    shortest = tail
        if shortest and shortest.strip() not in _TRIVIAL:
            keys.append(shortest)
    keys = keys or [response]
    candidates = list(keys)
    for key in keys:
        for pattern in _NUMBER_PATTERNS:
            candidates.extend(pattern.findall(key))
    return list({norm for c in candidates for norm in _normalize_mmmu(c)})


def mmmu_open_correct(gold: str | Sequence[str], candidates: Sequence[str | float]) -> bool:
    """MMMU's ``eval_open``: a gold string inside a candidate string, or an equal number."""
    golds = [gold] if isinstance(gold, str) else list(gold)
    norms = [n for g in golds for n in _normalize_mmmu(g)]
    for cand in candidates:
        if isinstance(cand, str):
            if any(isinstance(n, str) and n in cand for n in norms):
                return True
        elif cand in norms:
            return True
    return False


@dataclass(frozen=True)
class MMMUQuestion:
    """An MMMU question: ``question_type`` ("multiple-choice" / "open"), ``ground_truth`` (a
    letter, an answer, or a list of them) and, for multiple choice, its ``options`` texts."""

    question_type: str
    ground_truth: str | tuple[str, ...]
    options: tuple[str, ...] = ()


def score_mmmu(predictions: Mapping[str, str], questions: Mapping[str, MMMUQuestion]) -> dict:
    """MMMU accuracy (%) over the answered questions, overall and per subject.

    A multiple-choice response nothing can be parsed from counts as wrong (``unparsed``); the
    official code would guess a random letter there. Without ``options``, the choices are A–D.
    """
    hits: dict[str, list[bool]] = defaultdict(list)
    unparsed = 0
    for qid, response in predictions.items():
        question = questions[qid]
        truth = question.ground_truth
        golds = (truth,) if isinstance(truth, str) else truth
        if question.question_type == "multiple-choice":
            letters = string.ascii_uppercase[: len(question.options) or 4]
            index2ans = dict(zip(letters, question.options, strict=False))
            choice = parse_mmmu_choice(response, list(letters), index2ans)
            unparsed += choice is None
            hit = choice is not None and choice in golds
        else:
            hit = mmmu_open_correct(golds, parse_mmmu_open(response))
        hits["_".join(qid.split("_")[1:-1])].append(hit)  # "validation_Art_Theory_12" → Art_Theory
    every = [h for subject in hits.values() for h in subject]
    return {
        "accuracy": percent(sum(every), len(every)),
        "per_subject": {k: percent(sum(v), len(v)) for k, v in sorted(hits.items())},
        "n": len(every),
        "unparsed": unparsed,
    }


def _options_of(record: dict, path: Path, line: int) -> tuple[str, ...]:
    options = record.get("options", [])
    if isinstance(options, str):  # the HF dataset stores the list's Python repr
        try:
            options = ast.literal_eval(options)
        except (ValueError, SyntaxError):
            raise format_error(path, f"'options' {options!r:.60} is not a list", line) from None
    if not isinstance(options, list):
        raise format_error(path, "expected 'options' to be a list of option texts", line)
    return tuple(str(o) for o in options)


def score_mmmu_files(answers: Path, annotations: Path, questions: Path | None = None) -> dict:
    """Scores MMMU answers (``question_id`` like ``validation_Art_Theory_12``) against
    ``answer_dict_val.json``; ``questions`` (JSONL with ``question_id`` or MMMU's ``id``, and
    ``options``) supplies the option texts the official parser also matches on."""
    data = read_json(annotations)
    if not isinstance(data, dict):
        expected = "expected answer_dict_val.json: id → {'question_type', 'ground_truth'}"
        raise format_error(annotations, expected)
    options: dict[str, tuple[str, ...]] = {}
    if questions is not None:
        for lineno, record in read_jsonl(questions):
            if "question_id" not in record:  # MMMU's own records call it "id"
                require_keys(record, ("id",), questions, lineno)
            qid = record.get("question_id", record.get("id"))
            options[str(qid)] = _options_of(record, questions, lineno)
    gold = {}
    for qid, entry in data.items():
        if not isinstance(entry, dict) or not {"question_type", "ground_truth"} <= entry.keys():
            raise format_error(annotations, f"{qid!r}: expected 'question_type' and 'ground_truth'")
        truth = entry["ground_truth"]
        truth = str(truth) if not isinstance(truth, list) else tuple(str(t) for t in truth)
        gold[qid] = MMMUQuestion(str(entry["question_type"]), truth, options.get(qid, ()))
    predictions = {}
    for qid, answer in read_answers(answers).items():
        if qid not in gold:
            raise format_error(answers, f"question_id {qid!r} is not in {annotations}", answer.line)
        predictions[qid] = answer.text
    return {**score_mmmu(predictions, gold), "options_from": "questions" if options else "A-D"}
