"""The examples table: one row per example across every input of a signature, and back.

A signature whose inputs are all COLUMNS (numbers or booleans ``[-1]``/``[-1, k]``) or TEXT
(strings ``[-1]``/``[-1, 1]``) is edited as one table: ``count`` fills one column, ``features
[-1, 2]`` two (``features[0]``, ``features[1]``, or names the caller gives, such as the tutorial's
``x1``, ``x2``), ``city`` a text column. :func:`frame_inputs` turns the table back into the
request's inputs, checked column by column (vectorised: 50,000 rows in milliseconds) with every bad
cell counted and the first ones named; :func:`parse_csv` reads a CSV by its header (extra columns
such as ``y`` or ``id`` are left out and said so); :func:`random_frame` draws rows in a range.
Pure functions (pandas, numpy), no Streamlit.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.client.signatures import (
    FLOAT_DTYPES,
    INT_DTYPES,
    INT_RANGES,
    InputKind,
    Signature,
    TensorSpec,
    columns_of,
    dtype_text,
    example_value,
    input_kind,
)

MAX_INTERACTIVE_ROWS = 50_000
"""Rows the Predict page sends in one request; larger inputs go to batch scoring."""
BATCH_HINT = ("`python -m pipeline.batch --input rows.csv --output predictions.parquet` "
              "(Spark; the Batch page does the same).")
NAMED_PROBLEMS = 5
"""Bad cells named one by one in a message; the rest are counted."""


@dataclass(frozen=True)
class Column:
    """One table column: its name, the input it fills and where (``index`` in the row vector,
    ``None`` for the whole value of a ``[-1]`` input; ``wrap`` puts a ``[-1, 1]`` value in a list)."""

    name: str
    spec: TensorSpec
    index: int | None
    wrap: bool = False

    @property
    def kind(self) -> str:
        """"float", "int", "bool" or "text"."""
        if self.spec.dtype in FLOAT_DTYPES:
            return "float"
        if self.spec.dtype in INT_DTYPES:
            return "int"
        return "bool" if self.spec.dtype == "DT_BOOL" else "text"


@dataclass(frozen=True)
class TableLayout:
    """The columns of a signature's examples table, in input order."""

    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def inputs(self) -> list[str]:
        return list(dict.fromkeys(c.spec.key for c in self.columns))

    @property
    def numeric(self) -> list[str]:
        """The columns a range of random numbers can fill."""
        return [c.name for c in self.columns if c.kind in ("float", "int")]


def fits_table(signature: Signature) -> bool:
    """Whether every input of ``signature`` can be a table column (COLUMNS or TEXT)."""
    return bool(signature.inputs) and all(
        input_kind(s) in (InputKind.COLUMNS, InputKind.TEXT) for s in signature.inputs.values())


def table_layout(signature: Signature, names: Mapping[str, Sequence[str]] | None = None) -> TableLayout:
    """The table for ``signature`` (which :func:`fits_table`); ``names`` renames an input's
    columns (``{"inputs": ["x1", "x2"]}``)."""
    columns = []
    for key, spec in signature.inputs.items():
        default = columns_of(spec)
        chosen = list((names or {}).get(key, default))
        if len(chosen) != len(default):
            chosen = default
        row = spec.row_shape or ()
        if row in ((), (1,)):
            columns.append(Column(chosen[0], spec, None, wrap=row == (1,)))
        else:
            columns += [Column(name, spec, i) for i, name in enumerate(chosen)]
    return TableLayout(tuple(columns))


def _cell(column: Column, value: Any) -> Any:
    if column.index is not None:
        return value[column.index]
    return value[0] if column.wrap and isinstance(value, list) else value


def frame_of(layout: TableLayout, inputs: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    """The table holding ``inputs`` (a list of examples per input, as :func:`frame_inputs` gives);
    typed columns: float, nullable Int64, boolean, text."""
    data = {}
    for column in layout.columns:
        values = [_cell(column, v) for v in inputs[column.spec.key]]
        data[column.name] = _typed(column, pd.Series(values, dtype=object))
    return pd.DataFrame(data)


def _typed(column: Column, series: pd.Series) -> pd.Series:
    """``series`` (numbers, booleans or their text) as the column's dtype."""
    if column.kind == "float":
        return pd.to_numeric(series, errors="coerce").astype(float)
    if column.kind == "int":
        return pd.to_numeric(series, errors="coerce").astype("Int64")
    if column.kind == "bool":
        return series.map(lambda v: v if isinstance(v, bool | np.bool_)
                          else str(v).strip().lower() in ("true", "1")).astype("boolean")
    return series.astype(object).where(series.notna(), "").astype(str)


def example_frame(layout: TableLayout, rows: int = 1) -> pd.DataFrame:
    """A valid table of ``rows`` examples built from the signature alone (zeros, false, "example")."""
    return frame_of(layout, {k: [example_value(c.spec) for _ in range(rows)]
                             for k, c in {c.spec.key: c for c in layout.columns}.items()})


def _problems(bad: dict[str, np.ndarray], frame: pd.DataFrame, what: dict[str, str], first_line: int,
              unit: str) -> str | None:
    """One sentence naming the first bad cells (with their text; numbers from ``first_line``) and
    how many there are, or ``None``."""
    cells = sorted((int(row), name) for name, rows in bad.items() for row in rows)
    if not cells:
        return None

    def one(row: int, name: str) -> str:
        value = frame[name].iat[row]
        shown = "empty" if value is None or (isinstance(value, float) and np.isnan(value)) or str(
            value).strip() in ("", "<NA>", "nan") else f"{str(value).strip()!r:.40} is not {what[name]}"
        return f"{unit} {row + first_line}, column {name}: {shown}"

    named = "; ".join(one(row, name) for row, name in cells[:NAMED_PROBLEMS])
    more = f"; and {len(cells) - NAMED_PROBLEMS:,} more" if len(cells) > NAMED_PROBLEMS else ""
    count = f"{len(cells):,} cell{'s' if len(cells) != 1 else ''} cannot be sent"
    return f"{named}{more} ({count})."


def _column_values(column: Column, series: pd.Series) -> tuple[np.ndarray, np.ndarray, str]:
    """(values, bad row indices, what a good cell is) for one column, vectorised."""
    if column.kind in ("float", "int"):
        if series.dtype == object:
            series = series.map(lambda v: v.strip() if isinstance(v, str) else v)
        numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        bad = ~np.isfinite(numbers)
        if column.kind == "int":
            low, high = INT_RANGES[column.spec.dtype]
            with np.errstate(invalid="ignore"):
                bad |= (numbers != np.round(numbers)) | (numbers < low) | (numbers > high)
            return numbers, np.flatnonzero(bad), f"a whole {dtype_text(column.spec.dtype)} number"
        return numbers, np.flatnonzero(bad), "a number"
    if column.kind == "bool":
        is_bool = series.map(lambda v: isinstance(v, bool | np.bool_)).to_numpy(dtype=bool)
        text = series.astype(str).str.strip().str.lower()
        known = is_bool | text.isin(["true", "false", "1", "0"]).to_numpy()
        values = np.where(is_bool, series.to_numpy(dtype=object) == True, text.isin(["true", "1"]))  # noqa: E712
        return values.astype(bool), np.flatnonzero(~known), "true or false"
    values = series.astype(object).where(series.notna(), "").astype(str).to_numpy(dtype=object)
    return values, np.array([], dtype=int), "text"


def frame_inputs(layout: TableLayout, frame: pd.DataFrame, first_line: int = 1,
                 unit: str = "Row") -> dict[str, Any]:
    """The request's inputs from the table: per input its examples (numbers and booleans as one
    numpy array, ``(n,)`` for a ``[-1]`` input, ``(n, k)`` for ``[-1, k]``; texts as a list).
    ``ValueError`` naming the first bad cells (``unit`` and numbers from ``first_line``, as the
    table or file shows them) and how many there are, an empty table, or more than
    :data:`MAX_INTERACTIVE_ROWS` rows. Vectorised: 50,000 rows are checked in milliseconds."""
    if frame.empty:
        raise ValueError("There are no examples: add a row, random rows or upload a CSV.")
    if len(frame) > MAX_INTERACTIVE_ROWS:
        raise ValueError(f"{len(frame):,} rows is more than this page sends ({MAX_INTERACTIVE_ROWS:,}): "
                         f"remove rows, or score them in batch: {BATCH_HINT}")
    missing = [n for n in layout.names if n not in frame.columns]
    if missing:
        raise ValueError(f"The table has no column {', '.join(missing)}.")
    values, bad, what = {}, {}, {}
    for column in layout.columns:
        values[column.name], bad[column.name], what[column.name] = _column_values(column, frame[column.name])
    if (problem := _problems(bad, frame, what, first_line, unit)) is not None:
        raise ValueError(problem + " Fix or delete those rows; nothing was sent.")
    inputs: dict[str, Any] = {}
    for key in layout.inputs:
        columns = [c for c in layout.columns if c.spec.key == key]
        first = columns[0]
        if first.kind == "text":
            texts = values[first.name].tolist()
            inputs[key] = [[t] for t in texts] if first.wrap else texts
            continue
        dtype = {"float": np.float64, "int": np.int64, "bool": np.bool_}[first.kind]
        stacked = np.column_stack([values[c.name] for c in columns]).astype(dtype)
        inputs[key] = stacked if (first.index is not None or first.wrap) else stacked[:, 0]
    return inputs


def as_lists(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """``inputs`` with numpy arrays as (JSON-ready) nested lists."""
    return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in inputs.items()}


def parse_csv(data: bytes, layout: TableLayout) -> tuple[pd.DataFrame, list[str]]:
    """The table from an uploaded CSV, and notes for the user. With a header, columns are matched
    by name (in any order; columns the signature does not take, such as ``y`` or ``id``, are left
    out and named in a note); without one, the file needs exactly the table's columns in order.
    ``ValueError`` naming every bad cell's line (first ones) and their count, a missing column, an
    empty file or more rows than the page sends; nothing half-read is returned."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("The file is not UTF-8 text: save it as CSV (comma-separated values).") from None
    try:
        raw = pd.read_csv(io.StringIO(text), header=None, dtype=str, skip_blank_lines=True,
                          keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ValueError(f"The file is empty: it needs rows with columns {', '.join(layout.names)}.") \
            from None
    except pd.errors.ParserError as exc:
        raise ValueError(f"The file is not a well-formed CSV: {exc}") from None
    header = [str(h).strip() for h in raw.iloc[0].tolist()]
    named = [h for h in header if h in layout.names]
    all_numeric = len(layout.numeric) == len(layout.names)
    no_number = pd.to_numeric(pd.Series(header), errors="coerce").isna().all()
    has_header = bool(named) or (all_numeric and no_number)
    notes: list[str] = []
    if has_header and not named and len(header) == len(layout.names):
        body = raw.iloc[1:].copy()
        body.columns = layout.names  # a header of other names, in the table's order
        notes.append(f"The header ({', '.join(header)}) was read as {', '.join(layout.names)}, in order.")
    elif has_header:
        body = raw.iloc[1:].copy()
        body.columns = header
        if missing := [n for n in layout.names if n not in header]:
            raise ValueError(f"The file's header ({', '.join(header)}) has no column {', '.join(missing)}; "
                             f"this signature takes {', '.join(layout.names)}.")
        if extra := [h for h in header if h not in layout.names]:
            notes.append(f"Column{'s' if len(extra) > 1 else ''} {', '.join(extra)} left out: the model does "
                         "not take them.")
    else:
        if raw.shape[1] != len(layout.names):
            raise ValueError(f"The file has {raw.shape[1]} column(s) and no header; it needs exactly "
                             f"{len(layout.names)} ({', '.join(layout.names)}), or a header naming them "
                             "(other columns such as y or id are then left out).")
        body = raw.copy()
        body.columns = layout.names
    if body.empty:
        raise ValueError("The file has a header but no rows.")
    if len(body) > MAX_INTERACTIVE_ROWS:
        raise ValueError(f"The file has {len(body):,} rows; this page sends up to {MAX_INTERACTIVE_ROWS:,}. "
                         f"Score large files in batch: {BATCH_HINT}")
    body = body.loc[:, ~body.columns.duplicated()][layout.names].reset_index(drop=True)
    frame_inputs(layout, body, first_line=1 + int(has_header), unit="Line")  # names every bad cell
    return pd.DataFrame({c.name: _typed(c, body[c.name]) for c in layout.columns}), notes


def random_frame(layout: TableLayout, count: int, low: float, high: float,
                 rng: np.random.Generator | None = None, texts: Sequence[str] = ()) -> pd.DataFrame:
    """``count`` rows: numbers uniform in ``[low, high]`` (rounded to 3 decimals; whole numbers for
    integer columns, clipped to their dtype), booleans at random, texts drawn from ``texts`` (the
    table's own, else "example")."""
    rng = rng or np.random.default_rng()
    data = {}
    for column in layout.columns:
        if column.kind == "float":
            data[column.name] = np.round(rng.uniform(low, high, size=count), 3)
        elif column.kind == "int":
            lo, hi = INT_RANGES[column.spec.dtype]
            a, b = max(int(np.ceil(low)), lo), min(int(np.floor(high)), hi)
            data[column.name] = pd.array(rng.integers(a, max(a, b) + 1, size=count), dtype="Int64")
        elif column.kind == "bool":
            data[column.name] = pd.array(rng.random(count) < 0.5, dtype="boolean")
        else:
            pool = [t for t in texts if t] or ["example"]
            data[column.name] = [pool[i] for i in rng.integers(0, len(pool), size=count)]
    return pd.DataFrame(data)
