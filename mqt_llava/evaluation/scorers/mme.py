"""MME: per-subtask score = 100 * (accuracy + accuracy-plus), perception = sum of the 10
perception subtasks, cognition = sum of the 4 cognition subtasks, as the MME ``eval_tool/
calculation.py`` computes them on the files LLaVA-1.5's ``convert_answer_to_mme.py`` writes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mqt_llava.evaluation.scorers._io import format_error, read_answer_list

PERCEPTION = (
    "existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark",
    "artwork", "OCR",
)  # fmt: skip
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
_SHORT_ANSWER = "Answer the question using a single word or phrase."
_YES_NO = "Please answer yes or no."
_COUNTS = ("tp", "fn", "tn", "fp", "other")
_OUTCOME = {("yes", "yes"): "tp", ("yes", "no"): "fn", ("no", "no"): "tn", ("no", "yes"): "fp"}


@dataclass(frozen=True)
class MMERecord:
    """One answered MME question.

    Attributes:
        subtask: The subtask folder name ("existence", "OCR", ...).
        image: The image it asks about; each image has exactly two questions.
        gold: "yes" or "no" (any case).
        prediction: The model's raw answer.
    """

    subtask: str
    image: str
    gold: str
    prediction: str


def mme_label(text: str) -> str:
    """Reads an answer as "yes", "no" or "other": "yes" / "no" among its first 4 characters
    (lower-cased), "yes" checked first, as ``calculation.py`` does."""
    prefix = text.lower()[:4]
    if "yes" in prefix:
        return "yes"
    return "no" if "no" in prefix else "other"


def score_mme(records: Sequence[MMERecord]) -> dict:
    """MME scores.

    Returns:
        ``perception`` and ``cognition`` (sums over the subtasks present), ``total``, and per
        subtask ``score`` (0–200), ``acc`` and ``acc_plus`` (%, acc-plus: both questions of an
        image right), ``n_images``, and ``calculation.py``'s ``compute_metric`` counts: ``tp``,
        ``fn``, ``tn``, ``fp`` over the answers read as yes/no (positive: "yes"), ``other`` (the
        answers read as neither, wrong in ``acc`` and left out of the four counts), and
        ``precision`` / ``recall`` (%) from those counts (0 where sklearn's would divide by 0);
        ``missing_subtasks`` lists the 14 subtasks with no answers.

    Raises:
        ValueError: An image does not have exactly two questions, or a gold answer is not yes/no.
    """
    by_subtask: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(_COUNTS, 0))
    for r in records:
        gold = r.gold.lower()
        if gold not in ("yes", "no"):
            raise ValueError(f"MME {r.subtask}/{r.image}: gold answer {r.gold!r} is not yes/no")
        label = mme_label(r.prediction)
        by_subtask[r.subtask][r.image].append(label == gold)
        # sklearn's confusion_matrix(labels=[1, 0]) over the yes/no answers: yes is positive.
        outcome = "other" if label == "other" else _OUTCOME[(gold, label)]
        counts[r.subtask][outcome] += 1
    subtasks = {}
    for name, images in sorted(by_subtask.items()):
        for image, hits in images.items():
            if len(hits) != 2:
                raise ValueError(f"MME {name}/{image}: expected 2 questions, got {len(hits)}")
        n_images = len(images)
        acc = sum(sum(h) for h in images.values()) / (2 * n_images)
        acc_plus = sum(all(h) for h in images.values()) / n_images
        c = counts[name]
        predicted_yes, gold_yes = c["tp"] + c["fp"], c["tp"] + c["fn"]
        subtasks[name] = {
            "score": 100 * acc + 100 * acc_plus,
            "acc": 100 * acc,
            "acc_plus": 100 * acc_plus,
            "n_images": n_images,
            **c,
            "precision": 100 * c["tp"] / predicted_yes if predicted_yes else 0.0,
            "recall": 100 * c["tp"] / gold_yes if gold_yes else 0.0,
        }
    perception = sum(subtasks[t]["score"] for t in PERCEPTION if t in subtasks)
    cognition = sum(subtasks[t]["score"] for t in COGNITION if t in subtasks)
    return {
        "perception": perception,
        "cognition": cognition,
        "total": perception + cognition,
        "subtasks": subtasks,
        "missing_subtasks": [t for t in PERCEPTION + COGNITION if t not in subtasks],
    }


def load_mme_ground_truth(root: Path) -> dict[tuple[str, str, str], str]:
    """Reads the MME release folder into ``(subtask, txt file name, question) → "Yes"/"No"``.

    A subtask folder holds either ``images/`` and ``questions_answers_YN/``, or the images and
    their ``.txt`` files side by side; each ``.txt`` has two ``question<TAB>answer`` lines.
    """
    if not root.is_dir():
        raise format_error(root, "expected the MME_Benchmark_release_version folder")
    gt = {}
    for subtask in PERCEPTION + COGNITION:
        folder = root / subtask
        if not folder.is_dir():
            continue
        qa_folder = folder / "questions_answers_YN" if (folder / "images").is_dir() else folder
        for txt in sorted(qa_folder.glob("*.txt")):
            for lineno, line in enumerate(txt.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                fields = line.strip().split("\t")
                if len(fields) != 2:
                    raise format_error(txt, "expected 'question<TAB>answer'", lineno)
                gt[(subtask, txt.name, fields[0])] = fields[1]
    if not gt:
        raise format_error(root, f"found no subtask folders ({', '.join(PERCEPTION + COGNITION)})")
    return gt


def score_mme_files(answers: Path, annotations: Path, questions: Path | None = None) -> dict:
    """Scores MME answers (``question_id`` = ``<subtask>/<image file>``) against the release folder.

    The gold answer is found as ``convert_answer_to_mme.py`` finds it: by subtask, image stem
    and the prompt with the short-answer instruction swapped for "Please answer yes or no.".
    """
    gt = load_mme_ground_truth(annotations)
    records = []
    for answer in read_answer_list(answers):  # both questions of an image share its id
        qid = answer.question_id
        subtask = qid.split("/")[0]
        txt = qid.split("/")[-1].split(".")[0] + ".txt"
        prompt = answer.prompt
        if _SHORT_ANSWER in prompt:
            prompt = prompt.replace(_SHORT_ANSWER, "").strip()
        if _YES_NO not in prompt:
            prompt = f"{prompt} {_YES_NO}"
            if (subtask, txt, prompt) not in gt:  # some release questions have two spaces
                prompt = prompt.replace(f" {_YES_NO}", f"  {_YES_NO}")
        if (subtask, txt, prompt) not in gt:
            raise format_error(
                answers,
                f"no MME question {prompt!r} for {subtask}/{txt} in {annotations} "
                "(expected question_id '<subtask>/<image>' and the question in 'prompt')",
                answer.line,
            )
        records.append(MMERecord(subtask, txt, gt[(subtask, txt, prompt)], answer.text))
    return score_mme(records)
