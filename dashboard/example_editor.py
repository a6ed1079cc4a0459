"""The feature editor for classify and regress signatures: ``tf.Example``s as a table, one row per
example and one column per feature, typed float, int or string (TF Serving's ``float_list``,
``int64_list``, ``bytes_list``). Features come from the version's warm-up records when it has
them; a signature names no features (it takes serialized examples), so without warm-up records
the table starts with one float feature ``x``, and features are added by name and type. A JSON
editor takes any ``{"examples": [...], "context": {...}}`` body.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
import streamlit as st

from dashboard.predict_inputs import Edited

EXAMPLES_KEY, EDITOR_KEY = "predict_examples", "predict_examples_editor"
JSON_MODE_KEY, JSON_TEXT_KEY = "predict_examples_json_mode", "predict_examples_json"
TYPES = {"float": "float_list", "int": "int64_list", "string": "bytes_list"}
DEFAULT_EXAMPLES = ({"x": [1.0]},)
"""Without warm-up records: one float feature x (TF Serving's half_plus_two parses exactly that)."""


def _kind(values: Sequence[Any]) -> str:
    if all(isinstance(v, bool | int) for v in values):
        return "int"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "float"
    return "string"


def frame_of(examples: Sequence[dict[str, Sequence[Any]]]) -> pd.DataFrame:
    """The table of ``examples`` (``{feature: [values]}``): one value per cell (several values of a
    feature are kept as a JSON list in a text cell), columns typed by their values."""
    names = list(dict.fromkeys(name for e in examples for name in e))
    data = {}
    for name in names:
        cells = [list(e.get(name, [])) for e in examples]
        flat = [v for c in cells for v in c]
        kind = _kind(flat) if flat else "float"
        if any(len(c) > 1 for c in cells):
            data[name] = [json.dumps(c) for c in cells]  # several values: a JSON list in the cell
        elif kind == "float":
            data[name] = pd.Series([c[0] if c else None for c in cells], dtype="float64")
        elif kind == "int":
            data[name] = pd.Series([c[0] if c else None for c in cells], dtype="Int64")
        else:
            data[name] = [str(c[0]) if c else "" for c in cells]
    return pd.DataFrame(data)


def _feature_kind(series: pd.Series) -> str:
    if pd.api.types.is_float_dtype(series):
        return "float"
    if pd.api.types.is_integer_dtype(series):
        return "int"
    return "string"


def _values(kind: str, cell: Any) -> list[Any] | None:
    """A cell as a feature's value list (``None`` for an empty cell: the feature is left out)."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)) or cell is pd.NA:
        return None
    if kind == "float":
        return [float(cell)]
    if kind == "int":
        return [int(cell)]
    text = str(cell)
    if text.startswith("[") and text.endswith("]"):
        try:
            values = json.loads(text)
        except ValueError:
            return [text]
        return values if isinstance(values, list) and values else [text]
    return None if text == "" else [text]


def frame_examples(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The table as the examples of a ``:classify``/``:regress`` body (one value per feature is
    written as a bare value, floats always with a decimal point so they stay float_list);
    ``ValueError`` when there is no example or an example has no feature."""
    if frame.empty:
        raise ValueError("There are no examples: add a row.")
    kinds = {name: _feature_kind(frame[name]) for name in frame.columns}
    examples = []
    for index, row in enumerate(frame.itertuples(index=False), start=1):
        example = {}
        for name, cell in zip(frame.columns, row, strict=True):
            values = _values(kinds[name], cell)
            if values is not None:
                example[str(name)] = values[0] if len(values) == 1 else values
        if not example:
            raise ValueError(f"Example {index} has no feature: fill a cell or delete the row.")
        examples.append(example)
    return examples


def check_body(body: Any) -> list[dict[str, Any]]:
    """The examples of a classify/regress JSON body; ``ValueError`` naming what is wrong."""
    if not isinstance(body, dict) or not isinstance(body.get("examples"), list) or not body["examples"]:
        raise ValueError('The body needs "examples": a list of objects, e.g. {"examples": [{"x": 1.0}]}.')
    for index, example in enumerate(body["examples"], start=1):
        if not isinstance(example, dict) or not example:
            raise ValueError(f"Example {index} is not an object of features.")
        for name, value in example.items():
            values = value if isinstance(value, list) else [value]
            if not values or _kind(values) == "string" and not all(isinstance(v, str | dict) for v in values):
                raise ValueError(f"Example {index}, feature {name!r}: mix of types; a feature holds floats, "
                                 "ints or strings.")
    return body["examples"]


def reset(examples: Sequence[dict[str, Sequence[Any]]] | None) -> None:
    """Start from ``examples`` (warm-up records), else the default float feature x."""
    st.session_state[EXAMPLES_KEY] = frame_of(examples or DEFAULT_EXAMPLES)
    st.session_state.pop(EDITOR_KEY, None)
    st.session_state[JSON_TEXT_KEY] = json.dumps({"examples": frame_examples(st.session_state[EXAMPLES_KEY])})
    st.session_state[JSON_MODE_KEY] = False


def _add_feature(frame: pd.DataFrame) -> None:
    name_col, type_col, add_col = st.columns([3, 2, 2], vertical_alignment="bottom")
    name = name_col.text_input("New feature", key="predict_feature_name", placeholder="e.g. color")
    kind = type_col.selectbox("Type", list(TYPES), key="predict_feature_type",
                              format_func=lambda k: f"{k} ({TYPES[k]})")
    if add_col.button("Add feature", key="predict_feature_add", icon=":material/add:",
                      disabled=not name.strip() or name.strip() in frame.columns):
        dtype = {"float": "float64", "int": "Int64", "string": "object"}[kind]
        frame = frame.copy()
        frame[name.strip()] = pd.Series([None] * len(frame), dtype=dtype) if kind != "string" else ""
        st.session_state[EXAMPLES_KEY] = frame
        st.session_state.pop(EDITOR_KEY, None)
        st.rerun()


def render(method: str, from_warmup: bool) -> Edited:
    """The examples editor (table or JSON); returns the examples to send, checked."""
    as_json = st.toggle("Edit the examples as JSON", key=JSON_MODE_KEY,
                        help='TF Serving\'s body: {"examples": [...], "context": {...}}.')
    if as_json:
        text = st.text_area("Examples (JSON)", key=JSON_TEXT_KEY, height=200)
        try:
            body = json.loads(text)
            examples = check_body(body)
        except ValueError as exc:
            st.error(f"Not sent: {exc}", icon=":material/data_object:")
            return Edited(problem=f"Not sent: {exc}", editor="examples")
        return Edited(examples=examples, rows=len(examples), editor="examples", context=body.get("context"))
    source = ("the version's warm-up records" if from_warmup else
              "a float feature x (the signature does not say which features the model parses: name yours)")
    st.caption(f"`tf.Example`s for `:{method}`, one per row, one column per feature; started from {source}.")
    frame = st.data_editor(st.session_state[EXAMPLES_KEY], num_rows="dynamic", hide_index=True,
                           key=EDITOR_KEY)
    _add_feature(frame)
    try:
        examples = frame_examples(frame)
    except ValueError as exc:
        st.error(str(exc), icon=":material/table_view:")
        return Edited(problem=str(exc), editor="examples")
    return Edited(examples=examples, rows=len(examples), editor="examples")
