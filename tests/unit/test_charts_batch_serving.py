"""The Batch page's sample scatter and the Serving page's traffic charts: pure functions, checked by
their traces, ranges and axes."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from dashboard.charts import (
    MAX_TICKS,
    MIN_TIME_SPAN,
    batch_predictions_figure,
    latency_figure,
    traffic_figure,
)


def test_the_batch_scatter_holds_every_point_with_the_identity_line_and_few_ticks() -> None:
    rng = np.random.default_rng(3)
    truth = rng.uniform(-40, 40, 1000)
    predicted = truth + rng.normal(0, 0.5, 1000)
    predicted[0] = 95.0  # one far-off point is drawn, not clipped
    fig = batch_predictions_figure(truth, predicted)
    line, points = fig.data
    assert line.name == "perfect model (y = x)" and list(line.x) == list(line.y)
    assert points.name == "1,000 scored rows" and len(points.x) == 1000
    for axis in (fig.layout.xaxis, fig.layout.yaxis):
        low, high = axis.range
        assert low < min(truth.min(), predicted.min()) and high > max(truth.max(), predicted.max())
        assert axis.nticks == MAX_TICKS
    assert tuple(fig.layout.xaxis.range) == tuple(fig.layout.yaxis.range)  # y = x is the diagonal


def _rows(requests: float, errors: float, p99: float | None = None) -> list[dict]:
    return [{"time": 1_700_000_000 + 2 * i, "requests/s": requests, "errors/s": errors,
             "p50 ms": p99 and p99 / 4, "p90 ms": p99 and p99 / 2, "p99 ms": p99} for i in range(5)]


def test_at_zero_traffic_the_requests_line_is_on_top_and_the_axis_reads_0_to_1() -> None:
    fig = traffic_figure(_rows(0.0, 0.0))
    errors, requests = fig.data  # drawn last = drawn on top
    assert requests.name == "requests/s" and requests.line.dash is None
    assert errors.name == "errors/s" and errors.line.dash == "dot" and errors.line.width < requests.line.width
    assert fig.layout.yaxis.range[0] == 0 and fig.layout.yaxis.range[1] >= 1  # not a 0.000000 axis
    assert fig.layout.yaxis.tickformat == ",.3~g"
    assert fig.layout.xaxis.title.text == "time (UTC)"


def test_the_traffic_axis_holds_the_busiest_interval() -> None:
    fig = traffic_figure(_rows(250.0, 4.0))
    assert fig.layout.yaxis.range[1] > 250


def test_the_first_interval_after_a_start_is_drawn_as_points() -> None:
    """One interval: a line through one point draws nothing, so the chart would look empty."""
    errors, requests = traffic_figure(_rows(1.0, 0.0)[:1]).data
    assert requests.mode == errors.mode == "markers" and requests.marker.size > errors.marker.size
    assert all(t.mode == "lines" for t in traffic_figure(_rows(1.0, 0.0)).data)


def test_a_short_series_is_drawn_on_a_minute_ending_at_its_last_reading() -> None:
    """One reading (or a few seconds of them) stretched over the whole axis reads the same second
    at every tick; a minute of axis gives ticks that differ."""
    for figure in (traffic_figure, latency_figure):
        one = figure(_rows(1.0, 0.0, p99=3.0)[:1])
        low, high = (datetime.fromisoformat(str(t)) for t in one.layout.xaxis.range)
        reading = datetime.fromtimestamp(1_700_000_000, UTC).replace(tzinfo=None)
        assert high - low == MIN_TIME_SPAN and low < reading < high
        assert figure(_rows(1.0, 0.0, p99=3.0)).layout.xaxis.range is not None  # 8 s: still a minute
    long = [{"time": 1_700_000_000 + 2 * i, "requests/s": 1.0, "errors/s": 0.0} for i in range(60)]
    assert traffic_figure(long).layout.xaxis.range is None  # two minutes: Plotly's own range


def test_latency_percentiles_are_shades_of_one_colour_none_red() -> None:
    fig = latency_figure(_rows(10.0, 0.0, p99=12.0))
    assert [t.name for t in fig.data] == ["p50", "p90", "p99"]
    colors = [t.line.color for t in fig.data]
    assert len(set(colors)) == 3 and "#d62728" not in colors
    assert fig.layout.yaxis.range[1] > 12.0
    quiet = latency_figure(_rows(0.0, 0.0, p99=None))
    assert all(v is None for t in quiet.data for v in t.y)  # a gap, not a line at zero
