"""What an output is and how it is drawn, chosen from its shape, dtype and values: pure functions
returning tables and Plotly figures, unit-tested without a browser.

- class probabilities: a float ``[-1, k]`` output (k ≥ 2) whose rows lie in [0, 1] and sum to ~1
  (:func:`is_probabilities`) is a table with the argmax and the top k, and a bar chart per example;
- numbers ``[-1]`` / ``[-1, 1]``: a table, and the values against an input column;
- strings: text in a table;
- a what-if sweep: every numeric output against the swept value (:func:`sweep_figure`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

PROBABILITY_TOLERANCE = 1e-3
TOP_K = 3
MAX_TABLE_COLUMNS = 20
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")


def as_array(values: Any) -> np.ndarray | None:
    """``values`` as a float array, or ``None`` when they are not (all) numbers or are ragged."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return array if array.dtype.kind == "f" else None


def is_probabilities(values: Any) -> bool:
    """Whether an output is class probabilities: ``[n, k]`` numbers, k ≥ 2, every row in [0, 1]
    summing to 1 within :data:`PROBABILITY_TOLERANCE`."""
    array = as_array(values)
    if array is None or array.ndim != 2 or array.shape[1] < 2 or array.shape[0] == 0:
        return False
    finite = np.isfinite(array).all()
    return bool(finite and (array >= -1e-6).all() and (array <= 1 + 1e-6).all()
                and np.allclose(array.sum(axis=1), 1.0, atol=PROBABILITY_TOLERANCE))


def class_labels(k: int, labels: Sequence[Any] | None = None) -> list[str]:
    """Names of k classes: the given labels (e.g. a classify answer's classes), else 0..k-1."""
    if labels is not None and len(labels) == k and any(str(label) for label in labels):
        return [str(label) for label in labels]
    return [str(i) for i in range(k)]


def output_table(name: str, values: Any, labels: Sequence[Sequence[Any]] | None = None) -> pd.DataFrame:
    """One row per example of an output: one column for ``[n]``/``[n, 1]``, ``name[i]`` columns
    for ``[n, k]`` up to :data:`MAX_TABLE_COLUMNS`, the value as JSON text beyond; probabilities
    get ``argmax`` and ``top k`` columns (labelled by ``labels`` per example when given)."""
    if not isinstance(values, list):
        return pd.DataFrame({name: [values]})
    array = as_array(values)
    if array is not None and array.ndim == 2 and array.shape[1] == 1:
        return pd.DataFrame({name: array[:, 0]})
    if array is not None and array.ndim == 1:
        return pd.DataFrame({name: array})
    if array is not None and array.ndim == 2 and array.shape[1] <= MAX_TABLE_COLUMNS:
        table = pd.DataFrame(array, columns=[f"{name}[{i}]" for i in range(array.shape[1])])
        if is_probabilities(array):
            top = np.argsort(-array, axis=1)[:, :TOP_K]
            names = [class_labels(array.shape[1], labels[r] if labels else None) for r in range(len(array))]
            table.insert(0, "argmax", [names[r][i] for r, i in enumerate(top[:, 0])])
            table.insert(1, f"top {min(TOP_K, array.shape[1])}", [
                ", ".join(f"{names[r][i]} {array[r, i]:.3f}" for i in row) for r, row in enumerate(top)])
        return table
    if all(not isinstance(v, list) for v in values):
        plain = [v if isinstance(v, str | int | float | bool) else str(v) for v in values]
        return pd.DataFrame({name: plain})
    return pd.DataFrame({name: [json.dumps(v) for v in values]})


def probabilities_figure(probabilities: Sequence[float], labels: Sequence[str], title: str) -> go.Figure:
    """One example's class probabilities as horizontal bars, the top :data:`TOP_K` coloured and
    the argmax named in the title."""
    values = np.asarray(probabilities, dtype=np.float64)
    order = np.argsort(-values)
    top = set(order[:TOP_K].tolist())
    colors = [COLORS[0] if i in top else "#c7c7c7" for i in range(len(values))]
    fig = go.Figure(go.Bar(x=values, y=list(labels), orientation="h", marker_color=colors,
                           text=[f"{v:.3f}" for v in values], textposition="auto"))
    fig.update_layout(title=f"{title}: argmax {labels[int(order[0])]} ({values[order[0]]:.3f})",
                      xaxis={"title": "probability", "range": [0, 1]},
                      yaxis={"autorange": "reversed", "type": "category"},
                      height=max(220, 28 * len(values) + 90), margin={"l": 10, "r": 10, "t": 50, "b": 40})
    return fig


def values_figure(x: Sequence[Any], values: Mapping[str, Sequence[float]], x_title: str, y_title: str,
                  lines: bool = False) -> go.Figure:
    """Each output's values (y) against ``x`` (an input column, the swept value, or the example
    number); one trace per output, lines for a sweep."""
    fig = go.Figure()
    for index, (name, ys) in enumerate(values.items()):
        mode = "lines+markers" if lines else "markers"
        fig.add_trace(go.Scatter(x=list(x), y=list(ys), name=name, mode=mode,
                                 marker={"color": COLORS[index % len(COLORS)], "size": 6}))
    fig.update_layout(xaxis_title=x_title, yaxis_title=y_title, height=380, showlegend=len(values) > 1,
                      margin={"l": 10, "r": 10, "t": 30, "b": 40})
    return fig


def sweep_series(name: str, values: Any) -> dict[str, list[float]]:
    """The numeric lines of one output across a sweep: ``name`` for ``[n]``/``[n, 1]``, ``name[i]``
    (or its class) per column for ``[n, k]``; none for strings or larger shapes."""
    array = as_array(values)
    if array is None or array.ndim > 2 or array.ndim == 0:
        return {}
    if array.ndim == 1 or array.shape[1] == 1:
        return {name: array.reshape(len(array)).tolist()}
    if array.shape[1] > MAX_TABLE_COLUMNS:
        return {}
    return {f"{name}[{i}]": array[:, i].tolist() for i in range(array.shape[1])}


def slope(x: Sequence[float], y: Sequence[float]) -> float | None:
    """The least-squares slope of y against x (``None`` with fewer than two distinct x)."""
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(xs) & np.isfinite(ys)
    if keep.sum() < 2 or np.ptp(xs[keep]) == 0:
        return None
    return float(np.polyfit(xs[keep], ys[keep], 1)[0])
