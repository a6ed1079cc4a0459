"""The server's breakdown of a load-test window from two Prometheus scrapes (pipeline/client/breakdown.py):
TF Serving's names first, this project's older names, stages a server adds under its own names,
and what is missing said as missing."""

from __future__ import annotations

import pytest

from pipeline.client.breakdown import Breakdown, breakdown


def histogram(name: str, labels: str, buckets: dict[str, float], total: float) -> str:
    lines = [f"# TYPE {name} histogram"]
    lines += [f'{name}_bucket{{{labels},le="{le}"}} {count}' for le, count in buckets.items()]
    count = list(buckets.values())[-1]
    lines += [f"{name}_sum{{{labels}}} {total}", f"{name}_count{{{labels}}} {count}"]
    return "\n".join(lines) + "\n"


REST = 'API="predict",entrypoint="REST"'


def tf_serving(scale: float) -> str:
    """TF Serving's exposition (microseconds) after `scale` times the same traffic."""
    return (
        histogram(":tensorflow:serving:request_latency", 'model_name="m",API="predict",entrypoint="REST"',
                  {"1000": 60 * scale, "10000": 100 * scale, "+Inf": 100 * scale}, 200_000 * scale)
        + histogram(":tensorflow:serving:request_latency", 'model_name="m",API="",entrypoint="REST"',
                    {"1000": 999, "+Inf": 999}, 999)  # status and metadata: not inference
        + histogram(":tensorflow:serving:request_latency", f'model_name="other",{REST}',
                    {"1000": 5, "+Inf": 5}, 50)
        + histogram(":tensorflow:serving:runtime_latency", 'model_name="m",API="Predict",runtime="TF1"',
                    {"100": 50 * scale, "1000": 100 * scale, "+Inf": 100 * scale}, 30_000 * scale)
        + histogram(":tensorflow:serving:batching_session:queuing_latency",
                    'thread_pool_name="batch_threads"', {"100": 80 * scale, "+Inf": 100 * scale},
                    10_000 * scale)
        + histogram(":tensorflow:serving:batching_session:input_batch_size", "",
                    {"1": 0, "4": 20 * scale, "+Inf": 25 * scale}, 100 * scale)
        .replace("{,", "{").replace("{}", ""))


def test_tf_servings_own_metrics_make_the_stages_in_milliseconds() -> None:
    found = breakdown(tf_serving(1), tf_serving(3), "m")
    stages = {stage.key: stage for stage in found.stages}
    assert list(stages) == ["request", "batch_queue", "run", "batch_size"]
    request = stages["request"]
    assert request.metric == ":tensorflow:serving:request_latency" and request.count == 200
    assert request.mean == pytest.approx(2.0)  # 400,000 µs over 200 requests
    assert request.p50 == pytest.approx(1000 * 100 / 120 / 1000)  # inside the first bucket, interpolated
    assert stages["run"].mean == pytest.approx(0.3)
    assert stages["batch_queue"].per_model is False and stages["batch_queue"].mean == pytest.approx(0.1)
    assert stages["batch_size"].unit == "rows" and stages["batch_size"].mean == pytest.approx(4.0)
    assert found.missing == ["request parse", "queued for a worker", "response write"]


def test_the_projects_older_names_are_read_too() -> None:
    older = (histogram("tensorflow_serving_request_latency_seconds", f'{REST},model_name="m"',
                       {"0.001": 7, "+Inf": 10}, 0.02)
             + histogram("tensorflow_serving_batch_size", 'model_name="m"', {"1": 2, "+Inf": 4}, 10))
    found = breakdown("", older, "m")
    assert [s.key for s in found.stages] == ["request", "batch_size"]
    assert found.stages[0].mean == pytest.approx(2.0) and found.stages[0].metric.endswith("_seconds")
    assert "model run" in found.missing and "queued for a batch (inside model run)" in found.missing


def test_stages_a_server_adds_under_its_own_names_are_found_and_the_rest_shown_by_name() -> None:
    text = (histogram("tensorflow_serving_request_parse_latency_seconds", 'model_name="m"',
                      {"0.0001": 10, "+Inf": 10}, 0.0005)
            + histogram("tensorflow_serving_response_write_latency", 'model_name="m"',
                        {"50": 10, "+Inf": 10}, 300)
            + histogram("tensorflow_serving_admission_latency", 'model_name="m"', {"10": 10, "+Inf": 10}, 20)
            + histogram(":tensorflow:serving:model_warmup_latency", 'model_path="/m/1",status="OK"',
                        {"10": 1, "+Inf": 1}, 5))
    found = breakdown("", text, "m")
    stages = {stage.key: stage for stage in found.stages}
    assert stages["parse"].mean == pytest.approx(0.05)  # seconds -> ms
    assert stages["write"].mean == pytest.approx(0.03)  # microseconds, TF Serving's unit -> ms
    assert [other.metric for other in found.other] == ["tensorflow_serving_admission_latency"]
    assert "whole request in the server" in found.missing


def test_this_servers_parse_queue_and_write_metrics_are_picked_first_and_every_stage_shows() -> None:
    def ours(scale: float) -> str:
        labels = f'model_name="m",{REST}'
        return (tf_serving(scale)
                + histogram("tensorflow_serving_request_parse_latency", labels,
                            {"100": 100 * scale, "+Inf": 100 * scale}, 5_000 * scale)
                + histogram("tensorflow_serving_worker_queuing_latency", labels,
                            {"100": 100 * scale, "+Inf": 100 * scale}, 2_000 * scale)
                + histogram("tensorflow_serving_response_write_latency", labels,
                            {"100": 100 * scale, "+Inf": 100 * scale}, 4_000 * scale)
                # a keyword match for parse and write that must not win over the names above
                + histogram("tensorflow_serving_json_decode_and_encode_latency", labels,
                            {"10": 100 * scale, "+Inf": 100 * scale}, 900 * scale))

    found = breakdown(ours(1), ours(2), "m")
    stages = {stage.key: stage for stage in found.stages}
    assert list(stages) == ["request", "parse", "queue", "batch_queue", "run", "write", "batch_size"]
    assert found.missing == []
    assert stages["parse"].metric == "tensorflow_serving_request_parse_latency"
    assert stages["parse"].mean == pytest.approx(0.05) and stages["parse"].count == 100
    assert stages["queue"].metric == "tensorflow_serving_worker_queuing_latency"
    assert stages["queue"].mean == pytest.approx(0.02) and stages["queue"].per_model
    assert stages["write"].metric == "tensorflow_serving_response_write_latency"
    assert stages["write"].mean == pytest.approx(0.04)
    assert [other.metric for other in found.other] == ["tensorflow_serving_json_decode_and_encode_latency"]


def test_a_restarted_server_counts_from_zero_and_the_json_round_trips() -> None:
    found = breakdown(tf_serving(5), tf_serving(2), "m")
    request = next(s for s in found.stages if s.key == "request")
    assert request.count == 200  # the counters went down: everything since the restart
    assert Breakdown.from_json(found.to_json()) == found
    with pytest.raises(ValueError):
        breakdown("", "not { prometheus", "m")
