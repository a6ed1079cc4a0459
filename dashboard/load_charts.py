"""The Load page's charts, as pure functions: levels of one or more runs in, a Plotly figure out.

A level is the JSON of `pipeline.loadtest.results.LevelResult` (``concurrency``, ``rate``,
``requests_per_second``, ``ok_per_second``, ``p50_ms``...); the x axis is the concurrency (or the
open-loop rate), on a log scale when the levels span more than a factor of ten, as sweeps usually
double. No Streamlit here (unit-tested in ``tests/unit/test_load_charts.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from dashboard.charts import _panel_layout, tick_label

Level = Mapping[str, Any]
PERCENTILES = {"p50_ms": "p50", "p90_ms": "p90", "p99_ms": "p99", "max_ms": "max"}
RUN_COLORS = ("#FF6F00", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#d62728")
ERROR_COLORS = ("#D32F2F", "#F57C00", "#7B1FA2", "#5D4037", "#455A64", "#C2185B")


def x_of(level: Level) -> float:
    """Where a level sits on the x axis: its open-loop rate, else its concurrency."""
    return float(level["rate"]) if level.get("rate") else float(level["concurrency"])


def x_title(levels: Sequence[Level]) -> str:
    return "requests per second asked (open loop)" if any(lv.get("rate") for lv in levels) else \
        "concurrency (clients, closed loop)"


def _x_axis(fig: go.Figure, xs: Sequence[float]) -> None:
    positive = sorted({x for x in xs if x > 0})
    if len(positive) > 1 and positive[-1] / positive[0] > 10:
        fig.update_xaxes(type="log", tickvals=positive, ticktext=[tick_label(x) for x in positive])
    else:
        fig.update_xaxes(tickvals=positive, ticktext=[tick_label(x) for x in positive])


def throughput_figure(runs: Mapping[str, Sequence[Level]], ceiling: bool = True) -> go.Figure:
    """Requests/s answered (and answered OK, when some failed) against the level, one line per run;
    with one run, the generator's ceiling at each level as a dotted line."""
    fig = go.Figure()
    xs: list[float] = []
    for index, (name, levels) in enumerate(runs.items()):
        ordered = sorted(levels, key=x_of)
        x = [x_of(lv) for lv in ordered]
        xs += x
        color = RUN_COLORS[index % len(RUN_COLORS)]
        fig.add_trace(go.Scatter(x=x, y=[lv["requests_per_second"] for lv in ordered], name=f"{name} req/s",
                                 mode="lines+markers", line={"color": color}))
        if any(lv["errors"] for lv in ordered):
            fig.add_trace(go.Scatter(x=x, y=[lv["ok_per_second"] for lv in ordered], name=f"{name} OK/s",
                                     mode="lines+markers", line={"color": color, "dash": "dash"}))
        ceilings = [(xv, lv.get("generator_ceiling_rps")) for xv, lv in zip(x, ordered, strict=True)]
        if ceiling and len(runs) == 1 and any(c for _, c in ceilings):
            shown = [(xv, c) for xv, c in ceilings if c]
            fig.add_trace(go.Scatter(x=[xv for xv, _ in shown], y=[c for _, c in shown], mode="lines+markers",
                                     name="the generator's ceiling (do-nothing server)",
                                     line={"color": "#9E9E9E", "dash": "dot"}))
    _x_axis(fig, xs)
    all_levels = [lv for levels in runs.values() for lv in levels]
    fig = _panel_layout(fig, "Throughput", x_title(all_levels), "requests per second")
    fig.update_yaxes(rangemode="tozero")
    return fig


def latency_figure(runs: Mapping[str, Sequence[Level]], p99_target_ms: float | None = None) -> go.Figure:
    """Latency percentiles against the level: p50, p90, p99 and max for one run; p50 and p99 per run
    when comparing. The p99 target, when given, as a horizontal line."""
    fig = go.Figure()
    xs: list[float] = []
    single = len(runs) == 1
    for index, (name, levels) in enumerate(runs.items()):
        ordered = [lv for lv in sorted(levels, key=x_of) if lv.get("p50_ms") is not None]
        x = [x_of(lv) for lv in ordered]
        xs += x
        keys = PERCENTILES if single else {"p50_ms": "p50", "p99_ms": "p99"}
        for key, label in keys.items():
            style: dict[str, Any] = {"dash": {"p50_ms": "solid", "p90_ms": "dashdot", "p99_ms": "dash",
                                              "max_ms": "dot"}[key]}
            if not single:
                style["color"] = RUN_COLORS[index % len(RUN_COLORS)]
            fig.add_trace(go.Scatter(x=x, y=[lv[key] for lv in ordered], mode="lines+markers",
                                     name=label if single else f"{name} {label}", line=style))
    if p99_target_ms:
        fig.add_hline(y=p99_target_ms, line={"color": "#D32F2F", "dash": "dot"},
                      annotation_text=f"p99 target {p99_target_ms:g} ms", annotation_position="top left")
    _x_axis(fig, xs)
    all_levels = [lv for levels in runs.values() for lv in levels]
    fig = _panel_layout(fig, "Latency (client side)", x_title(all_levels), "milliseconds")
    fig.update_yaxes(rangemode="tozero")
    return fig


def errors_figure(levels: Sequence[Level]) -> go.Figure:
    """Errors per level, stacked by kind (HTTP status, gRPC code, or no answer)."""
    ordered = sorted(levels, key=x_of)
    kinds = sorted({kind for lv in ordered for kind in lv.get("error_kinds", {})})
    fig = go.Figure()
    labels = [tick_label(x_of(lv)) for lv in ordered]
    for index, kind in enumerate(kinds):
        counts = [lv.get("error_kinds", {}).get(kind, 0) for lv in ordered]
        color = ERROR_COLORS[index % len(ERROR_COLORS)]
        fig.add_trace(go.Bar(x=labels, y=counts, name=kind, marker={"color": color}))
    if not kinds:
        fig.add_trace(go.Bar(x=labels, y=[0] * len(labels), name="no errors", marker={"color": "#2ca02c"}))
        fig.add_annotation(text="no errors", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
                           font={"size": 16, "color": "#2ca02c"})
        fig.update_yaxes(range=[0, 1])
    fig.update_layout(barmode="stack")
    fig = _panel_layout(fig, "Errors", x_title(ordered), "requests")
    fig.update_xaxes(type="category")
    return fig


def rounded(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.3g}")


def breakdown_frame(level: Level) -> pd.DataFrame:
    """The server's breakdown of one level as a table: stage, mean, p50, p99 (ms or rows, three
    significant digits), count, and the metric it was read from."""
    server = level.get("server") or {}
    rows = []
    for stage in [*server.get("stages", []), *server.get("other", [])]:
        unit = stage.get("unit", "ms")
        rows.append({"stage": stage["title"] + ("" if stage.get("per_model", True) else " (all models)"),
                     "mean": rounded(stage.get("mean")), "p50": rounded(stage.get("p50")),
                     "p99": rounded(stage.get("p99")),
                     "unit": unit, "observed": int(stage.get("count") or 0),
                     "metric": stage.get("metric", "")})
    return pd.DataFrame(rows, columns=["stage", "mean", "p50", "p99", "unit", "observed", "metric"])


def breakdown_figure(levels: Sequence[Level]) -> go.Figure:
    """Mean time per server stage at each level (ms), beside the client's mean latency: where the
    time goes as the load grows. Sizes (rows) are left to the table."""
    ordered = sorted(levels, key=x_of)
    labels = [tick_label(x_of(lv)) for lv in ordered]
    stages: dict[str, list[float | None]] = {}
    for position, lv in enumerate(ordered):
        server = lv.get("server") or {}
        for stage in [*server.get("stages", []), *server.get("other", [])]:
            if stage.get("unit") != "ms":
                continue
            stages.setdefault(stage["title"], [None] * len(ordered))[position] = stage.get("mean")
    fig = go.Figure()
    for index, (title, means) in enumerate(stages.items()):
        color = RUN_COLORS[index % len(RUN_COLORS)]
        fig.add_trace(go.Bar(x=labels, y=means, name=title, marker={"color": color}))
    fig.add_trace(go.Scatter(x=labels, y=[lv.get("mean_ms") for lv in ordered], mode="lines+markers",
                             name="client's mean latency", line={"color": "#424242", "dash": "dot"}))
    fig.update_layout(barmode="group")
    fig = _panel_layout(fig, "Server breakdown (mean per stage)", x_title(ordered), "milliseconds")
    fig.update_xaxes(type="category")
    return fig


def comparison_figure(results: Sequence[tuple[str, Sequence[Level]]], p99_target_ms: float) -> go.Figure:
    """The batching comparison: OK requests/s per setting at each level, bars marked where p99
    missed the target or errors happened."""
    fig = go.Figure()
    all_levels = [lv for _, levels in results for lv in levels]
    labels_all = [tick_label(x) for x in sorted({x_of(lv) for lv in all_levels})]
    for index, (name, levels) in enumerate(results):
        ordered = sorted(levels, key=x_of)
        met = [lv.get("p99_ms") is not None and lv["p99_ms"] <= p99_target_ms and not lv["errors"]
               for lv in ordered]
        fig.add_trace(go.Bar(
            x=[tick_label(x_of(lv)) for lv in ordered], y=[lv["ok_per_second"] for lv in ordered], name=name,
            marker={"color": RUN_COLORS[index % len(RUN_COLORS)],
                    "pattern": {"shape": ["" if ok else "x" for ok in met]}},
            hovertext=[f"p99 {lv['p99_ms']:.2f} ms" if lv.get("p99_ms") is not None else "no answer"
                       for lv in ordered]))
    fig.update_layout(barmode="group")
    fig = _panel_layout(fig, f"OK requests/s per setting (crossed: p99 above {p99_target_ms:g} ms or errors)",
                        x_title(all_levels), "requests per second")
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=labels_all)
    return fig
