"""LLaVA-1.5's question JSONL benchmarks: VQAv2, GQA, VizWiz, TextVQA, POPE, SEED-Bench.

Each line of the question file is ``{"question_id", "image", "text", "category"?}`` and ``text``
already carries the release's instruction (``\\nAnswer the question using a single word or
phrase.``, SEED's options and ``Answer with the option's letter ...``): ``model_vqa_loader.py``
asks ``<image>\\n{text}`` and writes ``text`` back as the answer's ``prompt``. So do we.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mqt_llava.evaluation.readers._common import EvalItem, find_file, image_folder
from mqt_llava.evaluation.scorers._io import read_jsonl, require_keys


@dataclass(frozen=True)
class JsonlLayout:
    """Where a benchmark's files sit in its LLaVA-1.5 evaluation folder.

    Attributes:
        question_files: Question file names / glob patterns, most specific first.
        image_folders: Image folders relative to the benchmark folder, in order of preference.
        annotations: Official annotation files / folders (for the scorer), in order.
        scorer_needs_questions: The scorer also reads the question file (POPE's splits,
            VizWiz's question id → image).
    """

    question_files: tuple[str, ...]
    image_folders: tuple[str, ...]
    annotations: tuple[str, ...] = ()
    scorer_needs_questions: bool = False


LAYOUTS: dict[str, JsonlLayout] = {
    "vqav2": JsonlLayout(
        ("llava_vqav2_mscoco_test-dev2015.jsonl", "llava_vqav2*.jsonl"),
        ("test2015", "val2014", "."),
        ("v2_mscoco_*_annotations.json",),  # test-dev has none: answers go to the server
    ),
    "gqa": JsonlLayout(
        ("llava_gqa_testdev_balanced.jsonl", "llava_gqa*.jsonl"),
        ("data/images", "images", "."),
        ("data/testdev_balanced_questions.json", "testdev_balanced_questions.json"),
    ),
    "vizwiz": JsonlLayout(
        ("llava_test.jsonl", "llava_vizwiz*.jsonl"),
        ("test", "val", "."),
        ("val.json", "Annotations/val.json"),  # the test split has no public answers
        scorer_needs_questions=True,
    ),
    "textvqa": JsonlLayout(
        ("llava_textvqa_val_v051_ocr.jsonl", "llava_textvqa*.jsonl"),
        ("train_images", "."),
        ("TextVQA_0.5.1_val.json",),
    ),
    "pope": JsonlLayout(
        ("llava_pope_test.jsonl",),
        ("val2014", "."),
        ("coco",),  # coco_pope_{adversarial,popular,random}.json
        scorer_needs_questions=True,
    ),
    "seed": JsonlLayout(
        ("llava-seed-bench.jsonl", "llava-seed-bench*.jsonl"),
        (".",),  # image paths carry SEED-Bench-image/ or SEED-Bench-video-image/
        ("SEED-Bench.json",),
    ),
}


def question_file(name: str, data: Path, questions: Path | None) -> Path:
    """The question JSONL: ``questions`` if given, else the release's file in ``data``."""
    if questions is not None:
        if not questions.is_file():
            raise FileNotFoundError(f"--questions {questions}: no such file")
        return questions
    return find_file(data, LAYOUTS[name].question_files, f"{name} question file (JSONL)")


def read_question_jsonl(
    path: Path, images: Path | None, folders: tuple[str, ...]
) -> list[EvalItem]:
    """Reads a LLaVA-1.5 question JSONL into items.

    Args:
        path: The question file.
        images: The image folder; None to pick the first of ``folders`` (relative to the
            question file's folder) that holds the first question's image.
        folders: Candidate image folders.

    Raises:
        AnnotationFormatError: A line is not JSON or lacks ``question_id`` / ``text``.
        FileNotFoundError: The image folder cannot be found.
    """
    records = read_jsonl(path)
    for lineno, record in records:
        require_keys(record, ("question_id", "text"), path, lineno)
    first_image = next((r["image"] for _, r in records if r.get("image")), None)
    if images is None:
        images = image_folder(path.parent, folders, first_image)
    items = []
    for _, record in records:
        image = record.get("image")
        metadata = {"category": record["category"]} if "category" in record else {}
        items.append(
            EvalItem(
                record["question_id"],
                images / image if image else None,
                str(record["text"]),
                str(record["text"]),
                metadata,
            )
        )
    return items


def read(
    name: str, data: Path, questions: Path | None = None, images: Path | None = None
) -> list[EvalItem]:
    """Reads benchmark ``name`` (a key of `LAYOUTS`) from its LLaVA-1.5 folder ``data``."""
    path = question_file(name, data, questions)
    return read_question_jsonl(path, images, LAYOUTS[name].image_folders)


def annotations(name: str, data: Path) -> Path | None:
    """The official annotation file / folder in ``data``, or None (e.g. VQAv2 test-dev)."""
    for pattern in LAYOUTS[name].annotations:
        matches = sorted(data.glob(pattern)) if "*" in pattern else [data / pattern]
        found = [m for m in matches if m.exists()]
        if found:
            return found[0]
    return None


def scorer_questions(name: str, data: Path, questions: Path | None = None) -> Path | None:
    """The question file, for the scorers that also read it (POPE, VizWiz)."""
    return question_file(name, data, questions) if LAYOUTS[name].scorer_needs_questions else None
