"""Prometheus metrics → request rate, errors and latency percentiles (pipeline/client/server_metrics.py)."""

from __future__ import annotations

import pytest

from pipeline.client.server_metrics import histogram_quantile, parse_scrape, window_rows

OURS = """# TYPE :tensorflow:serving:request_count counter
:tensorflow:serving:request_count{model_name="m",status="OK"} 90
:tensorflow:serving:request_count{model_name="m",status="NOT_FOUND"} 10
:tensorflow:serving:request_count{model_name="other",status="OK"} 5
# TYPE :tensorflow:serving:request_latency histogram
:tensorflow:serving:request_latency_bucket{model_name="m",API="predict",entrypoint="REST",le="1000"} 30
:tensorflow:serving:request_latency_bucket{model_name="m",API="predict",entrypoint="REST",le="10000"} 60
:tensorflow:serving:request_latency_bucket{model_name="m",API="predict",entrypoint="REST",le="+Inf"} 60
:tensorflow:serving:request_latency_bucket{model_name="m",API="Predict",entrypoint="GRPC",le="1000"} 20
:tensorflow:serving:request_latency_bucket{model_name="m",API="Predict",entrypoint="GRPC",le="10000"} 40
:tensorflow:serving:request_latency_bucket{model_name="m",API="Predict",entrypoint="GRPC",le="+Inf"} 40
:tensorflow:serving:request_latency_bucket{model_name="m",API="",entrypoint="REST",le="1000"} 7
:tensorflow:serving:request_latency_bucket{model_name="m",API="",entrypoint="REST",le="+Inf"} 7
"""
TF_SERVING = """# TYPE :tensorflow:serving:request_count counter
:tensorflow:serving:request_count{model_name="m",status="OK"} 4
# TYPE :tensorflow:serving:request_latency histogram
:tensorflow:serving:request_latency_bucket{model_name="m",API="predict",entrypoint="GRPC",le="1000"} 2
:tensorflow:serving:request_latency_bucket{model_name="m",API="predict",entrypoint="GRPC",le="+Inf"} 4
"""


def test_our_metrics_are_read_for_one_model() -> None:
    """REST and gRPC inference latencies add up; status and metadata (API "") are left out."""
    scrape = parse_scrape(OURS, "m", time=1.0)
    assert scrape.requests == {"OK": 90.0, "NOT_FOUND": 10.0}
    assert scrape.total == 100 and scrape.errors == 10
    assert scrape.inferences_ok == 100 and scrape.answered == 110  # the 7 status calls are not traffic
    assert scrape.latency_buckets == ((pytest.approx(0.001), 50.0), (pytest.approx(0.01), 100.0),
                                      (float("inf"), 100.0))


def test_tf_serving_names_and_microseconds_are_understood() -> None:
    scrape = parse_scrape(TF_SERVING, "m", time=1.0)
    assert scrape.requests == {"OK": 4.0}
    assert scrape.latency_buckets[0] == (pytest.approx(0.001), 2.0)


def test_our_servers_own_exposition_is_read() -> None:
    """The text `pipeline.serving.metrics` writes parses with the same reader."""
    from pipeline.serving.metrics import ServerMetrics

    metrics = ServerMetrics()
    metrics.record_request("m", "predict", "REST", "OK", 0.002)
    metrics.record_request("m", "Predict", "GRPC", "NOT_FOUND", 0.002)
    scrape = parse_scrape(metrics.exposition().decode(), "m", time=1.0)
    assert scrape.requests == {"OK": 1.0, "NOT_FOUND": 1.0}
    assert scrape.latency_buckets[-1] == (float("inf"), 1.0)


def test_quantiles_interpolate_like_prometheus() -> None:
    buckets = [(0.001, 50.0), (0.01, 100.0), (float("inf"), 100.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.001)
    assert histogram_quantile(0.75, buckets) == pytest.approx(0.0055)
    assert histogram_quantile(0.5, [(0.1, 0.0), (float("inf"), 0.0)]) is None


def test_window_rows_are_rates_over_each_interval_and_survive_a_restart() -> None:
    grown = OURS.replace("} 90", "} 130").replace('le="+Inf"} 60', 'le="+Inf"} 100')  # 40 slow predicts
    first, second = parse_scrape(OURS, "m", 10.0), parse_scrape(grown, "m", 12.0)
    restarted = parse_scrape(TF_SERVING, "m", 14.0)
    rows = window_rows([first, second, restarted])
    assert rows[0]["requests/s"] == pytest.approx(20.0) and rows[0]["errors/s"] == 0
    assert rows[0]["p50 ms"] == pytest.approx(10.0)  # all above the highest finite bound
    assert rows[1]["requests/s"] == pytest.approx(2.0)  # counters went down: counted from zero


def test_the_rate_leaves_out_status_and_metadata_polls() -> None:
    """A dashboard polling the model's status every second is not traffic: only inference
    requests (and failures) make the rate."""
    polled = OURS.replace("} 90", "} 150")  # 60 more OK requests, all status calls
    rows = window_rows([parse_scrape(OURS, "m", 10.0), parse_scrape(polled, "m", 40.0)])
    assert rows[0]["requests/s"] == 0 and rows[0]["errors/s"] == 0
    assert rows[0]["p50 ms"] is None  # no latency observed in that interval
