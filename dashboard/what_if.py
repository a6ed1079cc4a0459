"""What-if: one example, one numeric input swept over a range in a single request, and every
numeric output plotted against it. The input is a table column, the brightness of a region of a
picture, an element of an input typed as JSON, or a number feature of a ``tf.Example``; the
example's other inputs are repeated as they are. For the tutorial's model the line is straight
and its slope is the learned weight of the swept column, which the page says. Where no sweep is
possible (inputs without a batch dimension, no numeric input) the page says why in one line.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import input_table, messages, output_charts, predict_requests, predict_tutorial, tutorial
from dashboard.predict_inputs import Edited, image_key
from dashboard.predict_requests import Request
from pipeline.client.errors import ClientError
from pipeline.client.signatures import FLOAT_DTYPES, InputKind, Signature, TensorSpec, input_kind

RESULT_KEY = "predict_what_if"
MAX_STEPS = 200
REGION = "brightness of a region"
MAX_LISTED_ELEMENTS = 256
"""An input with more elements per example is swept at an element typed by its index."""
Plan = tuple[str, np.ndarray, Any]
"""What a sweep sends: the swept input's label, its values, and the request's inputs (or examples)."""


def _range_inputs(values: np.ndarray, target: str) -> tuple[float, float, int]:
    """From, to and steps for sweeping ``target``, starting at ``values``' range (each target keeps
    its own: a picture's 0–1 is no range for a column of counts)."""
    key = f"what_if_range::{target}"
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if low == high:
        low, high = low - 1.0, high + 1.0
    a, b, c = st.columns(3)
    start = a.number_input("from", value=low, key=f"{key}_from")
    stop = b.number_input("to", value=high, key=f"{key}_to")
    steps = int(c.number_input("steps", min_value=2, max_value=MAX_STEPS, value=25, key=f"{key}_steps"))
    return float(start), float(stop), steps


def _repeat(inputs: dict[str, Any], example: int, steps: int) -> dict[str, Any]:
    """Every input's example ``example`` repeated ``steps`` times (the batch a sweep sends)."""
    out: dict[str, Any] = {}
    for key, value in inputs.items():
        if isinstance(value, np.ndarray):
            out[key] = np.repeat(value[example:example + 1], steps, axis=0)
        else:
            out[key] = [value[example]] * steps
    return out


def _typed(spec: TensorSpec, batch: np.ndarray) -> list[Any]:
    """A swept batch as the input's values: whole numbers for an integer dtype."""
    return batch.tolist() if spec.dtype in FLOAT_DTYPES else np.round(batch).astype(np.int64).tolist()


def _table_sweep(edited: Edited, example: int) -> Plan | None:
    frame, layout = edited.frame, edited.layout
    columns = layout.numeric if layout is not None else []
    if frame is None or layout is None or not columns:
        st.caption("What-if needs a numeric input column; this table holds only text or true/false.")
        return None
    column = st.selectbox("Input to sweep", columns, key="what_if_column")
    start, stop, steps = _range_inputs(pd.to_numeric(frame[column], errors="coerce").to_numpy(float),
                                       column)
    swept = np.linspace(start, stop, steps)
    rows = pd.concat([frame.iloc[[example]]] * steps, ignore_index=True)
    kind = next(c.kind for c in layout.columns if c.name == column)
    rows[column] = np.round(swept).astype("int64") if kind == "int" else swept
    if kind == "int":
        swept = np.round(swept)
    others = {k: v for k, v in (edited.inputs or {}).items() if k not in layout.inputs}
    others = _repeat(others, example, steps)
    return column, swept, {**others, **input_table.frame_inputs(layout, rows)}


def _region_sweep(spec: TensorSpec, image: np.ndarray, example: int) -> tuple[str, np.ndarray, list[Any]]:
    """The brightness of a region of one picture (all channels) set to each swept value."""
    height, width = image.shape[:2]
    st.caption(f"The {REGION} of `{spec.key}` in example {example + 1} is set to each value (all channels).")
    rows_col, cols_col = st.columns(2)
    top, bottom = rows_col.slider("Rows", 0, height, (0, height), key="what_if_rows")
    left, right = cols_col.slider("Columns", 0, width, (0, width), key="what_if_cols")
    start, stop, steps = _range_inputs(image.reshape(-1), f"{spec.key} {REGION}")
    swept = np.linspace(start, stop, steps)
    if spec.dtype not in FLOAT_DTYPES:
        swept = np.round(swept)
    batch = np.repeat(image[None], steps, axis=0)
    batch[:, top:bottom, left:right, :] = swept[:, None, None, None]
    return f"{spec.key} {REGION} [{top}:{bottom}, {left}:{right}]", swept, _typed(spec, batch)


def _image_sweep(edited: Edited, example: int, signature: Signature) -> Plan | None:
    key = image_key(signature)
    inputs = dict(edited.inputs or {})
    image = np.asarray(inputs[key][example], dtype=np.float64)
    label, swept, batch = _region_sweep(signature.inputs[key], image, example)
    return label, swept, {**_repeat(inputs, example, len(swept)), key: batch}


def _mixed_sweep(edited: Edited, example: int, signature: Signature) -> Plan | None:
    """The combined editor: a column of its table, or a region of its pictures."""
    region = f"the {REGION} of `{image_key(signature)}`"
    what = st.radio("Sweep", ["a column of the table", region], key="what_if_target", horizontal=True)
    plan = _image_sweep(edited, example, signature) if what == region else _table_sweep(edited, example)
    if plan is None:
        return None
    label, swept, values = plan
    return label, swept, {k: values[k] for k in signature.inputs}


def _element_names(key: str, shape: tuple[int, ...], tutorial_model: bool) -> list[str]:
    """Each element of one example of shape ``shape``: ``key[0, 1]``; the tutorial's x1 and x2."""
    size = int(np.prod(shape)) if shape else 1
    if tutorial_model and shape == (len(tutorial.FEATURES),):
        return list(tutorial.FEATURES)
    if not shape:
        return [key]
    return [f"{key}[{', '.join(str(int(i)) for i in np.unravel_index(flat, shape))}]" for flat in range(size)]


def _json_sweep(edited: Edited, example: int, signature: Signature, tutorial_model: bool) -> Plan | None:
    """The JSON editor: one element of a numeric input (a region of a picture-shaped one)."""
    if unbatched := [s for s in signature.inputs.values() if not s.batched]:
        spec = unbatched[0]
        st.caption(f"No what-if here: it sends every swept value in one request along the batch dimension, "
                   f"and input `{spec.key}` ({spec.describe()}) has none, so a request carries one example.")
        return None
    inputs = dict(edited.inputs or {})
    numeric = [k for k, s in signature.inputs.items() if s.numeric]
    if not numeric:
        st.caption("No what-if here: it sweeps a numeric input, and this signature takes "
                   + ", ".join(f"`{k}` {s.describe()}" for k, s in signature.inputs.items()) + ".")
        return None
    key = st.selectbox("Input to sweep", numeric, key="what_if_input") if len(numeric) > 1 else numeric[0]
    spec = signature.inputs[key]
    value = np.asarray(inputs[key][example], dtype=np.float64)
    if input_kind(spec) == InputKind.IMAGE:
        label, swept, batch = _region_sweep(spec, value, example)
        return label, swept, {**_repeat(inputs, example, len(swept)), key: batch}
    if value.size == 0:
        st.caption(f"No what-if here: example {example + 1} of `{key}` holds no numbers to sweep.")
        return None
    names = _element_names(key, value.shape, tutorial_model)
    if value.size == 1:
        flat = 0
    elif value.size <= MAX_LISTED_ELEMENTS:
        flat = st.selectbox(f"Element of `{key}` to sweep", range(value.size), format_func=names.__getitem__,
                            key="what_if_element")
    else:
        flat = int(st.number_input(f"Element of `{key}` to sweep (index in the flattened example, "
                                   f"0–{value.size - 1})", min_value=0, max_value=value.size - 1, value=0,
                                   key="what_if_element_index"))
        st.caption(f"That is {names[flat]}.")
    start, stop, steps = _range_inputs(value.reshape(-1), names[flat])
    swept = np.linspace(start, stop, steps)
    if spec.dtype not in FLOAT_DTYPES:
        swept = np.round(swept)
    batch = np.repeat(value.reshape(1, -1), steps, axis=0)
    batch[:, flat] = swept
    return names[flat], swept, {**_repeat(inputs, example, steps),
                                key: _typed(spec, batch.reshape((steps, *value.shape)))}


def _examples_sweep(edited: Edited, example: int) -> Plan | None:
    base = dict((edited.examples or [])[example])
    numeric = [k for k, v in base.items() if isinstance(v, int | float) and not isinstance(v, bool)]
    if not numeric:
        st.caption("What-if needs a number feature in the example.")
        return None
    feature = st.selectbox("Feature to sweep", numeric, key="what_if_feature")
    start, stop, steps = _range_inputs(np.array([float(base[feature])]), feature)
    swept = np.linspace(start, stop, steps)
    as_int = isinstance(base[feature], int)
    return feature, swept, [{**base, feature: int(round(v)) if as_int else float(v)} for v in swept]


def _slope_note(column: str, swept: np.ndarray, series: dict[str, list[float]], tutorial_model: bool,
                version: int | None) -> str | None:
    if not tutorial_model or len(series) != 1 or column not in ("x1", "x2"):
        return None
    (ys,) = series.values()
    slope = output_charts.slope(swept, ys)
    if slope is None:
        return None
    index = 0 if column == "x1" else 1
    w, _, source = predict_tutorial.true_weights(version)
    return (f"The line's slope, {slope:.4g}, is the weight the model learned for {column} (w[{index}]); "
            f"the true weight is {w[index]:g} ({source}). A linear model answers every other input the same "
            "way, so the other columns only move the line up or down.")


def render(request: Request | None, edited: Edited, tutorial_model: bool) -> None:
    """The what-if section: choose an example and an input, sweep it, plot every numeric output."""
    st.subheader("What-if")
    if request is None or edited.rows == 0:
        st.caption("What-if starts from a valid example: fix the inputs above first.")
        return
    example = int(st.number_input("Example", min_value=1, max_value=edited.rows, value=1,
                                  key="what_if_example")) - 1 if edited.rows > 1 else 0
    if edited.examples is not None:
        plan = _examples_sweep(edited, example)
    elif edited.editor == "image":
        plan = _image_sweep(edited, example, request.signature)
    elif edited.editor == "mixed":
        plan = _mixed_sweep(edited, example, request.signature)
    elif edited.editor == "table":
        plan = _table_sweep(edited, example)
    elif edited.editor == "json":
        plan = _json_sweep(edited, example, request.signature, tutorial_model)
    else:
        st.caption("No what-if here: it sends every swept value in one request along the batch dimension, "
                   "and these inputs have none (typed fields: one example per request).")
        return
    if plan is None:
        return
    column, swept, values = plan
    if st.button(f"Sweep {column} over {len(swept)} values", key="what_if_send", icon=":material/tune:"):
        sweep = (replace(request, examples=values, rows=len(swept)) if edited.examples is not None
                 else replace(request, inputs=values, rows=len(swept)))
        try:
            answer = predict_requests.send(sweep)
        except ClientError as exc:
            st.session_state.pop(RESULT_KEY, None)
            messages.show_serving_error(exc)
        except ValueError as exc:
            st.session_state.pop(RESULT_KEY, None)
            st.warning(f"The server answered, but not as the signature says: {exc}")
        else:
            st.session_state[RESULT_KEY] = (column, swept, answer)
    if (kept := st.session_state.get(RESULT_KEY)) is None or kept[0] != column:
        return
    column, swept, answer = kept
    series = {}
    for name, values in answer.outputs.items():
        if name != "classes":
            series.update(output_charts.sweep_series(name, values))
    if not series:
        st.caption("The model's outputs are not numbers: see them in the request history.")
        return
    st.plotly_chart(output_charts.values_figure(swept, series, column, "output", lines=True),
                    key="what_if_chart")
    if note := _slope_note(column, swept, series, tutorial_model, answer.version):
        st.info(note, icon=":material/show_chart:")
