"""Any test set in LLaVA's training format, scored by exact match, with two shortcut baselines.

A LLaVA-JSON file is a list of records ``{"id", "image"?, "conversations": [{"from": "human",
"value": "<image>\\nQuestion"}, {"from": "gpt", "value": "Answer"}, ...]}``. The first human turn
is the question, the gpt turn after it the gold answer (later turns are not asked). A record's
category is the first of its fields ``category``, ``question_type``, ``type`` that is present.

Answers and gold answers are compared after the VQA answer normalisation (the EvalAI processor:
lower case, punctuation, number words to digits, articles dropped), so "Two." equals "2".

Two baselines show what the set rewards without looking at the image, computed on the same
questions as the model:

* majority: always give the most frequent gold answer;
* text-only: for each exact question text asked more than once, give the answer most frequent
  among the questions with that text (the best an answer table from the text alone can score on
  them); a text asked only once gets the majority answer (its own answer would be a peek).

A model whose accuracy does not exceed the text-only baseline is flagged: nothing in its score
shows that it used the image. ``agreement_with_text_only`` is the share of its answers that equal
the text-only guess (100 % for a model that answers from the question text alone).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mqt_llava.evaluation.scorers._io import format_error, percent, read_answer_list, read_json
from mqt_llava.evaluation.scorers.answer_normalization import normalize_evalai_answer

CATEGORY_FIELDS = ("category", "question_type", "type")


@dataclass(frozen=True)
class LlavaJsonQuestion:
    """One question of a LLaVA-JSON file.

    Attributes:
        question_id: The record's ``id`` (its index in the list when it has none), as a string.
        image: The record's ``image`` path (relative to the image folder), or None.
        question: The first human turn without the ``<image>`` placeholder, stripped.
        answer: The gpt turn that follows it.
        category: The record's category field, or None.
    """

    question_id: str
    image: str | None
    question: str
    answer: str
    category: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        """(question id, question): ids may repeat across questions (one id per image)."""
        return self.question_id, self.question


def _first_exchange(record: dict) -> tuple[str, str] | None:
    turns = record.get("conversations")
    if not isinstance(turns, list):
        return None
    for i, turn in enumerate(turns[:-1]):
        following = turns[i + 1]
        if (
            isinstance(turn, dict)
            and isinstance(following, dict)
            and turn.get("from") == "human"
            and following.get("from") == "gpt"
        ):
            return str(turn.get("value", "")), str(following.get("value", ""))
    return None


def read_llava_json(path: Path) -> list[LlavaJsonQuestion]:
    """Reads the questions of a LLaVA-JSON file.

    Raises:
        AnnotationFormatError: Not a JSON list, or a record without a human turn followed by a
            gpt turn (the message names the record).
    """
    records = read_json(path)
    if not isinstance(records, list):
        raise format_error(path, "expected a JSON list of LLaVA records (id, image, conversations)")
    out = []
    for i, record in enumerate(records):
        exchange = _first_exchange(record) if isinstance(record, dict) else None
        if exchange is None:
            raise format_error(
                path,
                f"record {i}: expected 'conversations' with a human turn followed by a gpt turn",
            )
        question, answer = exchange
        category = next((record[f] for f in CATEGORY_FIELDS if record.get(f) is not None), None)
        image = record.get("image")
        out.append(
            LlavaJsonQuestion(
                question_id=str(record.get("id", i)),
                image=str(image) if image else None,
                question=question.replace("<image>", "").strip(),
                answer=answer.strip(),
                category=str(category) if category is not None else None,
            )
        )
    return out


def _most_frequent(answers: Sequence[str]) -> str:
    """The most frequent answer; ties go to the one seen first (Counter keeps insertion order)."""
    return Counter(answers).most_common(1)[0][0]


def _summary(rows: Sequence[tuple[str, str, str]]) -> dict:
    """Accuracy, the two baselines and the flag over (question, gold, prediction) rows, all
    normalised."""
    n = len(rows)
    majority = _most_frequent([gold for _, gold, _ in rows]) if rows else ""
    by_text: dict[str, list[str]] = defaultdict(list)
    for question, gold, _ in rows:
        by_text[question].append(gold)
    # A text asked once would be "guessed" from its own gold answer: it gets the majority answer.
    guess = {
        q: _most_frequent(golds) if len(golds) > 1 else majority for q, golds in by_text.items()
    }
    accuracy = percent(sum(gold == pred for _, gold, pred in rows), n)
    text_only = percent(sum(gold == guess[q] for q, gold, _ in rows), n)
    repeated = sum(len(golds) for golds in by_text.values() if len(golds) > 1)
    return {
        "accuracy": accuracy,
        "n": n,
        "majority_baseline": {
            "answer": majority,
            "accuracy": percent(sum(gold == majority for _, gold, _ in rows), n),
        },
        "text_only_baseline": {
            "accuracy": text_only,
            "distinct_questions": len(by_text),
            "repeated_questions": repeated,  # questions whose exact text is asked again
        },
        "agreement_with_text_only": percent(sum(pred == guess[q] for q, _, pred in rows), n),
        "shortcut_flag": bool(rows) and accuracy <= text_only + 1e-9,
    }


def score_llava_json(
    predictions: Mapping[tuple[str, str], str], gold: Mapping[tuple[str, str], LlavaJsonQuestion]
) -> dict:
    """Exact-match accuracy (%) with the majority and text-only baselines, overall and per
    category.

    Args:
        predictions: (question id, question) → the model's raw answer; each key must be in
            ``gold``. Only these questions are scored (and used for the baselines).
        gold: (question id, question) → the question, for the whole file.

    Returns:
        ``accuracy``, ``n``, ``missing`` (gold questions without an answer),
        ``majority_baseline`` ({answer, accuracy}), ``text_only_baseline`` ({accuracy,
        distinct_questions, repeated_questions}), ``agreement_with_text_only``,
        ``shortcut_flag``, and ``per_category`` ({category: the same fields but ``missing``}) when
        a category field is present.
    """
    rows, by_category = [], defaultdict(list)
    for key, question in gold.items():
        if key not in predictions:
            continue
        row = (
            question.question,
            normalize_evalai_answer(question.answer),
            normalize_evalai_answer(predictions[key]),
        )
        rows.append(row)
        if question.category is not None:
            by_category[question.category].append(row)
    result = {**_summary(rows), "missing": len(gold) - len(rows)}
    if by_category:
        result["per_category"] = {c: _summary(r) for c, r in by_category.items()}
    return result


def score_llava_json_files(answers: Path, annotations: Path, questions: Path | None = None) -> dict:
    """Scores answers (``question_id`` = record id, ``prompt`` = the question) against the
    LLaVA-JSON file they were asked from. A repeated (id, prompt) keeps its last answer."""
    gold = {q.key: q for q in read_llava_json(annotations)}
    predictions = {}
    for answer in read_answer_list(answers):
        key = (answer.question_id, answer.prompt)
        if key not in gold:
            raise format_error(
                answers,
                f"question_id {answer.question_id!r} with prompt {answer.prompt[:60]!r} is not a "
                f"question of {annotations}",
                answer.line,
            )
        predictions[key] = answer.text
    return score_llava_json(predictions, gold)
