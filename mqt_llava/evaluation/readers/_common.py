"""What every benchmark reader produces, and the small file helpers they share.

A reader turns a benchmark folder, laid out as LLaVA-1.5's evaluation scripts expect it
(``playground/data/eval/<benchmark>``), into a list of `EvalItem` s: one question each, with its
image and the exact text the release puts in the user turn. Readers never open images (that is
the runner's job) and import no model code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SHORT_ANSWER = "Answer the question using a single word or phrase."
OPTION_LETTER = "Answer with the option's letter from the given choices directly."


@dataclass(frozen=True)
class EvalItem:
    """One question of a benchmark, ready to be asked.

    Attributes:
        question_id: The id the official files use (int or str, kept as is for the answer file).
        image: The image file, raw image bytes (MMBench's base64 cells, decoded), or None for a
            text-only question (some ScienceQA problems).
        question: The user turn's text without the image placeholder, e.g.
            ``"What sport is this?\\nAnswer the question using a single word or phrase."``; the
            chat template puts ``<image>\\n`` before it, as the release does.
        prompt: The answer file's ``prompt`` field, as the release's script writes it (the
            scorers of MME and TextVQA read the question back from it).
        metadata: Small facts copied into the answer's ``metadata`` (category, question type).
        answer_fields: Extra top-level answer fields of the release's format (MMBench's
            ``round_id``, ``options``, ``option_char``).
    """

    question_id: int | str
    image: Path | bytes | None
    question: str
    prompt: str
    metadata: dict[str, Any] = field(default_factory=dict)
    answer_fields: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        """Identifies the item among the answers: MME's two questions about one image share a
        question id, so the prompt is part of the key."""
        return str(self.question_id), self.prompt


def find_file(data: Path, names: Sequence[str], what: str, flag: str = "--questions") -> Path:
    """The first of ``names`` (file names or glob patterns) that exists under ``data``.

    Raises:
        FileNotFoundError: None exists; the message lists what was looked for.
    """
    for name in names:
        matches = sorted(data.glob(name)) if any(c in name for c in "*?[") else [data / name]
        for path in matches:
            if path.is_file():
                return path
    raise FileNotFoundError(
        f"{data}: no {what} found (looked for {', '.join(names)}); pass it with {flag} FILE"
    )


def image_folder(data: Path, candidates: Sequence[str], probe: str | None) -> Path:
    """The folder under ``data`` holding the benchmark's images.

    Args:
        data: The benchmark folder.
        candidates: Sub-folders to try, in order ("." for ``data`` itself).
        probe: One image's relative path, used to tell which candidate holds the images; with
            None (no image at all) the first existing candidate is used.

    Raises:
        FileNotFoundError: No candidate holds ``probe``; the message lists the folders tried.
    """
    folders = [data / c for c in candidates]
    for folder in folders:
        if probe is None and folder.is_dir():
            return folder
        if probe is not None and (folder / probe).is_file():
            return folder
    if probe is None:
        return data
    tried = ", ".join(str(f) for f in folders)
    raise FileNotFoundError(
        f"image {probe!r} is in none of: {tried}; pass the image folder with --image-folder DIR"
    )
