"""The tutorial's assumptions, in one place: its two input columns ``x1``, ``x2`` and two example
rows, the Predict page's row limits, the CSV of rows it reads, and how one number per row is read
from a regression's answer. Pure functions (no Streamlit), unit-tested."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd

DEFAULT_ROWS = ((1.0, 2.0), (5.0, 7.0))
"""The TF Serving tutorial's two input rows."""
FEATURES = ("x1", "x2")
MAX_INTERACTIVE_ROWS = 50_000
"""Rows the Predict page sends in one request; larger inputs go to batch scoring."""
BATCH_HINT = ("`python -m pipeline.batch --input rows.csv --output predictions.parquet` "
              "(Spark; the Batch page does the same).")


def parse_rows_csv(data: bytes) -> pd.DataFrame:
    """Input rows from an uploaded CSV: exactly two columns of numbers, an optional header.

    Returns a float DataFrame with columns ``x1``, ``x2``. ``ValueError`` with a sentence
    naming the line and column of the first problem (a cell that is not a number, a wrong
    number of columns, an empty file), so nothing half-parsed is ever sent.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("The file is not UTF-8 text: save it as CSV (comma-separated values).") from None
    try:
        raw = pd.read_csv(io.StringIO(text), header=None, dtype=str, skip_blank_lines=True,
                          keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ValueError("The file is empty: it needs rows of two numbers, e.g. `1.0,2.0`.") from None
    except pd.errors.ParserError as exc:
        raise ValueError(f"The file is not a well-formed CSV: {exc}") from None
    if raw.shape[1] != 2:
        raise ValueError(f"The file has {raw.shape[1]} column(s); it needs exactly 2 (x1, x2).")
    header = raw.iloc[0].tolist()
    has_header = all(pd.to_numeric(pd.Series(header), errors="coerce").isna())
    names = [str(h).strip() or f"column {i + 1}" for i, h in enumerate(header)] if has_header else FEATURES
    body = raw.iloc[1:] if has_header else raw
    if body.empty:
        raise ValueError("The file has a header but no rows of numbers.")
    if len(body) > MAX_INTERACTIVE_ROWS:
        raise ValueError(f"The file has {len(body):,} rows; this page sends up to {MAX_INTERACTIVE_ROWS:,}. "
                         f"Score large files in batch: {BATCH_HINT}")
    values = body.apply(lambda col: pd.to_numeric(col.str.strip(), errors="coerce")).to_numpy(dtype=float)
    if (bad := first_bad_cell(values)) is not None:
        row, col = bad
        line = row + 1 + int(has_header)
        raise ValueError(f"Line {line}, column {col + 1} ({names[col]}): {body.iat[row, col]!r} is not a "
                         "number. Fix the file and upload it again; nothing was sent.")
    return pd.DataFrame(values, columns=list(FEATURES))


def first_bad_cell(values: np.ndarray) -> tuple[int, int] | None:
    """(row, column) of the first cell that is not a finite number, scanning row by row, or
    ``None``; one vectorised pass, so 50,000 rows are checked in milliseconds."""
    bad = np.argwhere(~np.isfinite(values))
    return None if bad.size == 0 else (int(bad[0][0]), int(bad[0][1]))


def check_rows(rows: pd.DataFrame) -> np.ndarray:
    """The table's rows as a float array of shape ``(n, 2)``; ``ValueError`` naming the first
    empty or non-numeric cell (row numbers start at 1, as shown in the table; a half-filled new
    row is named, never dropped), an empty table, or more rows than the page sends.

    Vectorised (one ``to_numeric`` per column), so it costs milliseconds at 50,000 rows."""
    if rows.empty:
        raise ValueError("There are no input rows: add a row, random rows or upload a CSV.")
    if len(rows) > MAX_INTERACTIVE_ROWS:
        raise ValueError(f"{len(rows):,} rows is more than this page sends ({MAX_INTERACTIVE_ROWS:,}): "
                         f"remove rows, or score them in batch: {BATCH_HINT}")
    values = rows[list(FEATURES)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    if (bad := first_bad_cell(values)) is not None:
        row, col = bad
        raise ValueError(f"Row {row + 1}, column {FEATURES[col]} is empty or not a number: "
                         "fill it in or delete the row.")
    return values


def prediction_values(values: Any, rows: int) -> list[float]:
    """One number per input row from a predict answer's ``predictions``/``outputs``.

    Accepts what TF Serving returns for a one-output regression: ``[[3.0], [6.0]]``,
    ``[3.0, 6.0]``, per-row objects ``[{"output_0": [3.0]}, ...]`` or a columnar object
    ``{"output_0": [[3.0], [6.0]]}``; with several outputs, ``output_0`` is used.
    ``ValueError`` when the answer does not hold exactly one number per row.
    """
    def pick(obj: dict) -> Any:
        if len(obj) == 1:
            return next(iter(obj.values()))
        if "output_0" in obj:
            return obj["output_0"]
        raise ValueError(f"the answer has several outputs ({', '.join(sorted(obj))}) and no output_0")

    if isinstance(values, dict):
        values = pick(values)
    if not isinstance(values, list) or len(values) != rows:
        raise ValueError(f"expected {rows} predictions, got {values!r:.200}")
    result = []
    for item in values:
        while isinstance(item, dict | list):
            if isinstance(item, dict):
                item = pick(item)
            elif len(item) == 1:
                item = item[0]
            else:
                raise ValueError(f"expected one number per row, got {item!r:.100}")
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise ValueError(f"expected a number per row, got {item!r:.100}")
        result.append(float(item))
    return result
