"""The Load page's charts (dashboard/load_charts.py): what each figure draws from a run's levels."""

from __future__ import annotations

from dashboard import load_charts


def level(concurrency: int, rps: float, p99: float, errors: dict[str, int] | None = None,
          rate: float | None = None, ceiling: float | None = None, server: dict | None = None) -> dict:
    errors = errors or {}
    return {"concurrency": concurrency, "rate": rate, "requests_per_second": rps,
            "ok_per_second": rps - sum(errors.values()), "p50_ms": p99 / 3, "p90_ms": p99 / 2, "p99_ms": p99,
            "max_ms": p99 * 2, "mean_ms": p99 / 2.5, "errors": sum(errors.values()), "error_kinds": errors,
            "generator_ceiling_rps": ceiling, "server": server}


SWEEP = [level(32, 6000, 12, ceiling=20000), level(1, 1000, 1, ceiling=8000),
         level(8, 4000, 4, ceiling=15000)]


def test_throughput_is_drawn_against_concurrency_with_the_generators_ceiling() -> None:
    fig = load_charts.throughput_figure({"this run": SWEEP})
    names = [trace.name for trace in fig.data]
    assert names == ["this run req/s", "the generator's ceiling (do-nothing server)"]
    assert list(fig.data[0].x) == [1, 8, 32] and list(fig.data[0].y) == [1000, 4000, 6000]
    assert fig.layout.xaxis.type == "log"  # 1 to 32 spans more than a factor of ten
    assert "concurrency" in fig.layout.xaxis.title.text


def test_failed_requests_add_an_ok_line_and_two_runs_no_ceiling() -> None:
    failing = [level(1, 100, 2, {"HTTP 503": 30})]
    fig = load_charts.throughput_figure({"A": SWEEP, "B": failing}, ceiling=False)
    assert [trace.name for trace in fig.data] == ["A req/s", "B req/s", "B OK/s"]


def test_latency_shows_every_percentile_and_the_target() -> None:
    fig = load_charts.latency_figure({"this run": SWEEP}, p99_target_ms=10)
    assert [trace.name for trace in fig.data] == ["p50", "p90", "p99", "max"]
    assert list(fig.data[2].y) == [1, 4, 12]
    assert any("p99 target 10 ms" in (a.text or "") for a in fig.layout.annotations)
    pair = load_charts.latency_figure({"A": SWEEP, "B": SWEEP})
    assert [trace.name for trace in pair.data] == ["A p50", "A p99", "B p50", "B p99"]


def test_errors_are_stacked_by_kind_and_open_loop_levels_are_rates() -> None:
    levels = [level(64, 90, 5, {"HTTP 503": 3, "timeout": 1}, rate=100),
              level(64, 190, 5, {"HTTP 503": 9}, rate=200)]
    fig = load_charts.errors_figure(levels)
    assert [trace.name for trace in fig.data] == ["HTTP 503", "timeout"]
    assert list(fig.data[0].y) == [3, 9] and list(fig.data[1].y) == [1, 0]
    assert "open loop" in fig.layout.xaxis.title.text
    clean = load_charts.errors_figure(SWEEP)
    assert any(a.text == "no errors" for a in clean.layout.annotations)


def test_the_breakdown_lists_each_stage_and_draws_times_only() -> None:
    server = {"stages": [
        {"key": "request", "title": "whole request in the server", "unit": "ms", "count": 100.0,
         "metric": ":tensorflow:serving:request_latency", "mean": 1.23456, "p50": 1.0, "p99": 3.0,
         "per_model": True},
        {"key": "queue", "title": "queued for a batch", "metric": "q", "unit": "ms", "count": 100.0,
         "mean": 0.2, "p50": 0.1, "p99": 0.9, "per_model": False},
        {"key": "batch_size", "title": "batch size formed (rows per model call)", "metric": "b",
         "unit": "rows", "count": 20.0, "mean": 5.0, "p50": 4.0, "p99": 8.0, "per_model": True}],
        "missing": ["request parse"], "other": []}
    frame = load_charts.breakdown_frame(level(8, 100, 3, server=server))
    assert list(frame["stage"]) == ["whole request in the server", "queued for a batch (all models)",
                                    "batch size formed (rows per model call)"]
    assert frame["mean"][0] == 1.23 and list(frame["unit"]) == ["ms", "ms", "rows"]
    fig = load_charts.breakdown_figure([level(8, 100, 3, server=server)])
    assert [trace.name for trace in fig.data] == ["whole request in the server", "queued for a batch",
                                                  "client's mean latency"]


def test_the_batching_comparison_marks_levels_that_missed_the_target() -> None:
    fig = load_charts.comparison_figure([("off", [level(8, 1500, 30)]), ("on", [level(8, 3000, 6)])], 10)
    assert [trace.name for trace in fig.data] == ["off", "on"]
    assert list(fig.data[0].marker.pattern.shape) == ["x"] and list(fig.data[1].marker.pattern.shape) == [""]
