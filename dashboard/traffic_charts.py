"""The Traffic page's charts, as pure functions: plain data in, a Plotly figure out (the same rule as
``dashboard/charts.py``, which is near its size limit), unit-tested in ``tests/unit/test_charts_traffic.py``.

- ``timeline_figure``: every request shown, latency against time, answered OK or not;
- ``differences_figure``: a replay's difference per request, largest first, against the tolerance;
  a request that cannot be compared (one side failed, other outputs) is drawn at the top of the
  axis (1.0 when no difference is finite) in its own colour;
- ``latency_figure``: a replay's latencies of side A and side B, side by side.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import plotly.graph_objects as go

OK_COLOR, FAILED_COLOR = "#1f77b4", "#d62728"
AGREE_COLOR, DIFFER_COLOR, NOT_COMPARABLE_COLOR = "#2ca02c", "#ff7f0e", "#d62728"
SIDE_COLORS = ("#1f77b4", "#9467bd")


def _layout(fig: go.Figure, title: str, x_title: str, y_title: str, height: int = 320) -> go.Figure:
    fig.update_layout(title={"text": title, "x": 0.0, "xanchor": "left"}, xaxis_title=x_title,
                      yaxis_title=y_title, height=height, margin={"l": 10, "r": 10, "t": 50, "b": 10},
                      legend={"orientation": "h", "y": -0.25})
    return fig


def timeline_figure(times: Sequence[datetime | None], latencies_ms: Sequence[float | None],
                    ok: Sequence[bool]) -> go.Figure:
    """Latency (ms) of each request over time, one trace for OK answers and one for the rest
    (requests without a time or a latency are left out)."""
    fig = go.Figure()
    for name, wanted, color in (("OK", True, OK_COLOR), ("failed", False, FAILED_COLOR)):
        points = [(t, ms) for t, ms, good in zip(times, latencies_ms, ok, strict=True)
                  if good == wanted and t is not None and ms is not None]
        if points:
            fig.add_trace(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="markers",
                                     name=name, marker={"color": color, "size": 6}))
    return _layout(fig, "Requests: latency over time", "time (UTC)", "latency (ms)", height=260)


def differences_figure(labels: Sequence[str], differences: Sequence[float], tolerance: float) -> go.Figure:
    """One bar per request, in the order given (largest first), coloured by agreement; infinite
    differences (not comparable) drawn at the top of the axis; the tolerance as a dashed line."""
    finite = [d for d in differences if math.isfinite(d) and d > 0]
    top = max(finite) * 1.15 if finite else 1.0
    groups = {"agrees": ([], [], AGREE_COLOR), "differs": ([], [], DIFFER_COLOR),
              "not comparable": ([], [], NOT_COMPARABLE_COLOR)}
    for label, difference in zip(labels, differences, strict=True):
        kind = "not comparable" if not math.isfinite(difference) else \
            "agrees" if difference <= tolerance else "differs"
        groups[kind][0].append(label)
        groups[kind][1].append(difference if math.isfinite(difference) else top)
    fig = go.Figure()
    for name, (xs, ys, color) in groups.items():
        if xs:
            fig.add_trace(go.Bar(x=xs, y=ys, name=name, marker_color=color))
    fig.add_hline(y=tolerance, line_dash="dash", line_color="gray",
                  annotation_text=f"tolerance {tolerance:g}", annotation_position="top right")
    fig.update_xaxes(categoryorder="array", categoryarray=list(labels), showticklabels=len(labels) <= 30)
    return _layout(fig, "Largest difference per request (A vs B)", "request", "largest |A − B|")


def latency_figure(a_ms: Sequence[float], b_ms: Sequence[float], name_a: str, name_b: str) -> go.Figure:
    """Box plots of each side's latencies (ms), with every point."""
    fig = go.Figure()
    for values, name, color in ((a_ms, name_a, SIDE_COLORS[0]), (b_ms, name_b, SIDE_COLORS[1])):
        fig.add_trace(go.Box(y=list(values), name=name, marker_color=color, boxpoints="all", jitter=0.3))
    return _layout(fig, "Latency of each side", "", "latency (ms)")
