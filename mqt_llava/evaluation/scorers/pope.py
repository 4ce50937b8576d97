"""POPE: accuracy, precision, recall, F1 and yes-ratio per split, with the answer parsing of
LLaVA-1.5's ``eval_pope.py``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from mqt_llava.evaluation.scorers._io import (
    format_error,
    percent,
    read_answers,
    read_jsonl,
    require_keys,
)

_METRICS = ("accuracy", "precision", "recall", "f1", "yes_ratio")


def pope_label(text: str) -> str:
    """Reads a free-form answer as "yes" or "no", as ``eval_pope.py`` does.

    Only the text before the first period counts; commas are dropped; the answer is "no" when one
    of the space-separated words is exactly "No", "no" or "not", and "yes" otherwise (so "NO",
    "Nope" and "no\\nthere is" read as "yes").
    """
    if "." in text:
        text = text.split(".")[0]
    words = text.replace(",", "").split(" ")
    return "no" if ("No" in words or "not" in words or "no" in words) else "yes"


def score_pope(predictions: Sequence[str], labels: Sequence[str]) -> dict:
    """POPE metrics (%) of one split.

    Args:
        predictions: The model's raw answers, aligned with ``labels``.
        labels: The gold labels; "no" is the negative class, anything else positive (as the
            official script reads them).

    Returns:
        accuracy, precision, recall, f1, yes_ratio (percent), the confusion counts and n.
        Precision / recall / F1 are 0 where the official script would divide by zero.
    """
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    tp = fp = tn = fn = 0
    for text, label in zip(predictions, labels, strict=True):
        pred_yes, gold_yes = pope_label(text) == "yes", label != "no"
        tp += pred_yes and gold_yes
        fp += pred_yes and not gold_yes
        tn += not pred_yes and not gold_yes
        fn += not pred_yes and gold_yes
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    n = len(labels)
    return {
        "accuracy": percent(tp + tn, n),
        "precision": 100.0 * precision,
        "recall": 100.0 * recall,
        "f1": 100.0 * f1,
        "yes_ratio": percent(tp + fp, n),
        "tp": tp, "fp": fp, "tn": tn, "fn": fn, "n": n,
    }  # fmt: skip


def _split_name(path: Path) -> str:
    return path.stem[len("coco_pope_") :] if path.stem.startswith("coco_pope_") else path.stem


def score_pope_files(answers: Path, annotations: Path, questions: Path | None = None) -> dict:
    """Scores POPE answers against ``coco_pope_{adversarial,popular,random}.json``.

    Args:
        answers: The answer JSONL.
        annotations: The folder of ``coco_pope_*.json`` label files (JSON lines with
            ``question_id``, ``image``, ``label``), or one such file.
        questions: LLaVA-1.5's ``llava_pope_test.jsonl``, whose ``category`` names each question's
            split; the k-th question of a split is paired with the k-th line of its label file,
            as ``eval_pope.py`` pairs them. Without it (one label file only), answers are matched
            to labels by ``question_id``.

    Returns:
        ``{"splits": {split: metrics}, "average": mean of each metric over the splits}``.
    """
    got = read_answers(answers)
    if annotations.is_dir():
        label_files = sorted(annotations.glob("coco_pope_*.json"))
        if not label_files:
            raise format_error(annotations, "expected coco_pope_<split>.json files in this folder")
    else:
        label_files = [annotations]
    if questions is None and len(label_files) > 1:
        raise format_error(
            annotations,
            "several POPE splits need the question file (llava_pope_test.jsonl), "
            "whose 'category' says which split each answer belongs to",
        )

    split_qids: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    if questions is not None:
        for lineno, record in read_jsonl(questions):
            require_keys(record, ("question_id", "category"), questions, lineno)
            split_qids[str(record["category"])].append(
                (str(record["question_id"]), record.get("image"))
            )

    splits = {}
    for label_file in label_files:
        split = _split_name(label_file)
        lines = read_jsonl(label_file)
        for lineno, record in lines:
            require_keys(record, ("question_id", "label"), label_file, lineno)
        if questions is None:
            pairs = [(str(r["question_id"]), r.get("image"), lineno, r) for lineno, r in lines]
        else:
            qids = split_qids.get(split, [])
            if len(qids) != len(lines):
                raise format_error(
                    questions,
                    f"{len(qids)} questions have category {split!r} but "
                    f"{label_file} has {len(lines)} labels",
                )
            paired = zip(qids, lines, strict=True)
            pairs = [(qid, image, lineno, r) for (qid, image), (lineno, r) in paired]
        predictions = []
        for qid, image, lineno, record in pairs:
            if image is not None and "image" in record and image != record["image"]:
                raise format_error(
                    label_file,
                    f"label is for image {record['image']!r} but question {qid!r} "
                    f"of the question file shows {image!r}; the files are not in the same order",
                    lineno,
                )
            if qid not in got:
                raise format_error(answers, f"no answer for POPE {split} question_id {qid!r}")
            predictions.append(got[qid].text)
        splits[split] = score_pope(predictions, [str(r["label"]) for _, r in lines])
    average = {m: sum(s[m] for s in splits.values()) / len(splits) for m in _METRICS}
    return {"splits": splits, "average": average}
