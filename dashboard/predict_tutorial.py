"""The tutorial's model on the Predict page: its answers next to the truth ``x @ w0 + b0`` the
version was trained against, the residuals, and the 3-D view of the rows over the true plane.
Any model whose signature is the tutorial's (one float ``[-1, 2]`` input, one float output) gets
these views on top of the outputs every model gets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts, session, tutorial
from dashboard.kept_chart import kept_plotly_chart
from dashboard.predict_requests import Answer
from pipeline.client.urls import is_local_url
from pipeline.store.versions import read_run_record
from pipeline.training.data import true_values

MAX_PLOT_POINTS = 2_000
"""Charts draw at most this many points (a fixed random sample); tables and metrics use all rows."""
MAX_3D_POINTS = 500
"""The 3-D view draws fewer: WebGL without a GPU (software rendering) takes seconds per thousand."""


def sample_index(count: int, limit: int = MAX_PLOT_POINTS) -> np.ndarray:
    """Indices of the points a chart draws: all of them up to ``limit``, else a fixed random
    sample of ``limit`` (the same one on every rerun), in row order."""
    if count <= limit:
        return np.arange(count)
    return np.sort(np.random.default_rng(0).choice(count, size=limit, replace=False))


def true_weights(version: int | None) -> tuple[list[float], float, str]:
    """The true ``w0``, ``b0`` the served version was trained against (its run record, read
    from this machine's model folder when the server is local), else the project defaults;
    and where they came from, for the caption."""
    if version is not None and is_local_url(session.serving_url()):
        record = read_run_record(session.base_path() / str(version))
        if record is not None and record.true is not None and len(record.true.w) == 2:
            return list(record.true.w), record.true.b, f"version {version}'s run record"
    settings = session.settings()
    return list(settings.true_w), settings.true_b, "the project defaults"


def rows_and_predictions(answer: Answer) -> tuple[np.ndarray, np.ndarray]:
    """The input rows ``(n, 2)`` and one prediction per row of a tutorial-model answer."""
    (values,) = answer.request.inputs.values()  # type: ignore[union-attr]
    x = np.asarray(values, dtype=np.float64)
    (output,) = answer.outputs.values()
    return x, np.asarray(tutorial.prediction_values(output, len(x)), dtype=np.float64)


def render_result(answer: Answer) -> None:
    """Predictions next to the truth, metrics, table and charts (sampled)."""
    x, predicted = rows_and_predictions(answer)
    w, b, source = true_weights(answer.version)
    true = true_values(x, w, b)
    residual = predicted - true
    finite = np.isfinite(predicted)
    if not finite.all():
        version = answer.version
        which = "the served version" if version is None else f"version {version}"
        st.error(f"The server answered NaN or infinity for {int((~finite).sum()):,} of {len(predicted):,} "
                 f"rows: {which} did not learn (a diverged run). Train again with a smaller learning rate "
                 "and serve that version.",
                 icon=":material/warning:")
    m1, m2, m3 = st.columns(3)
    m1.metric(f"Round trip ({answer.request.transport})", f"{answer.result.latency_s * 1000:.1f} ms")
    m2.metric("RMSE vs true", f"{float(np.sqrt(np.mean(residual ** 2))):.4g}")
    m3.metric("Max |residual|", f"{float(np.max(np.abs(residual))):.4g}")
    st.caption(f"Answered by {answer.answered_by} · {len(x):,} rows · true values use w0 = {w}, b0 = {b:g} "
               f"from {source}.")
    table = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "predicted": predicted, "true (x·w0 + b0)": true,
                          "residual": residual})
    st.dataframe(table, hide_index=True, key="predict_table")
    shown = sample_index(len(x))
    shown = shown[finite[shown]]
    shown_3d = shown[sample_index(len(shown), MAX_3D_POINTS)]
    if len(shown) < len(x):
        of_what = " of the finite answers" if not finite.all() else ""
        st.caption(f"Charts show {len(shown):,} of {len(x):,} points (a random sample{of_what}; the 3-D view "
                   f"{len(shown_3d):,}); the table and metrics use all rows.")
    left, right = st.columns(2)
    kept_plotly_chart(charts.predicted_vs_true_figure(true[shown], predicted[shown]),
                      key="predict_chart_scatter", where=left)
    kept_plotly_chart(charts.points_on_true_plane_figure(x[shown_3d], predicted[shown_3d], w, b),
                      key="predict_chart_plane", where=right)


def compare_truths(x: np.ndarray, versions: dict[str, int | None]) -> tuple[dict[str, np.ndarray], bool, str]:
    """Each compared answer's own truth for the rows ``x`` (by its name, from the version that
    answered), whether they are all the same, and a note saying which truths were used."""
    found = {name: true_weights(version) for name, version in versions.items()}
    truths = {name: true_values(x, w, b) for name, (w, b, _) in found.items()}
    if len({(tuple(w), b) for w, b, _ in found.values()}) == 1:
        w, b, source = next(iter(found.values()))
        return truths, True, f"Both were trained against w0 = {w}, b0 = {b:g} ({source})."
    parts = [f"{name}: w0 = {w}, b0 = {b:g} ({source})" for name, (w, b, source) in found.items()]
    return truths, False, ("They were trained against different truths, so each is compared with its own: "
                           + "; ".join(parts) + ".")
