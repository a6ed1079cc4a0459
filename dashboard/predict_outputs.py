"""Every output of an answer, by kind: a table headed by the output's name (also for the
``predictions`` list of a one-output model, which carries no name), class probabilities as bars
with the argmax and top k, numbers plotted against an input, strings as text; several outputs in
tabs. A classify answer is a label/score table and bars per example."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import output_charts
from dashboard.predict_requests import Answer
from pipeline.client.signatures import TensorSpec

MAX_PLOT_POINTS = 2_000


def _labels(answer: Answer, name: str, k: int) -> list[list[Any]] | None:
    """Class names for a ``[n, k]`` probabilities output: a string output of the same shape (a
    classify answer's ``classes``)."""
    for other, values in answer.outputs.items():
        if other != name and isinstance(values, list) and values and isinstance(values[0], list) \
                and len(values[0]) == k and all(isinstance(v, str) for v in values[0]):
            return values
    return None


def _example_picker(count: int, key: str) -> int:
    if count <= 1:
        return 0
    return int(st.number_input("Example", min_value=1, max_value=count, value=1, key=key)) - 1


def _numeric_columns(frame: pd.DataFrame | None) -> list[str]:
    if frame is None:
        return []
    return [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c]) and not
            pd.api.types.is_bool_dtype(frame[c])]


def render_output(answer: Answer, name: str, values: Any, spec: TensorSpec | None,
                  frame: pd.DataFrame | None) -> None:
    """One output: its table and the chart its kind calls for."""
    described = f" · {spec.describe()}" if spec is not None else ""
    st.markdown(f"**`{name}`**{described}")
    array = output_charts.as_array(values) if isinstance(values, list) else None
    labels = _labels(answer, name, array.shape[1]) if array is not None and array.ndim == 2 else None
    st.dataframe(output_charts.output_table(name, values, labels), hide_index=True,
                 key=f"predict_output_{name}")
    if array is None or array.size == 0:
        return
    if output_charts.is_probabilities(array):
        index = _example_picker(len(array), f"predict_output_example_{name}")
        names = output_charts.class_labels(array.shape[1], labels[index] if labels else None)
        st.plotly_chart(output_charts.probabilities_figure(array[index], names, f"example {index + 1}"),
                        key=f"predict_output_chart_{name}")
        return
    if (array.ndim == 1 or (array.ndim == 2 and array.shape[1] == 1)) and len(array) > 1:
        ys = array.reshape(len(array))
        columns = _numeric_columns(frame)
        if frame is not None and len(frame) != len(ys):
            columns = []
        against = st.selectbox("Plot against", ["example number", *columns], key=f"predict_output_x_{name}",
                               index=1 if columns else 0)
        x = np.arange(1, len(ys) + 1) if against == "example number" else frame[against].to_numpy(dtype=float)
        shown = np.arange(len(ys)) if len(ys) <= MAX_PLOT_POINTS else np.sort(
            np.random.default_rng(0).choice(len(ys), MAX_PLOT_POINTS, replace=False))
        if len(ys) > MAX_PLOT_POINTS:
            st.caption(f"The chart shows {MAX_PLOT_POINTS:,} of {len(ys):,} examples (a random sample).")
        st.plotly_chart(output_charts.values_figure(x[shown], {name: ys[shown]}, against, name),
                        key=f"predict_output_chart_{name}")


def render_classify(answer: Answer) -> None:
    """A classify answer: one row per (example, class) with its score, and the bars of an example."""
    classes, scores = answer.outputs.get("classes") or [], answer.outputs.get("scores") or []
    rows = [{"example": i + 1, "label": label, "score": score}
            for i, (labels, values) in enumerate(zip(classes, scores, strict=False))
            for label, score in zip(labels, values, strict=False)]
    st.markdown("**`classes` and `scores`** · one row per example and class")
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="predict_output_classify")
    if scores:
        index = _example_picker(len(scores), "predict_output_example_classify")
        given = classes[index] if index < len(classes) else None
        names = output_charts.class_labels(len(scores[index]), given)
        figure = output_charts.probabilities_figure(scores[index], names, f"example {index + 1}")
        if not output_charts.is_probabilities([scores[index]]):
            figure.update_xaxes(range=None, title="score")
        st.plotly_chart(figure, key="predict_output_chart_classify")


def render_outputs(answer: Answer, frame: pd.DataFrame | None) -> None:
    """Every output of ``answer``: one section, or one tab per output when there are several."""
    signature = answer.request.signature
    if signature.method == "classify":
        render_classify(answer)
        return
    names = list(answer.outputs)
    if len(names) == 1:
        render_output(answer, names[0], answer.outputs[names[0]], signature.outputs.get(names[0]), frame)
        return
    for tab, name in zip(st.tabs(names), names, strict=True):
        with tab:
            render_output(answer, name, answer.outputs[name], signature.outputs.get(name), frame)
