"""The Traffic page's charts (`dashboard/traffic_charts.py`): the traces a user sees and their values."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from dashboard import traffic_charts


def test_the_timeline_splits_ok_and_failed_requests_and_leaves_out_unknown_times():
    times = [datetime(2025, 1, 1, 0, 0, s, tzinfo=UTC) for s in range(4)] + [None]
    fig = traffic_charts.timeline_figure(times, [1.0, 2.0, None, 4.0, 5.0], [True, False, True, True, True])
    assert [t.name for t in fig.data] == ["OK", "failed"]
    assert list(fig.data[0].y) == [1.0, 4.0] and list(fig.data[1].y) == [2.0]
    assert fig.layout.yaxis.title.text == "latency (ms)"


def test_differences_are_coloured_by_agreement_in_the_order_given():
    labels = ["r1", "r2", "r3", "r4"]
    fig = traffic_charts.differences_figure(labels, [math.inf, 3.0, 1e-9, 0.0], tolerance=1e-6)
    by_name = {t.name: t for t in fig.data}
    assert set(by_name) == {"agrees", "differs", "not comparable"}
    assert list(by_name["differs"].x) == ["r2"] and list(by_name["differs"].y) == [3.0]
    assert list(by_name["agrees"].x) == ["r3", "r4"]
    assert list(by_name["not comparable"].y) == [3.0 * 1.15]  # drawn at the top of the axis
    assert list(fig.layout.xaxis.categoryarray) == labels
    assert fig.layout.shapes[0].y0 == 1e-6  # the tolerance line


def test_all_agreeing_has_no_other_traces():
    fig = traffic_charts.differences_figure(["a", "b"], [0.0, 0.0], tolerance=0.5)
    assert [t.name for t in fig.data] == ["agrees"]


def test_latency_boxes_name_each_side():
    fig = traffic_charts.latency_figure([1.0, 2.0], [3.0], "version 1", "version 2")
    assert [(t.name, list(t.y)) for t in fig.data] == [("version 1", [1.0, 2.0]), ("version 2", [3.0])]


def test_requests_that_cannot_be_compared_stand_at_1_when_nothing_else_has_a_scale():
    fig = traffic_charts.differences_figure(["a", "b"], [math.inf, math.inf], tolerance=1e-6)
    [trace] = fig.data
    assert trace.name == "not comparable" and list(trace.y) == [1.0, 1.0]
