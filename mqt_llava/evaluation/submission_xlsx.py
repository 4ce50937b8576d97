"""The MMBench submission workbook, cell for cell as LLaVA-1.5's
``convert_mmbench_for_submission.py`` writes it with pandas.

The original reads the TSV with ``pd.read_table``, drops the columns hint, category, source,
image, comment and l2-category, inserts an empty ``prediction`` column at position 6, fills it
row by row (``df["index"] == question_id``; a repeated id keeps its last answer) and writes
``to_excel(index=False, engine="openpyxl")``. pandas is a large dependency for one table, so this
module reads the TSV with the csv module and types each column as pandas' parser does (integer,
float or boolean when every non-missing value parses as one, text otherwise; pandas' default
missing-value strings become empty cells), then writes the sheet with openpyxl, the engine pandas
uses: sheet "Sheet1", a plain header row, data from row 2. Checked against the original script
run with pandas 3.1.1 + openpyxl 3.1.5: the same cells, types and styles (older pandas versions
styled the header row bold and bordered; the cells were the same).
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path
from typing import Any

from mqt_llava.evaluation.scorers._io import format_error
from mqt_llava.evaluation.scorers.mmbench import _PANDAS_NA

DROPPED = ("hint", "category", "source", "image", "comment", "l2-category")
PREDICTION_POSITION = 6
_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?inf(inity)?", re.IGNORECASE)
_BOOL = {"True": True, "TRUE": True, "true": True, "False": False, "FALSE": False, "false": False}


def _typed_column(values: list[str]) -> list[Any]:
    """One column as pandas' default parser types it; None marks a missing value (NaN)."""
    present = [v for v in values if v not in _PANDAS_NA]
    if present and all(_INT.fullmatch(v) for v in present):
        if len(present) == len(values):
            return [int(v) for v in values]
        return [float(v) if v not in _PANDAS_NA else None for v in values]  # int + NaN → float64
    if present and all(_FLOAT.fullmatch(v) for v in present):
        return [float(v) if v not in _PANDAS_NA else None for v in values]
    if present and all(v in _BOOL for v in present) and len(present) == len(values):
        return [_BOOL[v] for v in values]
    return [v if v not in _PANDAS_NA else None for v in values]


def read_tsv_like_pandas(path: Path) -> tuple[list[str], list[list[Any]]]:
    """The TSV's header and its rows of typed cells (see `_typed_column`).

    Raises:
        AnnotationFormatError: A row has another number of cells than the header.
    """
    csv.field_size_limit(sys.maxsize)  # whole base64 images in one cell
    with open(path, encoding="utf-8", newline="") as file:
        rows = list(csv.reader(file, delimiter="\t"))
    if not rows:
        raise format_error(path, "empty file; expected the MMBench TSV with a header row")
    header, body = rows[0], rows[1:]
    for lineno, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise format_error(path, f"{len(row)} cells, the header has {len(header)}", lineno)
    columns = [_typed_column([row[c] for row in body]) for c in range(len(header))]
    return header, [list(cells) for cells in zip(*columns, strict=True)] if body else []


def write_mmbench_xlsx(tsv: Path, answers: list[dict[str, Any]], out: Path) -> tuple[int, int]:
    """Writes the submission workbook.

    Args:
        tsv: The MMBench TSV the answers were asked from.
        answers: The answer records (``question_id`` = the row's ``index``, ``text``).
        out: The ``.xlsx`` to write.

    Returns:
        (rows written, rows without a prediction).

    Raises:
        AnnotationFormatError: The TSV lacks ``index`` or a column the original drops.
        ValueError: openpyxl is not installed.
    """
    try:
        from openpyxl import Workbook
    except ImportError:
        raise ValueError(
            "the MMBench .xlsx needs openpyxl: pip install 'mqt-llava[eval]'"
        ) from None
    header, rows = read_tsv_like_pandas(tsv)
    missing = [c for c in ("index", *DROPPED) if c not in header]
    if missing:
        raise format_error(tsv, f"expected the MMBench TSV's columns; missing {missing}")
    keep = [i for i, name in enumerate(header) if name not in DROPPED]
    columns = [header[i] for i in keep]
    table = [[row[i] for i in keep] for row in rows]
    columns.insert(PREDICTION_POSITION, "prediction")
    for row in table:
        row.insert(PREDICTION_POSITION, None)
    index = columns.index("index")
    for answer in answers:  # cur_df.loc[df["index"] == question_id, "prediction"] = text
        for row in table:
            if row[index] == answer["question_id"]:
                row[PREDICTION_POSITION] = answer["text"]

    book = Workbook()
    book.remove(book.worksheets[0])  # pandas' OpenpyxlWriter starts from an empty workbook
    sheet = book.create_sheet("Sheet1")
    for c, name in enumerate(columns, start=1):
        sheet.cell(row=1, column=c, value=name)
    for r, row in enumerate(table, start=2):
        for c, value in enumerate(row, start=1):
            # pandas writes a missing value as its na_rep, "" (an empty cell once saved).
            sheet.cell(row=r, column=c, value="" if value is None else value)
    book.save(out)
    return len(table), sum(row[PREDICTION_POSITION] is None for row in table)
