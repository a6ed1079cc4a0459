"""Metrics as TF Serving exposes them (issue 23 item 3, issue 22 item 2): its names, types, labels,
units (microseconds), buckets (`Exponential(10, 1.8, 33)`) and what counts: every REST `/v1` request
and every gRPC Predict/Classify/Regress in `request_count`, only OK ones in `request_latency`, gRPC's
`API` as `Predict`, SavedModel loads per version directory with `success`/`fail`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import grpc
import pytest

from pipeline.serving.metrics import exponential_buckets
from tests.server.grpc_harness import GrpcServer, predict_request, rpc_error, start_grpc_server
from tests.server.harness import Models, error_of, install_version, ok_json

CONFIG = """
model_config_list {{
  config {{ name: 'hpt' base_path: '{root}/hpt' model_platform: 'tensorflow' }}
  config {{ name: 'broken' base_path: '{root}/broken' model_platform: 'tensorflow' }}
}}
"""
PATH = "/monitoring/prometheus/metrics"


@pytest.fixture(scope="module")
def server(models: Models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrpcServer]:
    root = tmp_path_factory.mktemp("metrics")
    install_version(models.half_plus_two, root / "hpt", "1")
    (root / "broken" / "1").mkdir(parents=True)
    (root / "broken" / "1" / "saved_model.pb").write_bytes(b"not a SavedModel")
    (root / "models.config").write_text(CONFIG.format(root=root))
    running = start_grpc_server([f"--model_config_file={root / 'models.config'}", "--enable_prometheus",
                                 "--file_system_poll_wait_seconds=0", "--max_num_load_retries=0"],
                                root / "server.log")
    yield running
    running.stop()


def samples(server: GrpcServer) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample line, labels in written order."""
    found = []
    for line in server.server.get(PATH).text.splitlines():
        match = re.fullmatch(r"([:\w]+)(?:\{(.*)\})? (\S+)", line)
        if match:
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
            found.append((match.group(1), labels, float(match.group(3))))
    return found


def value(server: GrpcServer, name: str, **labels: str) -> float:
    return sum(v for n, found, v in samples(server) if n == name
               and all(found.get(k) == w for k, w in labels.items()))


def test_request_latency_is_in_microseconds_with_tf_servings_buckets(server: GrpcServer) -> None:
    for x in (1.0, 2.0, 3.0):
        assert ok_json(server.server.post("/v1/models/hpt:predict", {"instances": [x]})) == {
            "predictions": [0.5 * x + 2]}
    series = [(labels, v) for n, labels, v in samples(server)
              if n == ":tensorflow:serving:request_latency_bucket"
              and labels.get("model_name") == "hpt" and labels.get("API") == "predict"]
    bounds = [labels["le"] for labels, _ in series]
    assert bounds == [f"{b:.6g}" for b in exponential_buckets(10, 1.8, 33)] + ["+Inf"]
    assert bounds[:4] == ["10", "18", "32.4", "58.32"]
    assert list(series[0][0]) == ["model_name", "API", "entrypoint", "le"]
    count = value(server, ":tensorflow:serving:request_latency_count", model_name="hpt", API="predict",
                  entrypoint="REST")
    total = value(server, ":tensorflow:serving:request_latency_sum", model_name="hpt", API="predict",
                  entrypoint="REST")
    assert count >= 3
    assert 10 < total / count < 60e6  # microseconds: more than 10 us, less than a minute
    text = server.server.get(PATH).text
    assert "# TYPE :tensorflow:serving:request_count counter" in text
    assert ":tensorflow:serving:request_count_total" not in text  # TF Serving writes no _total
    assert value(server, ":tensorflow:serving:runtime_latency_count", model_name="hpt", API="Predict",
                 runtime="TF1") >= 3


def test_every_rest_request_counts_and_only_ok_ones_are_timed(server: GrpcServer) -> None:
    def count(model: str, status: str) -> float:
        return value(server, ":tensorflow:serving:request_count", model_name=model, status=status)

    before_ok, before_missing = count("hpt", "OK"), count("nope", "NOT_FOUND")
    before_bad = count("hpt", "INVALID_ARGUMENT")
    before_timed = value(server, ":tensorflow:serving:request_latency_count", model_name="hpt", API="")
    ok_json(server.server.get("/v1/models/hpt"))
    ok_json(server.server.get("/v1/models/hpt/metadata"))
    error_of(server.server.get("/v1/models/nope"), 404)
    error_of(server.server.post("/v1/models/hpt:predict", {"instances": ["x"]}), 400)
    assert count("hpt", "OK") - before_ok == 2                  # status and metadata count too
    assert count("nope", "NOT_FOUND") - before_missing == 1     # unknown models too
    assert count("hpt", "INVALID_ARGUMENT") - before_bad == 1
    # OK requests are timed (status and metadata with an empty API, as TF Serving's REST handler)
    timed = value(server, ":tensorflow:serving:request_latency_count", model_name="hpt", API="")
    assert timed - before_timed == 2
    assert value(server, ":tensorflow:serving:request_latency_count", model_name="nope") == 0


def test_grpc_apis_are_named_as_tf_serving_names_them(server: GrpcServer) -> None:
    def count(status: str) -> float:
        return value(server, ":tensorflow:serving:request_count", model_name="hpt", status=status)

    before_ok, before_missing = count("OK"), count("NOT_FOUND")
    answer = server.prediction.Predict(predict_request("hpt", [4.0]), timeout=60)
    assert list(answer.outputs["y"].float_val) == [4.0]
    error = rpc_error(server.prediction.Predict, predict_request("hpt", [4.0], version=7))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert count("OK") - before_ok == 1 and count("NOT_FOUND") - before_missing == 1
    assert value(server, ":tensorflow:serving:request_latency_count", model_name="hpt", API="Predict",
                 entrypoint="GRPC") == 1  # the failed call is counted, not timed
    assert value(server, ":tensorflow:serving:request_latency_count", API="predict", entrypoint="GRPC") == 0


def test_classify_counts_its_examples(server: GrpcServer) -> None:
    before = value(server, ":tensorflow:serving:request_example_count_total", model="hpt")
    body = {"signature_name": "classify_x_to_y", "examples": [{"x": 1.0}, {"x": 2.0}, {"x": 3.0}]}
    ok_json(server.server.post("/v1/models/hpt:classify", body))
    assert value(server, ":tensorflow:serving:request_example_count_total", model="hpt") - before == 3
    assert value(server, ":tensorflow:serving:request_example_counts_count", model="hpt") >= 1


def test_saved_model_loads_are_counted_per_version_directory(server: GrpcServer) -> None:
    loads = {(labels["model_path"].rsplit("/", 2)[-2], labels["status"]): v
             for n, labels, v in samples(server) if n == ":tensorflow:cc:saved_model:load_attempt_count"}
    assert loads == {("hpt", "success"): 1, ("broken", "fail"): 1}
    assert value(server, ":tensorflow:cc:saved_model:load_latency") > 0
