"""VQA accuracy for VQAv2, VizWiz and TextVQA.

Accuracy of one answer is min(#annotators who gave it / 3, 1), averaged over the 10 ways of
leaving one of the 10 annotators out, exactly as the official code loops. The three benchmarks
differ only in how answers are normalised before comparing:

* VQAv2: LLaVA-1.5 runs its answers through the EvalAI processor before uploading; the server's
  ``vqaEval.py`` then normalises them again, and strips punctuation from the ground-truth answers
  only when the annotators disagree.
* VizWiz: the same upload path; the VizWiz ``vqaEval`` compares against the raw ground truth.
* TextVQA: LLaVA-1.5's ``eval_textvqa.py`` (m4c evaluator) puts prediction and all 10 ground-truth
  answers through the EvalAI processor.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mqt_llava.evaluation.scorers._io import (
    format_error,
    percent,
    read_answer_list,
    read_answers,
    read_json,
    read_jsonl,
    require_keys,
)
from mqt_llava.evaluation.scorers.answer_normalization import (
    normalize_evalai_answer,
    normalize_vqa_answer,
    process_punctuation,
)


@dataclass(frozen=True)
class VQAAnnotation:
    """The human answers to one question.

    Attributes:
        answers: The annotators' answers (10 in all three benchmarks), as written in the file.
        answer_type: The file's ``answer_type`` ("yes/no", "number", "other", "unanswerable"...).
    """

    answers: tuple[str, ...]
    answer_type: str = ""


def vqa_accuracy(prediction: str, gt_answers: Sequence[str]) -> float:
    """Soft VQA accuracy of an already-normalised prediction against normalised human answers.

    Returns:
        The mean over each left-out annotator of min(#other annotators matching / 3, 1), in [0, 1].
    """
    if not gt_answers:
        return 0.0
    matches = [answer == prediction for answer in gt_answers]
    n_match = sum(matches)
    # Leaving out a matching annotator leaves n_match - 1 matches among the rest, any other n_match.
    total = sum(min(1.0, (n_match - is_match) / 3) for is_match in matches)
    return total / len(gt_answers)


def _summarise(per_question: list[tuple[float, str]]) -> dict:
    by_type: dict[str, list[float]] = defaultdict(list)
    for acc, answer_type in per_question:
        by_type[answer_type].append(acc)
    return {
        "accuracy": percent(sum(acc for acc, _ in per_question), len(per_question)),
        "n": len(per_question),
        "per_answer_type": {t: percent(sum(v), len(v)) for t, v in sorted(by_type.items()) if t},
    }


def score_vqav2(predictions: Mapping[str, str], annotations: Mapping[str, VQAAnnotation]) -> dict:
    """VQAv2 accuracy (%) of raw model answers, overall and per answer type.

    Args:
        predictions: Question id → the model's raw answer; every id must be in ``annotations``.
        annotations: Question id → the human answers.
    """
    per_question = []
    for qid, text in predictions.items():
        ann = annotations[qid]
        prediction = normalize_vqa_answer(normalize_evalai_answer(text))
        gts = list(ann.answers)
        if len(set(gts)) > 1:  # the toolkit strips ground-truth punctuation only on disagreement
            gts = [process_punctuation(answer) for answer in gts]
        per_question.append((vqa_accuracy(prediction, gts), ann.answer_type))
    return _summarise(per_question)


def score_vizwiz(predictions: Mapping[str, str], annotations: Mapping[str, VQAAnnotation]) -> dict:
    """VizWiz-VQA accuracy (%), overall and per answer type; keys are image file names."""
    per_question = []
    for key, text in predictions.items():
        ann = annotations[key]
        prediction = normalize_vqa_answer(normalize_evalai_answer(text))
        per_question.append((vqa_accuracy(prediction, ann.answers), ann.answer_type))
    return _summarise(per_question)


def score_textvqa(predictions: Mapping[str, str], annotations: Mapping[str, VQAAnnotation]) -> dict:
    """TextVQA accuracy (%) as LLaVA-1.5's m4c evaluator computes it."""
    per_question = []
    for key, text in predictions.items():
        gts = [normalize_evalai_answer(answer) for answer in annotations[key].answers]
        per_question.append((vqa_accuracy(normalize_evalai_answer(text), gts), ""))
    return _summarise(per_question)


# --- readers ----------------------------------------------------------------------------------


def _answers_of(entry: dict, path: Path, where: str) -> tuple[str, ...]:
    answers = entry["answers"]
    if not isinstance(answers, list) or not answers:
        raise format_error(path, f"{where}: expected 'answers' to be a non-empty list")
    return tuple(str(a["answer"]) if isinstance(a, dict) else str(a) for a in answers)


def load_vqav2_annotations(path: Path) -> dict[str, VQAAnnotation]:
    """Reads ``v2_mscoco_*_annotations.json`` (``{"annotations": [{"question_id", "answers":
    [{"answer"}...], "answer_type"}...]}``) keyed by question id."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise format_error(
            path, "expected a VQA annotation file: an object with an 'annotations' list"
        )
    out = {}
    for i, entry in enumerate(data["annotations"]):
        require_keys(entry, ("question_id", "answers"), path, None)
        where = f"annotations[{i}]"
        out[str(entry["question_id"])] = VQAAnnotation(
            _answers_of(entry, path, where), str(entry.get("answer_type", ""))
        )
    return out


def load_vizwiz_annotations(path: Path) -> dict[str, VQAAnnotation]:
    """Reads the VizWiz ``val.json`` (a list of ``{"image", "answers", "answer_type"}``) keyed by
    image file name."""
    data = read_json(path)
    if not isinstance(data, list):
        raise format_error(path, "expected the VizWiz annotation list ([{'image', 'answers'}...])")
    out = {}
    for i, entry in enumerate(data):
        require_keys(entry, ("image", "answers"), path, None)
        out[str(entry["image"])] = VQAAnnotation(
            _answers_of(entry, path, f"entry {i}"), str(entry.get("answer_type", ""))
        )
    return out


def _textvqa_question(prompt: str) -> str | None:
    """The question inside a LLaVA-1.5 TextVQA prompt (``eval_textvqa.prompt_processor``)."""
    lines = prompt.split("\n")
    if prompt.startswith("OCR tokens: "):
        match = re.search(r"Question: (.*?) Short answer:", prompt, re.DOTALL)
        question = match.group(1) if match else None
    elif "Reference OCR token: " in prompt and len(lines) == 3:
        question = lines[1] if prompt.startswith("Reference OCR token:") else lines[0]
    elif len(lines) == 2:
        question = lines[0]
    else:
        question = None
    return question.lower() if question is not None else None


def score_vqav2_files(answers: Path, annotations: Path, questions: Path | None = None) -> dict:
    """Scores a VQAv2 answer file against ``v2_mscoco_*_annotations.json``."""
    gt = load_vqav2_annotations(annotations)
    predictions = {}
    for qid, answer in read_answers(answers).items():
        if qid not in gt:
            raise format_error(answers, f"question_id {qid!r} is not in {annotations}", answer.line)
        predictions[qid] = answer.text
    return score_vqav2(predictions, gt)


def score_vizwiz_files(answers: Path, annotations: Path, questions: Path | None = None) -> dict:
    """Scores a VizWiz answer file against the VizWiz ``val.json``.

    VizWiz has no question ids: with ``questions`` (LLaVA's question JSONL) an answer's id is
    looked up there for its ``image``; without it, the answer's ``question_id`` must be the image
    file name.
    """
    gt = load_vizwiz_annotations(annotations)
    image_of: dict[str, str] = {}
    if questions is not None:
        for lineno, record in read_jsonl(questions):
            require_keys(record, ("question_id", "image"), questions, lineno)
            image_of[str(record["question_id"])] = str(record["image"])
    predictions = {}
    for qid, answer in read_answers(answers).items():
        image = image_of.get(qid, qid)
        if image not in gt:
            hint = "" if questions else " (pass the question file to map ids to images)"
            raise format_error(
                answers,
                f"question_id {qid!r}: image {image!r} is not in {annotations}{hint}",
                answer.line,
            )
        predictions[image] = answer.text
    return score_vizwiz(predictions, gt)


def score_textvqa_files(answers: Path, annotations: Path, questions: Path | None = None) -> dict:
    """Scores a TextVQA answer file against ``TextVQA_0.5.1_val.json``, as ``eval_textvqa.py``.

    LLaVA-1.5's question file uses the *image id* as ``question_id``, shared by every question
    about that image, so an answer is matched as the release matches it: by (image id, the
    question read back from its ``prompt``, lower-cased); an annotation repeated under the same
    key keeps its last entry. Every answer line is scored, repeated ids included. An answer
    whose prompt names no known question is matched by TextVQA's own ``question_id`` instead.
    """
    data = read_json(annotations)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise format_error(annotations, "expected the TextVQA file: an object with a 'data' list")
    by_qid: dict[str, VQAAnnotation] = {}
    by_image_question: dict[tuple[str, str], VQAAnnotation] = {}
    for i, entry in enumerate(data["data"]):
        require_keys(entry, ("question_id", "image_id", "question", "answers"), annotations, None)
        ann = VQAAnnotation(_answers_of(entry, annotations, f"data[{i}]"))
        if len(ann.answers) != 10:  # the m4c evaluator asserts exactly 10
            raise format_error(
                annotations, f"data[{i}]: expected 10 answers, got {len(ann.answers)}"
            )
        by_qid[str(entry["question_id"])] = ann
        by_image_question[(str(entry["image_id"]), str(entry["question"]).lower())] = ann
    predictions, gt = {}, {}
    for answer in read_answer_list(answers):
        key = (answer.question_id, _textvqa_question(answer.prompt) or "")
        ann = by_image_question.get(key) or by_qid.get(answer.question_id)
        if ann is None:
            raise format_error(
                answers,
                f"question_id {answer.question_id!r} with question {key[1]!r} matches no "
                f"(image_id, question) of {annotations}, nor a TextVQA question_id",
                answer.line,
            )
        # One entry per answer line: the release scores every line of the file.
        predictions[str(answer.line)], gt[str(answer.line)] = answer.text, ann
    return score_textvqa(predictions, gt)
