"""The Predict page's input editors, chosen from the signature: one row per example across every
input (a table with CSV upload and random rows; a file of lines for a text model), pictures for an
image input (with the table beside them when the signature has other inputs too: picture i and
table row i are example i), typed fields for inputs without a batch dimension, and a JSON editor
for anything else (always available). Each editor starts from the page's prefilled example, so Send works at
once, and returns an :class:`Edited` request, checked against dtype and shape before sending.
Classify/regress signatures use :mod:`dashboard.example_editor` instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import input_table, picture_editor, tutorial
from pipeline.client.signatures import (
    InputKind,
    Signature,
    TensorSpec,
    check_inputs,
    check_value,
    example_inputs,
    input_kind,
    inputs_of_body,
    rest_body,
)

ROWS_KEY, EDITOR_KEY, CSV_KEY = "predict_rows", "predict_editor", "predict_csv"
CSV_LOADED_KEY, LINES_KEY = "predict_csv_loaded", "predict_lines"
JSON_MODE_KEY, JSON_TEXT_KEY = "predict_json_mode", "predict_json"
RANDOM_LOW_KEY, RANDOM_HIGH_KEY = "predict_random_low", "predict_random_high"
LAST_KEY = "predict_last_body"
"""The body of the editor's last valid inputs: the JSON editor starts from it when switched on."""
MAX_RANDOM_ROWS = 10_000
JSON_PREFILL_ROWS = 200
"""The JSON editor starts from at most this many of the table's rows (a text box is no place for more)."""


@dataclass
class Edited:
    """What the editor holds: the request's inputs (predict) or examples (classify/regress), how
    many examples, and why it cannot be sent (``problem``)."""

    inputs: dict[str, Any] | None = None
    examples: list[dict[str, Any]] | None = None
    context: dict[str, Any] | None = None
    """Features every example shares (classify/regress ``context``)."""
    rows: int = 0
    problem: str | None = None
    columnar_only: bool = False
    """Inputs without a batch dimension: only the columnar format (``inputs``) can carry them."""
    frame: pd.DataFrame | None = None
    """The examples table, when the inputs are edited as one (charts plot outputs against its columns)."""
    layout: input_table.TableLayout | None = None
    editor: str = "table"
    notes: list[str] = field(default_factory=list)


def editor_kind(signature: Signature) -> str:
    """"table", "image", "mixed" (one image input, the others table columns), "fields" or "json":
    the editor that fits every input of ``signature``."""
    kinds = [input_kind(s) for s in signature.inputs.values()]
    if kinds and all(k in (InputKind.COLUMNS, InputKind.TEXT) for k in kinds):
        return "table"
    if kinds == [InputKind.IMAGE]:
        return "image"
    if kinds.count(InputKind.IMAGE) == 1 and all(k in (InputKind.COLUMNS, InputKind.TEXT, InputKind.IMAGE)
                                                  for k in kinds):
        return "mixed"
    if kinds and all(k == InputKind.FIELDS for k in kinds):
        return "fields"
    return "json"


def image_key(signature: Signature) -> str:
    """The image input of an "image" or "mixed" signature."""
    return next(k for k, s in signature.inputs.items() if input_kind(s) == InputKind.IMAGE)


def table_part(signature: Signature) -> Signature:
    """``signature`` without its image input: the inputs a "mixed" editor's table holds."""
    return replace(signature, inputs={k: s for k, s in signature.inputs.items()
                                      if input_kind(s) != InputKind.IMAGE})


def column_names(signature: Signature, tutorial_model: bool) -> dict[str, list[str]]:
    """The tutorial's model names its two columns x1 and x2; other models use the input keys."""
    return {next(iter(signature.inputs)): list(tutorial.FEATURES)} if tutorial_model else {}


def reset(prefill: dict[str, Any], signature: Signature, tutorial_model: bool,
          keep_table: bool = False) -> None:
    """Put the prefilled inputs into every editor's state (a new model, signature or link);
    ``keep_table`` keeps a table the session already holds for these columns (its first look at
    the page: what it holds was put there for this page)."""
    kind = editor_kind(signature)
    layout = (input_table.table_layout(signature, column_names(signature, tutorial_model)) if kind == "table"
              else input_table.table_layout(table_part(signature)) if kind == "mixed" else None)
    held = st.session_state.get(ROWS_KEY)
    fits = held is None or (isinstance(held, pd.DataFrame) and list(held.columns) == (layout.names if layout
                                                                                      else []))
    keep = keep_table and layout is not None and fits
    for key in (CSV_KEY, CSV_LOADED_KEY, LINES_KEY, JSON_TEXT_KEY, *(() if keep else (EDITOR_KEY,))):
        st.session_state.pop(key, None)
    for key in [k for k in st.session_state if str(k).startswith("predict_field::")]:
        del st.session_state[key]
    if layout is not None and not (keep and held is not None):
        st.session_state[ROWS_KEY] = input_table.frame_of(layout, prefill)
    picture_editor.start_from(prefill[image_key(signature)] if kind in ("image", "mixed") else None)
    if kind == "fields":
        for key, value in prefill.items():
            for index, item in enumerate(np.ravel(np.asarray(value, dtype=object)).tolist()):
                st.session_state[f"predict_field::{key}::{index}"] = item
    st.session_state[JSON_TEXT_KEY] = json.dumps(rest_body(_head(prefill, JSON_PREFILL_ROWS, signature),
                                                           "columnar" if kind == "fields" else "row"))
    st.session_state[JSON_MODE_KEY] = kind == "json"


def _head(inputs: dict[str, Any], rows: int, signature: Signature) -> dict[str, Any]:
    return {k: (list(v[:rows]) if signature.inputs[k].batched and isinstance(v, list | np.ndarray) else v)
            for k, v in input_table.as_lists(inputs).items()}


def set_table(frame: pd.DataFrame) -> None:
    """Replace the examples table (dropping pending edits, which belong to the old table)."""
    st.session_state[ROWS_KEY] = frame.reset_index(drop=True)
    st.session_state.pop(EDITOR_KEY, None)


def _column_config(layout: input_table.TableLayout) -> dict[str, Any]:
    config = {}
    for column in layout.columns:
        if column.kind == "float":
            config[column.name] = st.column_config.NumberColumn(format="%.4g")
        elif column.kind == "int":
            config[column.name] = st.column_config.NumberColumn(format="%d", step=1)
        elif column.kind == "bool":
            config[column.name] = st.column_config.CheckboxColumn()
        else:
            config[column.name] = st.column_config.TextColumn()
    return config


def _csv_upload(layout: input_table.TableLayout) -> str | None:
    upload = st.file_uploader(
        f"Examples from a CSV file (columns {', '.join(layout.names)}; a header lets other columns such as "
        f"y or id be left out; up to {input_table.MAX_INTERACTIVE_ROWS:,} rows)", type=["csv"], key=CSV_KEY)
    if upload is None:
        return None
    try:
        parsed, notes = input_table.parse_csv(upload.getvalue(), layout)
    except ValueError as exc:
        st.error(str(exc), icon=":material/table_view:")
        return str(exc)
    for note in notes:
        st.caption(note)
    if st.session_state.get(CSV_LOADED_KEY) != upload.file_id:
        set_table(parsed)
        st.session_state[CSV_LOADED_KEY] = upload.file_id
    return None


def _lines_upload(layout: input_table.TableLayout) -> None:
    """A text model: one example per line of a text file."""
    upload = st.file_uploader("Texts from a file (one example per line)", type=["txt"], key=LINES_KEY)
    if upload is not None and st.session_state.get(CSV_LOADED_KEY) != upload.file_id:
        lines = [line for line in upload.getvalue().decode("utf-8", "replace").splitlines() if line.strip()]
        set_table(pd.DataFrame({layout.names[0]: lines[:input_table.MAX_INTERACTIVE_ROWS]}))
        st.session_state[CSV_LOADED_KEY] = upload.file_id


def table_editor(signature: Signature, prefill: dict[str, Any], tutorial_model: bool,
                 random_range: tuple[float, float]) -> Edited:
    """One row per example across every input: CSV (or lines) upload, the table, random rows."""
    layout = input_table.table_layout(signature, column_names(signature, tutorial_model))
    if ROWS_KEY not in st.session_state:
        st.session_state[ROWS_KEY] = input_table.frame_of(layout, prefill)
    st.caption(f"Up to {input_table.MAX_INTERACTIVE_ROWS:,} rows per request here; charts show a sample of "
               f"2,000 points. For larger files use batch scoring: {input_table.BATCH_HINT}")
    problem = _csv_upload(layout)
    if [c.kind for c in layout.columns] == ["text"]:
        _lines_upload(layout)
    # Not `required`: the browser would drop a half-filled new row silently; frame_inputs names it.
    edited = st.data_editor(st.session_state[ROWS_KEY], num_rows="dynamic", hide_index=True, key=EDITOR_KEY,
                            column_config=_column_config(layout))
    st.caption(f"{len(edited):,} row{'s' if len(edited) != 1 else ''} in the table")
    count_col, low_col, high_col, add_col, reset_col = st.columns([2, 1, 1, 2, 2],
                                                                  vertical_alignment="bottom")
    count = count_col.number_input("Random rows", min_value=1, max_value=MAX_RANDOM_ROWS, value=5,
                                   key="predict_random_count")
    low = low_col.number_input("from", value=float(random_range[0]), key=RANDOM_LOW_KEY,
                               disabled=not layout.numeric)
    high = high_col.number_input("to", value=float(random_range[1]), key=RANDOM_HIGH_KEY,
                                 disabled=not layout.numeric)
    if add_col.button(f"Add {int(count):,} random rows", key="predict_add_random", icon=":material/casino:"):
        texts = [t for c in layout.columns if c.kind == "text" for t in edited[c.name].astype(str).tolist()]
        extra = input_table.random_frame(layout, int(count), min(low, high), max(low, high), texts=texts)
        set_table(pd.concat([edited, extra], ignore_index=True))
        st.rerun()
    reset_label = "Reset to the tutorial's rows" if tutorial_model else "Reset to the example"
    if reset_col.button(reset_label, key="predict_reset", icon=":material/undo:"):
        set_table(input_table.frame_of(layout, prefill))
        picture_editor.forget_uploads()  # a mixed signature's pictures go back to the example's with its rows
        st.session_state["predict_dropped_answers"] = True
        st.rerun()
    result = Edited(frame=edited, layout=layout, problem=problem)
    try:
        result.inputs = input_table.frame_inputs(layout, edited)
        result.rows = len(edited)
    except ValueError as exc:
        result.problem = result.problem or str(exc)
        st.error(str(exc), icon=":material/table_view:")
    return result


def image_editor(signature: Signature) -> Edited:
    """Pictures for a ``[-1, H, W, C]`` input: resized, scaled to the chosen range, previewed."""
    (key, spec), = signature.inputs.items()
    pictures, problem, _ = picture_editor.pictures(key, spec)
    if not pictures:
        return Edited(problem=f"Add a picture for '{key}' to send.", editor="image")
    return Edited(inputs={key: picture_editor.image_inputs(spec, pictures)}, rows=len(pictures),
                  problem=problem, editor="image")


def mixed_editor(signature: Signature, prefill: dict[str, Any], random_range: tuple[float, float]) -> Edited:
    """One image input and others in a table: picture i and table row i are example i. The
    pictures as :func:`image_editor` reads them, the table as :func:`table_editor` edits it; a
    different count of pictures and rows is caught here, naming both."""
    key = image_key(signature)
    spec = signature.inputs[key]
    table = table_part(signature)
    st.caption(f"One example per picture of `{key}` and per row of the table ({', '.join(table.inputs)}): "
               "picture 1 goes with row 1, and so on.")
    pictures, problem, _ = picture_editor.pictures(key, spec)
    edited = table_editor(table, prefill, False, random_range)
    edited.editor = "mixed"
    problem = edited.problem or problem
    if not pictures:
        problem = problem or f"Add a picture for '{key}' to send."
    elif edited.inputs is not None and len(pictures) != edited.rows:
        others = ", ".join(f"'{k}'" for k in table.inputs)
        problem = problem or (
            f"Input '{key}' has {len(pictures)} picture{'s' if len(pictures) != 1 else ''} but the table "
            f"({others}) has {edited.rows} row{'s' if edited.rows != 1 else ''}: every example needs one "
            "of each. Add or remove pictures or rows; nothing was sent.")
        st.error(problem, icon=":material/photo_library:")
    if problem is None and edited.inputs is not None:
        combined = {**edited.inputs, key: picture_editor.image_inputs(spec, pictures)}
        edited.inputs = {k: combined[k] for k in signature.inputs}
    else:
        edited.inputs = None
    edited.problem = problem
    return edited


def _field(spec: TensorSpec, key: str, label: str) -> Any:
    if spec.dtype == "DT_BOOL":
        return st.checkbox(label, key=key)
    if spec.dtype == "DT_STRING":
        return st.text_input(label, key=key)
    if spec.numeric and spec.dtype.startswith(("DT_INT", "DT_UINT")):
        return int(st.number_input(label, step=1, key=key))
    return float(st.number_input(label, format="%.6g", key=key))


def fields_editor(signature: Signature) -> Edited:
    """Typed fields for inputs without a batch dimension (scalars and small fixed shapes)."""
    inputs = {}
    for name, spec in signature.inputs.items():
        shape = spec.shape or ()
        count = int(np.prod(shape)) if shape else 1
        columns = st.columns(min(count, 4))
        values = []
        for i in range(count):
            with columns[i % len(columns)]:
                label = name + (f"[{i}]" if count > 1 else "") + f" ({spec.describe()})"
                values.append(_field(spec, f"predict_field::{name}::{i}", label))
        inputs[name] = np.asarray(values, dtype=object).reshape(shape).tolist() if shape else values[0]
    return Edited(inputs=inputs, rows=1, columnar_only=True, editor="fields")


def json_editor(signature: Signature) -> Edited:
    """The request body as JSON (``instances`` or ``inputs``), checked before it is sent."""
    st.caption("The body of the request as TF Serving reads it: `{\"instances\": [...]}` (row format) or "
               "`{\"inputs\": ...}` (columnar). It is checked against the signature's dtypes and shapes "
               "before it is sent.")
    text = st.text_area("Request (JSON)", key=JSON_TEXT_KEY, height=220)
    try:
        body = json.loads(text)
        if not isinstance(body, dict):
            raise ValueError("The request must be a JSON object.")
        inputs, fmt = inputs_of_body(body, signature)
        rows = check_inputs(signature, inputs, rows=fmt == "row")
    except ValueError as exc:
        problem = f"Not sent: {exc}"
        st.error(problem, icon=":material/data_object:")
        return Edited(problem=problem, editor="json")
    if rows is None and all(s.batched for s in signature.inputs.values()):
        counts = {len(v) for v in inputs.values() if isinstance(v, list)}
        rows = counts.pop() if len(counts) == 1 else None  # columnar: the batch dimension's size
    return Edited(inputs=inputs, rows=rows or 1, columnar_only=fmt == "columnar", editor="json")


def _json_from_last() -> None:
    """Switched to JSON: start from what the other editor holds."""
    if st.session_state.get(JSON_MODE_KEY) and (last := st.session_state.get(LAST_KEY)) is not None:
        st.session_state[JSON_TEXT_KEY] = json.dumps(last)


def render(signature: Signature, prefill: dict[str, Any], tutorial_model: bool,
           random_range: tuple[float, float]) -> Edited:
    """The editor that fits ``signature`` (or the JSON editor when chosen), checked."""
    kind = editor_kind(signature)
    as_json = st.toggle("Edit the request as JSON", key=JSON_MODE_KEY, disabled=kind == "json",
                        on_change=_json_from_last,
                        help="Any request the signature takes, typed as TF Serving's JSON.")
    if as_json or kind == "json":
        return json_editor(signature)
    if kind == "table":
        edited = table_editor(signature, prefill, tutorial_model, random_range)
    elif kind == "image":
        edited = image_editor(signature)
    elif kind == "mixed":
        edited = mixed_editor(signature, prefill, random_range)
    else:
        edited = fields_editor(signature)
    if edited.inputs is not None and edited.rows <= JSON_PREFILL_ROWS:
        st.session_state[LAST_KEY] = rest_body(input_table.as_lists(edited.inputs),
                                               "columnar" if edited.columnar_only else "row")
    if edited.inputs is not None and kind == "fields":
        try:
            for name, spec in signature.inputs.items():
                check_value(spec, edited.inputs[name])
        except ValueError as exc:
            edited.problem = str(exc)
            st.error(str(exc), icon=":material/input:")
    return edited


def signature_example(signature: Signature) -> dict[str, Any]:
    """A valid request built from the signature alone (one example)."""
    return example_inputs(signature, rows=1)
