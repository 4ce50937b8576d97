"""LLaVA-format training data: record files read into a lazily tokenizing dataset.

Files are a JSON list (`.json`) or one record per line (`.jsonl`); how one record becomes token
ids and labels in the release's templates is :mod:`mqt_llava.data.conversation`. Bad records
(and unreadable `.jsonl` lines) are skipped or refused by the `bad_records` policy, naming the
record.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch.utils.data import Dataset

from .conversation import (
    IMAGE_TOKEN,
    TEMPLATES,
    BadRecordError,
    image_paths,
    record_turns,
    tokenize_record,
)

BAD_RECORD_POLICIES = ("skip", "fail")
# A lazily found bad record is replaced by the next loadable one, at most this many tries away.
MAX_SUBSTITUTES = 16

logger = logging.getLogger(__name__)


class BadLine:
    """A `.jsonl` line that is not a JSON object; kept so that `bad_records` decides its fate."""

    def __init__(self, path: Path, line: int, reason: str):
        self.path, self.line, self.reason = path, line, reason

    def __repr__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


def load_records(path: str | Path, keep_bad_lines: bool = False) -> list[dict]:
    """Reads a LLaVA JSON list (`.json`) or one record per line (`.jsonl`).

    Args:
        path: The file.
        keep_bad_lines: For `.jsonl`: return a [`BadLine`] in place of each line that is not a
            JSON object (for [`LlavaJsonDataset`] to skip or refuse) instead of raising.

    Raises:
        FileNotFoundError: No such file.
        ValueError: Invalid JSON (for `.jsonl`, naming the file's line), or not a list of objects.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Training data file not found: {path}")
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    if path.suffix == ".jsonl":
        records = []
        for number, line in enumerate(text.split("\n"), start=1):  # the file's own numbering
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError(f"a JSON {type(record).__name__}, not an object")
                line.encode("utf-8")  # undecodable bytes came back as lone surrogates
            except (ValueError, RecursionError) as err:
                reason = f"not a JSON object ({str(err)[:200]})"
                if not keep_bad_lines:
                    raise ValueError(f"{path}, line {number}: {reason}.") from err
                record = BadLine(path, number, reason)
            records.append(record)
        return records
    try:
        records = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}).") from err
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ValueError(f"{path} must hold a JSON list of records (objects).")
    return records


class LlavaJsonDataset(Dataset):
    """LLaVA-JSON records, tokenized lazily, images loaded and preprocessed lazily.

    Structure is checked for every record when the dataset is built (cheap: no tokenizing, no
    image I/O); image files are opened in `__getitem__`. A bad record is handled by `bad_records`:
    `"fail"` raises `BadRecordError` naming the record id, `"skip"` counts it (and logs it) and,
    when it is found lazily, returns the next loadable record instead, with `num_skipped` set on
    the item so the count reaches the trainer even from dataloader workers.

    Args:
        records: The records, or a path to a `.json` / `.jsonl` file.
        processor: An [`MQTLlavaProcessor`].
        template: `"plain"` (stage 1) or `"llava_v1"` (stage 2).
        image_folder: Folder image paths are relative to.
        max_length: See [`tokenize_record`].
        max_visual_tokens: M.
        bad_records: `"skip"` or `"fail"`.
    """

    def __init__(
        self,
        records: str | Path | Sequence[dict],
        processor: Any,
        template: Literal["plain", "llava_v1"] = "llava_v1",
        image_folder: str | Path | None = None,
        max_length: int | None = 2048,
        max_visual_tokens: int | None = None,
        bad_records: Literal["skip", "fail"] = "skip",
    ):
        if template not in TEMPLATES:
            raise ValueError(f"Unknown template {template!r}; accepted: {', '.join(TEMPLATES)}.")
        if bad_records not in BAD_RECORD_POLICIES:
            raise ValueError(f"bad_records must be 'skip' or 'fail', got {bad_records!r}.")
        if not isinstance(records, (list, tuple)):
            records = load_records(records, keep_bad_lines=True)
        self.processor = processor
        self.template = template
        self.image_folder = Path(image_folder) if image_folder is not None else None
        self.max_length = max_length
        self.max_visual_tokens = max_visual_tokens or processor.num_queries
        self.bad_records = bad_records
        self.records: list[dict] = []
        # record id -> reason; a record without an id is keyed by its position ("#12") so that
        # every skipped record is counted.
        self.skipped_at_load: dict[str, str] = {}
        for position, record in enumerate(records):
            reason = self._structure_problem(record)
            if reason is None:
                self.records.append(record)
            else:
                self._bad(record, reason, position)
        if not self.records:
            raise ValueError(
                f"No usable record among {len(records)} (first problems: "
                f"{dict(list(self.skipped_at_load.items())[:3])})."
            )
        if self.skipped_at_load:
            logger.warning(
                "Skipped %d bad record(s) of %d at load time (bad_records='skip'), e.g. %s",
                len(self.skipped_at_load),
                len(records),
                dict(list(self.skipped_at_load.items())[:3]),
            )

    def _structure_problem(self, record: dict) -> str | None:
        if isinstance(record, BadLine):
            return record.reason
        if not isinstance(record, dict):
            return f"a record must be a JSON object, got {type(record).__name__}"
        try:
            turns = record_turns(record)
            images = image_paths(record, self.image_folder)
            n = sum(text.count(IMAGE_TOKEN) for _, text in turns)
            if n != len(images):
                return f"{len(images)} image(s) but {n} {IMAGE_TOKEN} in the conversation"
            if self.template == "plain" and (len(turns) != 2 or len(images) != 1):
                return "the plain template needs one image and one caption"
        except BadRecordError as err:
            return str(err)
        return None

    def _bad(self, record: dict, reason: str, position: int) -> None:
        if isinstance(record, BadLine):
            record_id = f"{record.path.name}:{record.line}"
        elif isinstance(record, dict) and "id" in record:
            record_id = str(record["id"])
        else:
            record_id = f"#{position}"
        if self.bad_records == "fail":
            where = f"line {record.line} of {record.path}" if isinstance(record, BadLine) else ""
            raise BadRecordError(f"Bad training record {where or 'id=' + record_id}: {reason}.")
        while record_id in self.skipped_at_load:  # duplicate ids are separate records
            record_id += "'"
        self.skipped_at_load[record_id] = reason

    def __len__(self) -> int:
        return len(self.records)

    @property
    def modality_lengths(self) -> list[int]:
        """Word counts, positive for records with images, negative for text-only (as released)."""
        lengths = []
        for record in self.records:
            words = sum(len(turn["value"].split()) for turn in record["conversations"])
            lengths.append(words if record.get("image") is not None else -words)
        return lengths

    def load(self, index: int) -> dict[str, Any]:
        """Tokenizes record `index` and loads its images; raises `BadRecordError` if it can't."""
        record = self.records[index]
        sample = tokenize_record(
            record,
            self.processor,
            self.template,
            self.image_folder,
            self.max_length,
            self.max_visual_tokens,
        )
        item: dict[str, Any] = {
            "input_ids": torch.tensor(sample.input_ids, dtype=torch.long),
            "labels": torch.tensor(sample.labels, dtype=torch.long),
            "id": sample.record_id,
        }
        if sample.images:
            try:
                item["pixel_values"] = self.processor.preprocess_images(sample.images)
            except (FileNotFoundError, ValueError) as err:  # InvalidImageError is a ValueError
                raise BadRecordError(f"image not loadable: {err}") from err
        return item

    def __getitem__(self, index: int) -> dict[str, Any]:
        skipped = 0
        for offset in range(MAX_SUBSTITUTES + 1):
            position = (index + offset) % len(self.records)
            try:
                item = self.load(position)
            except BadRecordError as err:
                record_id = self.records[position].get("id", "?")
                if self.bad_records == "fail":
                    raise BadRecordError(f"Bad training record id={record_id}: {err}") from err
                logger.warning("Skipping bad record id=%s: %s", record_id, err)
                skipped += 1
                continue
            item["num_skipped"] = skipped
            return item
        raise BadRecordError(
            f"{MAX_SUBSTITUTES + 1} consecutive bad records from index {index}: check the data "
            "(image_folder, file permissions)."
        )
