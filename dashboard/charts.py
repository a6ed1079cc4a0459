"""Every chart of the dashboard, as pure functions: plain data in, a Plotly figure out.

No Streamlit here, so each figure is unit-tested without a browser (``tests/unit/test_charts.py``)
and a page only decides *where* a chart goes. Parameters are named the way the run record
names them (``w`` is the list of weights, ``b`` the bias), and traces are named in the user's
words (``learned``, ``true``, ``OLS``) because those names are what the legend shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from pipeline.runs.report import param_names
from pipeline.store.run_record import RunRecord, RunStatus, Weights

PARAM_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")
"""One colour per parameter (w[0], w[1], ..., b), shared by the trajectory chart's lines
and their true-value guides so a line and its target read as a pair."""

SERIES_COLORS = {"learned": "#FF6F00", "true": "#2ca02c", "OLS": "#1f77b4"}

X_RANGE = (-10.0, 10.0)
"""The interval the synthetic inputs are drawn from (``pipeline.training.data.X_LOW/X_HIGH``); the
3-D planes span it so they cover exactly the data."""


def _params(weights: Weights) -> list[float]:
    """``w`` and ``b`` flattened to ``[*w, b]``."""
    return [float(v) for v in weights.flat]


OFF_SCALE = 1e3
"""Values more than this many times the largest reference value (at least 1) are off the scale: a
diverged run's weights (1e22) would flatten the truth and OLS to nothing."""


def off_scale(values: Sequence[float], reference: Sequence[float]) -> bool:
    """True when any value is not finite or beyond :data:`OFF_SCALE` times the reference's size."""
    limit = OFF_SCALE * max([1.0, *(abs(float(r)) for r in reference if np.isfinite(float(r)))])
    return any(not np.isfinite(float(v)) or abs(float(v)) > limit for v in values)


def _scale_to(fig: go.Figure, reference: Sequence[float], note: str) -> None:
    """Keep the y axis on the ``reference`` values (and 0), padded, and say what is beyond it."""
    finite = [float(r) for r in reference if np.isfinite(float(r))] or [0.0]
    low, high = min(0.0, *finite), max(0.0, *finite)
    pad = 0.25 * (high - low) or 1.0
    fig.update_yaxes(range=[low - pad, high + pad], autorange=False)
    fig.add_annotation(text=note, xref="paper", yref="paper", x=0.0, y=1.0, xanchor="left", yanchor="bottom",
                       showarrow=False, font={"color": "#d62728"})


def short_number(value: float) -> str:
    """``-5.455917293775379e+22`` -> ``-5.46e22``, ``12345.6`` -> ``12,346``, ``1.98765`` -> ``1.988``,
    ``nan`` -> ``NaN``: short, never a 23-digit number."""
    if not np.isfinite(value):
        return "NaN" if np.isnan(value) else ("∞" if value > 0 else "−∞")
    if abs(value) < 1e4:
        return f"{value:,.4g}"
    if abs(value) < 1e6:
        return f"{value:,.0f}"
    mantissa, exponent = f"{value:.3g}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _layout(fig: go.Figure, title: str, x_title: str, y_title: str, height: int = 340) -> go.Figure:
    fig.update_layout(
        title=title, xaxis_title=x_title, yaxis_title=y_title, height=height,
        margin={"l": 10, "r": 10, "t": 50, "b": 10}, legend={"orientation": "h", "y": -0.2},
    )
    return fig


LEGEND_ROOM_PX = 100
"""Space under a Train/Models chart's plot area for the x-axis title and a legend of up to
three rows, so the legend never covers the axis title, even three charts abreast at 1024 px."""


def _panel_layout(fig: go.Figure, title: str, x_title: str, y_title: str, height: int = 380) -> go.Figure:
    """The layout of the Train and Models pages' 2-D charts: the legend sits at the bottom of the
    figure (``yref="container"``), below the x-axis title rather than on it, in a margin sized
    for it; tick labels are laid out automatically so none is clipped."""
    fig.update_layout(
        title={"text": title, "x": 0.0, "xanchor": "left"}, xaxis_title=x_title, yaxis_title=y_title,
        height=height, margin={"l": 10, "r": 10, "t": 50, "b": LEGEND_ROOM_PX},
        legend={"orientation": "h", "yref": "container", "y": 0.0, "yanchor": "bottom", "x": 0.0},
    )
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    return fig


MAX_LOG_TICKS = 7
"""More ticks than this on a log axis pile into an unreadable smear."""


def log_ticks(values: Sequence[float], max_ticks: int = MAX_LOG_TICKS) -> list[float]:
    """Tick values for a log axis covering ``values`` (positives only), at most ``max_ticks``:
    1, 2, 5, 10, 20, 50, ... when the values span a decade or two, every power of ten over a
    wider span, and every 2nd, 3rd, ... power of ten over many decades (a loss that falls from
    1e9 to 1e-12 on noise-free data). Plain numbers instead of Plotly's per-digit minor labels."""
    positive = [v for v in values if v > 0 and np.isfinite(v)]
    if not positive:
        return []
    low, high = int(np.floor(np.log10(min(positive)))), int(np.ceil(np.log10(max(positive))))
    ticks = [m * 10.0**e for e in range(low, high + 1) for m in (1, 2, 5)]
    inside = [t for t in ticks if min(positive) / 2 <= t <= max(positive) * 2]
    if len(inside) > max_ticks:
        step = max(1, int(np.ceil((high - low + 1) / max_ticks)))
        inside = [10.0**e for e in range(low, high + 1) if (e - low) % step == 0]
    return [float(f"{t:.6g}") for t in inside]


def tick_label(value: float) -> str:
    """``0.05`` -> ``0.05``, ``20000`` -> ``20,000``, ``1e-07`` -> ``1e-7``, ``1e9`` -> ``1e9``:
    short, with thousands separators where a plain number is readable."""
    if 1e-3 <= abs(value) < 1e6:
        return f"{value:,g}"
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _log_axis(fig: go.Figure, values: Sequence[float]) -> None:
    ticks = log_ticks(values)
    fig.update_yaxes(type="log", tickvals=ticks, ticktext=[tick_label(t) for t in ticks])


def loss_curve_figure(history: Sequence[Mapping[str, Any]], noise: float | None = None) -> go.Figure:
    """Training loss (MSE) per epoch on a log axis, so both the first steep epochs and the
    last small improvements are visible.

    With ``noise`` (the data's noise std) a dashed line marks ``noise²``: the MSE even the
    true weights reach on noisy data, so a user sees how close to "done" the loss is.
    """
    epochs = [int(h["epoch"]) for h in history]
    losses = [float(h["loss"]) for h in history]
    fig = go.Figure(go.Scatter(x=epochs, y=losses, mode="lines+markers", name="loss (MSE)",
                               line={"color": SERIES_COLORS["learned"]}, marker={"size": 4}))
    if noise is not None and noise > 0 and epochs:
        floor = noise**2
        fig.add_trace(go.Scatter(x=[min(epochs), max(epochs)], y=[floor, floor], mode="lines",
                                 name=f"noise floor σ² = {floor:.4g}",
                                 line={"dash": "dash", "color": "gray"}))
    _log_axis(fig, [*losses, *([noise**2] if noise else [])])
    return _panel_layout(fig, "Training loss per epoch", "epoch", "loss (MSE, log scale)")


def weights_trajectory_figure(
    history: Sequence[Mapping[str, Any]], true_w: Sequence[float], true_b: float
) -> go.Figure:
    """Each parameter's value after every epoch (solid) next to its true value (dashed, same
    colour): the picture of the weights moving toward the truth while a run trains."""
    features = len(true_w)
    epochs = [int(h["epoch"]) for h in history]
    truth = [float(v) for v in true_w] + [float(true_b)]
    span = [min(epochs, default=0), max(epochs, default=1)]
    fig = go.Figure()
    everything = []
    for i, name in enumerate(param_names(features)):
        color = PARAM_COLORS[i % len(PARAM_COLORS)]
        values = [float(h["w"][i]) if i < features else float(h["b"]) for h in history]
        everything += values
        fig.add_trace(go.Scatter(x=epochs, y=values, mode="lines", name=name, line={"color": color}))
        fig.add_trace(go.Scatter(x=span, y=[truth[i], truth[i]], mode="lines", name=f"true {name}",
                                 line={"color": color, "dash": "dash", "width": 1}))
    if off_scale(everything, truth):
        _scale_to(fig, truth, "weights went off the scale: the run diverged")
    return _panel_layout(fig, "Weights per epoch", "epoch", "value (dashed: true)")


def learned_vs_true_figure(learned: Weights, true: Weights, ols: Weights | None = None) -> go.Figure:
    """Grouped bars per parameter: learned, true and (if known) OLS, the best fit any linear
    model can reach on this very sample. Learned bars next to OLS bars show whether training
    converged; the gap to the true bars is what the noise leaves."""
    names = param_names(len(learned.w))
    series = [("learned", learned), ("true", true)] + ([("OLS", ols)] if ols is not None else [])
    fig = go.Figure([
        go.Bar(x=names, y=_params(values), name=label, marker_color=SERIES_COLORS[label],
               hovertemplate="%{x}: %{y:.4g}")
        for label, values in series
    ])
    fig.update_layout(barmode="group")
    references = [*_params(true), *(_params(ols) if ols is not None else [])]
    if off_scale(_params(learned), references):
        shown = ", ".join(f"{n} {short_number(v)}" for n, v in zip(names, _params(learned), strict=True))
        _scale_to(fig, references, f"learned off the scale ({shown}): the run diverged")
    return _panel_layout(fig, "Learned vs true vs OLS", "parameter", "value")


def plane_grid(w: Sequence[float], b: float, steps: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x0, x1, z)`` grids of the plane ``z = w[0]·x0 + w[1]·x1 + b`` over the data's range."""
    axis = np.linspace(X_RANGE[0], X_RANGE[1], steps)
    x0, x1 = np.meshgrid(axis, axis)
    return x0, x1, float(w[0]) * x0 + float(w[1]) * x1 + float(b)


def data_planes_figure(
    x: np.ndarray, y: np.ndarray, true_w: Sequence[float], true_b: float,
    learned_w: Sequence[float] | None = None, learned_b: float | None = None,
) -> go.Figure:
    """The data as a 3-D point cloud with the true plane and, if given, the learned plane.

    Needs exactly two input features (a plane in 3-D); ``ValueError`` otherwise, so a page
    can say why the view is missing instead of drawing something wrong. The caller decides
    how many points to pass (a few thousand keep the browser responsive).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.ndim != 2 or x.shape[1] != 2 or len(true_w) != 2:
        raise ValueError(f"a 3-D view needs exactly 2 input features, this data has {len(true_w)}")
    fig = go.Figure(go.Scatter3d(x=x[:, 0], y=x[:, 1], z=y, mode="markers", name=f"data ({len(y):,} points)",
                                 marker={"size": 2, "color": "#555555", "opacity": 0.6}))
    # two planes that (nearly) coincide would blend into one colour: each gets its own colour
    # and opacity plus a solid (true) or dashed (learned) outline, so both stay visible
    planes = [("true plane", true_w, true_b, SERIES_COLORS["true"], 0.35, "solid")]
    title = "Data and fitted planes"
    if learned_w is not None and learned_b is not None:
        if off_scale([*learned_w, learned_b], [*true_w, true_b]):  # it would flatten the data to a line
            title = "Data and true plane (the learned plane is off the scale: the run diverged)"
        else:
            planes.append(("learned plane", learned_w, learned_b, SERIES_COLORS["learned"], 0.55, "dash"))
    for name, w, b, color, opacity, dash in planes:
        x0, x1, z = plane_grid(w, b)
        fig.add_trace(go.Surface(x=x0, y=x1, z=z, name=name, showscale=False, opacity=opacity,
                                 colorscale=[[0, color], [1, color]], showlegend=True, legendgroup=name))
        ring = [(0, 0), (0, 1), (1, 1), (1, 0), (0, 0)]
        fig.add_trace(go.Scatter3d(x=[x0[i, j] for i, j in ring], y=[x1[i, j] for i, j in ring],
                                   z=[z[i, j] for i, j in ring], mode="lines", name=f"{name} outline",
                                   line={"color": color, "width": 5, "dash": dash}, showlegend=False,
                                   legendgroup=name, hoverinfo="skip"))
    _plane_layout(fig, title, 600, ("x1", "x2"))
    span = float(np.ptp(y)) if y.size and np.all(np.isfinite(y)) else 0.0
    fig.update_layout(margin={"l": 10, "r": 10, "t": 50, "b": 40},
                      scene={"camera": {"eye": face_on_eye(true_w, span)},
                             "xaxis": {"nticks": 5}, "yaxis": {"nticks": 5}, "zaxis": {"nticks": 6}},
                      legend={"orientation": "h", "yref": "container", "y": 0.0, "yanchor": "bottom"})
    return fig


def face_on_eye(w: Sequence[float], z_span: float, distance: float = 2.5) -> dict[str, float]:
    """A camera position that sees the plane ``z = w·x + b`` from about 50° off its surface,
    never edge-on: the plane's normal in the cube-scaled scene, tilted sideways along the plane.

    With ``aspectmode="cube"`` each axis spans the same length on screen, so a slope of ``w``
    over the x range (20) against the z range (``z_span``) is what the camera sees.
    """
    scale = (X_RANGE[1] - X_RANGE[0]) / z_span if z_span > 0 else 0.0
    a, c = float(w[0]) * scale, float(w[1]) * scale
    normal = np.array([-a, -c, 1.0]) / np.sqrt(a * a + c * c + 1.0)
    side = np.array([c, -a, 0.0])
    length = float(np.linalg.norm(side))
    side = side / length if length > 1e-9 else np.array([1.0, -1.0, 0.0]) / np.sqrt(2.0)
    eye = normal + 0.9 * side
    eye = eye / np.linalg.norm(eye) * distance
    return {"x": float(eye[0]), "y": float(eye[1]), "z": float(eye[2])}


def compare_versions_weights_figure(
    versions: Sequence[tuple[str, Weights]], true: Weights | None = None
) -> go.Figure:
    """Grouped bars per parameter for each ``(label, weights)`` in ``versions`` (e.g.
    ``("version 2", learned)``), plus the true values when given: two versions side by side."""
    if not versions:
        raise ValueError("nothing to compare: no versions given")
    names = param_names(len(versions[0][1].w))
    fig = go.Figure()
    for i, (label, weights) in enumerate(versions):
        fig.add_trace(go.Bar(x=names, y=_params(weights), name=label,
                             marker_color=PARAM_COLORS[(i + 3) % len(PARAM_COLORS)]))
    if true is not None:
        fig.add_trace(go.Bar(x=names, y=_params(true), name="true", marker_color=SERIES_COLORS["true"]))
    fig.update_layout(barmode="group")
    return _panel_layout(fig, "Weights side by side", "parameter", "value")


ERROR_SERIES = (("vs_true", "max |learned − true|", "#FF6F00", "circle"),
                ("vs_ols", "max |learned − OLS|", "#1f77b4", "diamond"))
"""The two error series: distinct colours and marker shapes (the theme's two blues read as one)."""
DATE_TICKS = [{"dtickrange": [None, 60_000], "value": "%H:%M:%S"},
              {"dtickrange": [60_000, 86_400_000], "value": "%-d %b %H:%M"},
              {"dtickrange": [86_400_000, None], "value": "%-d %b"}]
"""Tick labels as precise as the tick spacing: seconds when ticks are under a minute apart, so two
ticks never share a label ("7 Dec 01:06" twice)."""


def run_errors_figure(records: Sequence[RunRecord]) -> go.Figure:
    """Each finished run's error vs the truth and vs OLS (log axis) at the time it started,
    oldest first; hovering shows the run id and the version it became: which runs learned
    well, at a glance. Runs without errors (failed before training, or still running) are left
    out; a failed run (diverged: errors of 1e22) is a red cross on the top edge, with its value on
    hover, so it does not squash the others. Times are in the zone the tables use, named on the axis."""
    done = [r for r in sorted(records, key=lambda r: r.id) if r.errors is not None]
    ok = [r for r in done if r.status is not RunStatus.FAILED]
    failed = [r for r in done if r.status is RunStatus.FAILED]

    def labels(runs: Sequence[RunRecord]) -> list[str]:
        return [f"run {r.id}" + (f", version {r.version}" if r.version is not None else "") for r in runs]

    when = [_local_time(r.started) or r.id for r in ok]
    fig = go.Figure([
        go.Scatter(x=when, y=[float(getattr(r.errors, key)) for r in ok], mode="markers", name=name,
                   text=labels(ok), marker={"color": color, "symbol": symbol, "size": 9},
                   hovertemplate="%{text}<br>%{y:.4g}<extra>%{fullData.name}</extra>")
        for key, name, color, symbol in ERROR_SERIES
    ])
    values = [v for r in ok for key, *_ in ERROR_SERIES if (v := float(getattr(r.errors, key))) > 0
              and np.isfinite(v)] or [1.0]
    ticks = log_ticks(values)
    low, high = min([*ticks, *values]) / 2, max([*ticks, *values]) * 2
    fig.update_yaxes(type="log", tickvals=ticks, ticktext=[tick_label(t) for t in ticks],
                     range=[np.log10(low), np.log10(high)])
    if failed:
        fig.add_trace(go.Scatter(
            x=[_local_time(r.started) or r.id for r in failed], y=[high] * len(failed), mode="markers",
            name="failed run (error off the scale)", marker={"color": "#d62728", "symbol": "x", "size": 11},
            text=[f"{label} failed<br>max |learned − true| = {short_number(r.errors.vs_true)}"
                  for label, r in zip(labels(failed), failed, strict=True)],
            hovertemplate="%{text}<extra></extra>", cliponaxis=False))
    fig.update_xaxes(tickformatstops=DATE_TICKS)
    return _panel_layout(fig, "Errors per run", f"started ({_zone_name()})", "error (log scale)")


def _zone_name() -> str:
    """The name of this machine's time zone, as the run tables print it (``UTC``, ``CET``)."""
    return datetime.now(UTC).astimezone().tzname() or "local time"


def _local_time(iso: str | None) -> datetime | None:
    """An ISO time as a naive local datetime (Plotly draws those as readable dates), or None."""
    try:
        when = datetime.fromisoformat(str(iso))
    except (TypeError, ValueError):
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone().replace(tzinfo=None)


# -- Predict page: served predictions against the noiseless truth -------------------------------------

def _identity_span(*series: Sequence[float]) -> list[float]:
    """``[lo, hi]`` covering every finite value given, padded a little (for the y = x line)."""
    values = np.concatenate([np.asarray(s, dtype=np.float64).reshape(-1) for s in series])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return [0.0, 1.0]
    lo, hi = float(values.min()), float(values.max())
    pad = 0.05 * (hi - lo) or 1.0
    return [lo - pad, hi + pad]


def _predicted_vs_true_traces(true: Sequence[float], predicted: Sequence[float], name: str,
                              color: str, size: int = 9) -> list[go.Scatter]:
    true_a = np.asarray(true, dtype=np.float64).reshape(-1)
    pred_a = np.asarray(predicted, dtype=np.float64).reshape(-1)
    if true_a.shape != pred_a.shape:
        raise ValueError(f"{len(true_a)} true values but {len(pred_a)} predictions")
    span = _identity_span(true_a, pred_a)
    pairs = enumerate(zip(true_a, pred_a, strict=True))
    rows = [f"row {i + 1}<br>residual {p - t:+.4g}" for i, (t, p) in pairs]
    return [
        go.Scatter(x=span, y=span, mode="lines", name="perfect model (y = x)",
                   line={"color": "gray", "dash": "dash", "width": 1}, hoverinfo="skip"),
        go.Scatter(x=true_a, y=pred_a, mode="markers", name=name, marker={"color": color, "size": size},
                   text=rows, hovertemplate="%{text}<br>true %{x:.4g}<br>predicted %{y:.4g}<extra></extra>"),
    ]


def predicted_vs_true_figure(true: Sequence[float], predicted: Sequence[float]) -> go.Figure:
    """Each row's served prediction (y) against what the true ``w0``/``b0`` give without noise
    (x), with the ``y = x`` line: points on the line are rows the model gets right, and the
    vertical distance to it is the row's residual. ``ValueError`` if the lengths differ."""
    fig = go.Figure(_predicted_vs_true_traces(true, predicted, "predictions", SERIES_COLORS["learned"]))
    return _layout(fig, "Predicted vs true value", "true value (x @ w0 + b0)", "predicted by the server")


MAX_TICKS = 8
"""Ticks per axis on a scatter of many points: more crowd the labels into each other."""


def batch_predictions_figure(true: Sequence[float], predicted: Sequence[float]) -> go.Figure:
    """The Batch page's sample: each scored row's prediction against its noiseless truth, with the
    ``y = x`` line, both axes over the same span holding every finite point (none clipped) and at
    most :data:`MAX_TICKS` ticks each. ``ValueError`` if the lengths differ."""
    traces = _predicted_vs_true_traces(true, predicted, f"{len(predicted):,} scored rows",
                                       SERIES_COLORS["learned"], size=5)
    span = _identity_span(true, predicted)
    fig = go.Figure(traces)
    fig.update_xaxes(range=span, nticks=MAX_TICKS)
    fig.update_yaxes(range=span, nticks=MAX_TICKS)
    return _panel_layout(fig, "Predicted vs true value", "true value (x @ w0 + b0, no noise)",
                         "prediction", height=420)


def points_on_true_plane_figure(x: Sequence[Sequence[float]] | np.ndarray, predicted: Sequence[float],
                                w: Sequence[float], b: float) -> go.Figure:
    """The input rows in 3-D at their predicted height, over the true plane ``x @ w + b``,
    with a vertical line from each point to the plane (its residual). The plane spans the
    data range and every row, so typed rows far outside it are still drawn over the plane.

    Needs exactly two input features; ``ValueError`` otherwise, or if lengths differ.
    """
    x = np.asarray(x, dtype=np.float64)
    pred = np.asarray(predicted, dtype=np.float64).reshape(-1)
    if x.ndim != 2 or x.shape[1] != 2 or len(w) != 2:
        raise ValueError(f"a 3-D view needs exactly 2 input features, got {x.shape[-1] if x.ndim else 0}")
    if len(x) != len(pred):
        raise ValueError(f"{len(x)} input rows but {len(pred)} predictions")
    true = x @ np.asarray(w, dtype=np.float64) + float(b)
    finite = x[np.isfinite(x).all(axis=1)]
    lo = min(X_RANGE[0], float(finite.min())) if finite.size else X_RANGE[0]
    hi = max(X_RANGE[1], float(finite.max())) if finite.size else X_RANGE[1]
    axis = np.linspace(lo, hi, 2)
    g0, g1 = np.meshgrid(axis, axis)
    plane = float(w[0]) * g0 + float(w[1]) * g1 + float(b)
    green = SERIES_COLORS["true"]
    fig = go.Figure(go.Surface(x=g0, y=g1, z=plane, name="true plane", showscale=False, opacity=0.5,
                               colorscale=[[0, green], [1, green]], showlegend=True))
    gaps: dict[str, list[float | None]] = {"x": [], "y": [], "z": []}
    for (x0, x1), t, p in zip(x, true, pred, strict=True):
        gaps["x"] += [x0, x0, None]
        gaps["y"] += [x1, x1, None]
        gaps["z"] += [t, p, None]
    fig.add_trace(go.Scatter3d(**gaps, mode="lines", name="residual", line={"color": "#d62728", "width": 4},
                               hoverinfo="skip"))
    fig.add_trace(go.Scatter3d(x=x[:, 0], y=x[:, 1], z=pred, mode="markers", name="predictions",
                               marker={"size": 5, "color": SERIES_COLORS["learned"]},
                               text=[f"row {i + 1}" for i in range(len(pred))],
                               hovertemplate="%{text}<br>x1 %{x:.4g}, x2 %{y:.4g}<br>predicted %{z:.4g}"
                               "<extra></extra>"))
    return _plane_layout(fig, "Predictions over the true plane", 520, ("x1", "x2"))


def compare_versions_figure(true: Sequence[float] | Mapping[str, Sequence[float]],
                            predictions: Mapping[str, Sequence[float]]) -> go.Figure:
    """One predicted-vs-true panel per version (``{"version 2": [...], "version 3": [...]}``),
    side by side on shared axes, so the same rows answered by two versions can be compared
    at a glance. ``true`` is one truth for every panel, or each version's own truth by the same
    labels (versions trained against different true weights). ``ValueError`` if there is nothing
    to compare or a length differs."""
    if not predictions:
        raise ValueError("nothing to compare: no predictions given")
    labels = list(predictions)
    truths = true if isinstance(true, Mapping) else dict.fromkeys(labels, true)
    span = _identity_span(*truths.values(), *predictions.values())
    fig = make_subplots(rows=1, cols=len(labels), shared_yaxes=True, subplot_titles=labels)
    for col, label in enumerate(labels, start=1):
        color = PARAM_COLORS[(col + 2) % len(PARAM_COLORS)]
        for trace in _predicted_vs_true_traces(truths[label], predictions[label], label, color):
            trace.showlegend = trace.name != "perfect model (y = x)" or col == 1
            fig.add_trace(trace, row=1, col=col)
        own = " (its own truth)" if isinstance(true, Mapping) else ""
        fig.update_xaxes(range=span, title_text=f"true value{own}", row=1, col=col)
    fig.update_yaxes(range=span, title_text="predicted", row=1, col=1)
    fig.update_layout(title="Same rows, two versions", height=380,
                      margin={"l": 10, "r": 10, "t": 70, "b": 10}, legend={"orientation": "h", "y": -0.25})
    return fig


def _plane_layout(fig: go.Figure, title: str, height: int, x_titles: tuple[str, str]) -> go.Figure:
    """The one layout of every 3-D data-and-plane view: a cube keeps x and y as wide as y is
    tall, and the camera looks along the planes' slope so a plane never shows edge-on."""
    fig.update_layout(
        title=title, height=height, margin={"l": 0, "r": 0, "t": 50, "b": 0},
        scene={"xaxis_title": x_titles[0], "yaxis_title": x_titles[1], "zaxis_title": "y",
               "aspectmode": "cube", "camera": {"eye": {"x": 1.5, "y": 1.5, "z": 0.7}}},
        legend={"orientation": "h", "y": -0.05},
    )
    return fig


# -- Serving page: traffic from the server's metrics ---------------------------------------------------

TRAFFIC_COLORS = {"requests/s": "#1f77b4", "errors/s": "#d62728"}
LATENCY_COLORS = {"p50 ms": "#9ecae1", "p90 ms": "#4292c6", "p99 ms": "#08306b"}
"""Latency percentiles in shades of one blue (darker is slower), so no percentile reads as an error."""


def _utc_times(rows: Sequence[Mapping[str, Any]]) -> list[datetime]:
    return [datetime.fromtimestamp(float(r["time"]), UTC).replace(tzinfo=None) for r in rows]


MIN_TIME_SPAN = timedelta(seconds=60)
"""A time series shorter than this is drawn on this much time, ending at its last reading: Plotly
would stretch one reading (or a few seconds) over the whole axis, every tick reading the same
second."""


def _time_series_layout(fig: go.Figure, y_title: str, top: float, times: Sequence[datetime]) -> go.Figure:
    """Compact time-series layout: the y axis from 0 to at least ``top`` with short tick labels
    (``0``, ``0.5``, ``1``; never ``0.000000``), UTC times over at least ``MIN_TIME_SPAN``, the legend
    under the plot."""
    fig.update_layout(height=240, margin={"l": 10, "r": 10, "t": 10, "b": 10},
                      legend={"orientation": "h", "yref": "container", "y": 0.0, "yanchor": "bottom"},
                      hovermode="x unified")
    fig.update_yaxes(title_text=y_title, range=[0, top * 1.1], tickformat=",.3~g", automargin=True)
    fig.update_xaxes(title_text="time (UTC)", tickformat="%H:%M:%S", automargin=True)
    if times and max(times) - min(times) < MIN_TIME_SPAN:
        end = max(times) + timedelta(seconds=2)  # the last marker whole, not cut at the edge
        fig.update_xaxes(range=[end - MIN_TIME_SPAN, end])
    return fig


def traffic_figure(rows: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Requests/s and errors/s per interval (``time`` in Unix seconds, as ``window_rows`` gives them).
    Requests are a solid line drawn on top; errors a thinner dotted red line beneath, so at zero
    traffic the line a reader sees is requests at 0, not errors. A single interval (the first one
    after a start) is drawn as points, since a line through one point is invisible."""
    times = _utc_times(rows)
    fig = go.Figure()
    mode = "lines" if len(rows) > 1 else "markers"
    styles = (("errors/s", {"width": 1.5, "dash": "dot"}, 6), ("requests/s", {"width": 2.5}, 8))
    for name, style, size in styles:
        fig.add_trace(go.Scatter(x=times, y=[float(r[name]) for r in rows], mode=mode, name=name,
                                 line={"color": TRAFFIC_COLORS[name], **style},
                                 marker={"color": TRAFFIC_COLORS[name], "size": size},
                                 hovertemplate="%{y:,.3~g}"))
    peak = max((float(r[k]) for r in rows for k in TRAFFIC_COLORS), default=0.0)
    return _time_series_layout(fig, "per second", max(1.0, peak), times)


def _finite_or_none(value: Any) -> float | None:
    return float(value) if value is not None and np.isfinite(float(value)) else None


def latency_figure(rows: Sequence[Mapping[str, Any]]) -> go.Figure:
    """p50, p90 and p99 latency (ms) per interval; an interval without requests is a gap."""
    times = _utc_times(rows)
    fig = go.Figure()
    values = []
    for name, color in LATENCY_COLORS.items():
        ys = [_finite_or_none(r.get(name)) for r in rows]
        values += [v for v in ys if v is not None]
        fig.add_trace(go.Scatter(x=times, y=ys, mode="lines+markers", name=name.replace(" ms", ""),
                                 line={"color": color, "width": 2}, marker={"size": 4},
                                 connectgaps=False, hovertemplate="%{y:,.3~g} ms"))
    return _time_series_layout(fig, "ms", max(values, default=1.0) or 1.0, times)
