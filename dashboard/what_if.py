"""What-if: one example, one numeric input swept over a range in a single request, and every
numeric output plotted against it. The input is a table column, the brightness of a region of a
picture, or a number feature of a ``tf.Example``. For the tutorial's model the line is straight
and its slope is the learned weight of the swept column, which the page says."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import input_table, messages, output_charts, predict_requests, predict_tutorial
from dashboard.predict_inputs import Edited
from dashboard.predict_requests import Request
from pipeline.client.errors import ClientError

RESULT_KEY = "predict_what_if"
MAX_STEPS = 200
REGION = "brightness of a region"


def _range_inputs(values: np.ndarray, key: str) -> tuple[float, float, int]:
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if low == high:
        low, high = low - 1.0, high + 1.0
    a, b, c = st.columns(3)
    start = a.number_input("from", value=low, key=f"{key}_from")
    stop = b.number_input("to", value=high, key=f"{key}_to")
    steps = int(c.number_input("steps", min_value=2, max_value=MAX_STEPS, value=25, key=f"{key}_steps"))
    return float(start), float(stop), steps


def _table_sweep(edited: Edited, example: int) -> tuple[str, np.ndarray, dict[str, Any]] | None:
    frame, layout = edited.frame, edited.layout
    columns = layout.numeric if layout is not None else []
    if frame is None or layout is None or not columns:
        st.caption("What-if needs a numeric input column.")
        return None
    column = st.selectbox("Input to sweep", columns, key="what_if_column")
    start, stop, steps = _range_inputs(pd.to_numeric(frame[column], errors="coerce").to_numpy(float),
                                       "what_if_range")
    swept = np.linspace(start, stop, steps)
    rows = pd.concat([frame.iloc[[example]]] * steps, ignore_index=True)
    kind = next(c.kind for c in layout.columns if c.name == column)
    rows[column] = np.round(swept).astype("int64") if kind == "int" else swept
    if kind == "int":
        swept = np.round(swept)
    return column, swept, input_table.frame_inputs(layout, rows)


def _image_sweep(edited: Edited, example: int) -> tuple[str, np.ndarray, dict[str, Any]] | None:
    (key, images), = edited.inputs.items()  # type: ignore[union-attr]
    image = np.asarray(images[example], dtype=np.float64)
    height, width = image.shape[:2]
    st.caption(f"The {REGION} of example {example + 1} is set to each value (all channels).")
    rows_col, cols_col = st.columns(2)
    top, bottom = rows_col.slider("Rows", 0, height, (0, height), key="what_if_rows")
    left, right = cols_col.slider("Columns", 0, width, (0, width), key="what_if_cols")
    start, stop, steps = _range_inputs(image.reshape(-1), "what_if_range")
    swept = np.linspace(start, stop, steps)
    batch = np.repeat(image[None], steps, axis=0)
    batch[:, top:bottom, left:right, :] = swept[:, None, None, None]
    return f"{key} {REGION} [{top}:{bottom}, {left}:{right}]", swept, {key: batch.tolist()}


def _examples_sweep(edited: Edited, example: int) -> tuple[str, np.ndarray, list[dict[str, Any]]] | None:
    base = dict((edited.examples or [])[example])
    numeric = [k for k, v in base.items() if isinstance(v, int | float) and not isinstance(v, bool)]
    if not numeric:
        st.caption("What-if needs a number feature in the example.")
        return None
    feature = st.selectbox("Feature to sweep", numeric, key="what_if_feature")
    start, stop, steps = _range_inputs(np.array([float(base[feature])]), "what_if_range")
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
        plan = _image_sweep(edited, example)
    elif edited.editor == "table":
        plan = _table_sweep(edited, example)
    else:
        st.caption("What-if works on a table of examples, pictures or tf.Examples; this editor is JSON.")
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
