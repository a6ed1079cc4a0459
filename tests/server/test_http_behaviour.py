"""HTTP-level behaviour: bad input never costs a 500 or the server, limits, timeouts, CORS, metrics."""

from __future__ import annotations

import gzip
import re
import time
from pathlib import Path

import pytest
import requests

from tests.server.harness import (
    MAIN_MAX_BODY,
    MAIN_TIMEOUT_MS,
    Server,
    batching_mode,
    error_of,
    metric_value,
    ok_json,
    wait_for,
)

PREDICT = "/v1/models/half_plus_two:predict"
GOOD = {"instances": [1.0]}


def assert_still_serving(server: Server) -> None:
    assert server.process.poll() is None, server.log()[-2000:]
    assert ok_json(server.post(PREDICT, GOOD)) == {"predictions": [2.5]}


@pytest.mark.parametrize("body", [
    b"\xff\xfe not utf-8", b"{" * 100_000, b"[" * 100_000 + b"]" * 100_000,
    b'{"instances": ' + b"[" * 50_000 + b"1" + b"]" * 50_000 + b"}",
    b'{"instances": [1e999]}', b'{"instances": [{"b64": 5}]}', b'{"instances": [null]}',
    b'{"instances": [true]}', b'{"instances": "x"}', b'"just a string"', b"null",
    b'{"instances": [1.0], "signature_name": null}', b"\x00", b"   ",
])
def test_bad_bodies_are_4xx_json_and_the_server_survives(main_server: Server, body: bytes) -> None:
    response = main_server.post(PREDICT, body)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"] == "application/json"
    assert isinstance(response.json()["error"], str)
    assert_still_serving(main_server)


def test_trailing_bytes_after_the_json_value_are_ignored(main_server: Server) -> None:
    # rapidjson (TF Serving) stops after the first complete value.
    assert ok_json(main_server.post(PREDICT, b'{"instances": [1.0]} trailing')) == {"predictions": [2.5]}


def test_body_over_the_limit_is_413_json(main_server: Server) -> None:
    huge = b'{"instances": [' + b"1.0," * (MAIN_MAX_BODY // 4) + b"1.0]}"
    message = error_of(main_server.post(PREDICT, huge), 413)
    assert str(MAIN_MAX_BODY) in message
    # Sent in chunks, without Content-Length: counted while it streams in.
    chunked = main_server.post(PREDICT, iter([huge[:MAIN_MAX_BODY], huge[MAIN_MAX_BODY:]]))
    assert error_of(chunked, 413)
    assert_still_serving(main_server)


def test_gzip_bodies_are_decoded_and_bombs_stopped(main_server: Server) -> None:
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    small = gzip.compress(b'{"instances": [1.0, 2.0]}')
    assert ok_json(main_server.post(PREDICT, small, headers=headers)) == {"predictions": [2.5, 3.0]}
    bomb = gzip.compress(b" " * (MAIN_MAX_BODY * 4))
    assert len(bomb) < MAIN_MAX_BODY
    assert error_of(main_server.post(PREDICT, bomb, headers=headers), 413)
    assert "gzip" in error_of(main_server.post(PREDICT, b"not gzip", headers=headers), 400)


def test_head_and_odd_methods_are_malformed(main_server: Server) -> None:
    head = requests.head(main_server.url + PREDICT, timeout=30)
    assert head.status_code == 400 and head.text == ""
    for method in ("PUT", "DELETE", "PATCH", "TRACE"):
        response = requests.request(method, main_server.url + PREDICT, json=GOOD, timeout=30)
        assert error_of(response, 400) == f"Malformed request: {method} {PREDICT}"


def test_other_paths_are_html_404(main_server: Server) -> None:
    for path in ("/", "/v1", "/v2/models/half_plus_two", "/healthz"):
        response = main_server.get(path)
        assert response.status_code == 404
        assert response.headers["Content-Type"].startswith("text/html")
        assert "Not Found" in response.text


def test_timeout_is_504_and_the_server_keeps_serving(main_server: Server, tmp_path: Path) -> None:
    """A run held at a gate (the identity model's `gated` signature) is answered 504 at the limit,
    never before, and stopped there (`RunOptions.timeout_in_ms`): nothing of it runs on though the
    gate stays closed, and other requests are served. With batching on, its scalar input is refused
    with the words of TF Serving's BatchingSession instead."""

    def pending() -> float:
        return metric_value(main_server, "tensorflow_serving_pending_requests")

    gate = tmp_path / "gate"
    idle = pending()
    try:
        started = time.monotonic()
        body = {"signature_name": "gated", "inputs": {"gate": str(gate)}}
        response = main_server.post("/v1/models/identity:predict", body)
        if batching_mode(main_server) == "batching_on":  # a scalar input cannot be batched
            assert error_of(response, 400) == "Batching Run() input tensors must have at least one dimension"
            return
        message = error_of(response, 504)
        elapsed = time.monotonic() - started
        # TensorFlow's words when the session run stops at the deadline; the server's backstop (1 s
        # later) answers with its own if the run has not returned by then (a busy machine).
        assert message in ("Timed out waiting for notification",
                           f"Request timed out after {MAIN_TIMEOUT_MS} ms (--rest_api_timeout_in_ms)")
        assert elapsed >= MAIN_TIMEOUT_MS / 1000 * 0.9  # never before the limit
        wait_for(lambda: pending() == idle, 60)  # the run was cancelled: the gate is still closed
        assert_still_serving(main_server)
        fast = {"signature_name": "float", "inputs": [1.0]}
        assert ok_json(main_server.post("/v1/models/identity:predict", fast)) == {"outputs": [1.0]}
    finally:
        gate.touch()


def test_cors_headers_on_every_v1_answer_when_enabled(main_server: Server) -> None:
    for response in (main_server.post(PREDICT, GOOD), main_server.get("/v1/models/foo"),
                     main_server.post("/v1/nonsense", GOOD)):
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert response.headers["Access-Control-Allow-Methods"] == "POST, GET"
        assert response.headers["Access-Control-Allow-Headers"] == "Content-Type"


def test_cors_preflight(main_server: Server) -> None:
    url = main_server.url + PREDICT
    ok = requests.options(url, headers={"Origin": "http://localhost:8501",
                                        "Access-Control-Request-Method": "POST"}, timeout=30)
    assert ok.status_code == 200 and ok.text == ""
    assert ok.headers["Access-Control-Allow-Origin"] == "*"
    assert requests.options(url, timeout=30).status_code == 400
    assert requests.options(url, headers={"Origin": "null"}, timeout=30).status_code == 400


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 if absent)."""
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            return float(match.group(2))
    return 0.0


def test_prometheus_metrics(main_server: Server) -> None:
    """TF Serving's names and semantics (the deeper checks are in test_metrics.py)."""
    before = main_server.get("/monitoring/prometheus/metrics").text
    for _ in range(3):
        main_server.post(PREDICT, GOOD)
    main_server.post(PREDICT, {"instances": ["x"]})
    response = main_server.get("/monitoring/prometheus/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    after = response.text

    def grew(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert "# TYPE :tensorflow:serving:request_count counter" in after
    assert "# TYPE :tensorflow:serving:request_latency histogram" in after
    assert grew(":tensorflow:serving:request_count", model_name="half_plus_two", status="OK") >= 3
    assert grew(":tensorflow:serving:request_count", model_name="half_plus_two",
                status="INVALID_ARGUMENT") >= 1
    # OK requests only, in microseconds
    assert grew(":tensorflow:serving:request_latency_count", model_name="half_plus_two",
                API="predict", entrypoint="REST") == 3
    # half_plus_two 123 and hpt_all 123 + 124 share a base path: each version directory is one
    # model_path, loaded once per model that serves it.
    loads = [line for line in after.splitlines() if 'status="success"' in line
             and line.startswith(":tensorflow:cc:saved_model:load_attempt_count{")]
    assert any('/hpt/124"' in line and line.endswith(" 1") for line in loads), loads
    assert any('/hpt/123"' in line and line.endswith(" 2") for line in loads), loads
