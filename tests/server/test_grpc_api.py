"""TF Serving's gRPC API on our server: the official stubs against a real process on loopback.

One server (batching on, Prometheus and health checks on) serves half_plus_two (versions 123: 0.5x+2
and 124: 0.5x+3, labels stable/canary), the tutorial's Keras model and a slow model (a call runs
until the test opens its gate) used to queue requests behind a running call. What a user of
`tensorflow_serving.apis` sees: the answers, the version that answered, TF Serving's status codes
and texts (the same as REST's), one batch for REST and gRPC requests, client deadlines, health
checks, reflection, gzip.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
)

from pipeline.client.errors import ClientError
from pipeline.client.grpc import GrpcClient
from pipeline.client.snippets import grpc_python_snippet
from tests.server.grpc_harness import RPC_TIMEOUT, GrpcServer, predict_request, rpc_error, start_grpc_server
from tests.server.harness import Models, install_version, metric_value, wait_for

CONFIG = """
model_config_list {{
  config {{
    name: 'half_plus_two' base_path: '{root}/hpt' model_platform: 'tensorflow'
      model_version_policy {{ all {{}} }}
    version_labels {{ key: 'stable' value: 123 }}
    version_labels {{ key: 'canary' value: 124 }}
  }}
  config {{ name: 'linear' base_path: '{root}/linear' model_platform: 'tensorflow' }}
  config {{ name: 'slow' base_path: '{root}/slow' model_platform: 'tensorflow' }}
}}
"""


@pytest.fixture(scope="module")
def grpc_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The server's folder; `gate` in it ends the slow model's calls."""
    return tmp_path_factory.mktemp("grpc_models")


@pytest.fixture(scope="module")
def server(models: Models, grpc_root: Path) -> Iterator[GrpcServer]:
    from tests.server.savedmodels import export_gated_rows

    root = grpc_root
    install_version(models.half_plus_two, root / "hpt", "123")
    install_version(models.half_plus_three, root / "hpt", "124")
    install_version(models.linear_keras, root / "linear", "1")
    export_gated_rows(root / "slow" / "1", root / "gate")
    (root / "models.config").write_text(CONFIG.format(root=root))
    (root / "batching.config").write_text("num_batch_threads { value: 1 }")  # later calls queue
    running = start_grpc_server([
        f"--model_config_file={root / 'models.config'}", "--enable_prometheus",
        "--enable_grpc_healthcheck_service", "--file_system_poll_wait_seconds=0",
        f"--batching_parameters_file={root / 'batching.config'}",
    ], root / "server.log", batching="batching_on")
    yield running
    (root / "gate").touch()
    running.stop()


def y_of(response: predict_pb2.PredictResponse) -> list[float]:
    assert response.outputs["y"].dtype == types_pb2.DT_FLOAT
    return list(response.outputs["y"].float_val)


def test_predict_answers_with_the_latest_version_and_says_which(server: GrpcServer) -> None:
    response = server.prediction.Predict(predict_request("half_plus_two", [1.0, 2.0, 3.0]), RPC_TIMEOUT)
    assert y_of(response) == [3.5, 4.0, 4.5]  # 124: 0.5 x + 3
    assert [d.size for d in response.outputs["y"].tensor_shape.dim] == [3]
    assert response.model_spec.name == "half_plus_two"
    assert response.model_spec.version.value == 124
    assert response.model_spec.signature_name == "serving_default"


@pytest.mark.parametrize(("selector", "expected", "version"), [
    ({"version": 123}, [2.5], 123), ({"version": 124}, [3.5], 124),
    ({"label": "stable"}, [2.5], 123), ({"label": "canary"}, [3.5], 124)])
def test_predict_by_version_or_label(server: GrpcServer, selector: dict, expected: list,
                                     version: int) -> None:
    response = server.prediction.Predict(predict_request("half_plus_two", [1.0], **selector), RPC_TIMEOUT)
    assert y_of(response) == expected
    assert response.model_spec.version.value == version


def test_predict_reads_tensor_content(server: GrpcServer) -> None:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "linear"
    rows = np.array([[1.0, 2.0], [5.0, 7.0]], np.float32)
    tensor = request.inputs["inputs"]
    tensor.dtype = types_pb2.DT_FLOAT
    tensor.tensor_shape.dim.add().size = 2
    tensor.tensor_shape.dim.add().size = 2
    tensor.tensor_content = rows.tobytes()
    response = server.prediction.Predict(request, RPC_TIMEOUT)
    (name,) = response.outputs
    output = response.outputs[name]
    assert [d.size for d in output.tensor_shape.dim] == [2, 1]
    assert list(output.float_val) == [3.0, 6.0]  # 2 a - b + 3


def test_output_filter_keeps_only_the_named_outputs_and_refuses_unknown_ones(server: GrpcServer) -> None:
    predict = server.prediction.Predict
    kept = predict(predict_request("half_plus_two", [2.0], output_filter=("y",)), RPC_TIMEOUT)
    assert list(kept.outputs) == ["y"]
    error = rpc_error(predict, predict_request("half_plus_two", [2.0], output_filter=("z",)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == ("output tensor alias not found in signature: z Outputs expected to be in "
                               "the set {y}.")


REST_STATUS = {grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.INVALID_ARGUMENT: 400}


@pytest.mark.parametrize(("request_args", "path", "code"), [
    (("nope", {}), "/v1/models/nope:predict", grpc.StatusCode.NOT_FOUND),
    (("half_plus_two", {"version": 999}), "/v1/models/half_plus_two/versions/999:predict",
     grpc.StatusCode.NOT_FOUND),
    (("half_plus_two", {"label": "ghost"}), "/v1/models/half_plus_two/labels/ghost:predict",
     grpc.StatusCode.INVALID_ARGUMENT),
    (("half_plus_two", {"signature": "nope"}), "/v1/models/half_plus_two:predict",
     grpc.StatusCode.INVALID_ARGUMENT),
])
def test_errors_have_the_same_code_and_message_as_rest(server: GrpcServer, request_args: tuple, path: str,
                                                      code: grpc.StatusCode) -> None:
    model, selector = request_args
    error = rpc_error(server.prediction.Predict, predict_request(model, [1.0], **selector))
    body = {"instances": [1.0]}
    if selector.get("signature"):
        body["signature_name"] = selector["signature"]
    rest = server.server.post(path, body)
    assert error.code() == code
    assert rest.status_code == REST_STATUS[code]
    assert error.details() == json.loads(rest.text)["error"]


def test_long_messages_are_cut_at_1024_characters(server: GrpcServer) -> None:
    alias = "a" * 3000
    error = rpc_error(server.prediction.Predict, predict_request("half_plus_two", [1.0], key=alias))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("input tensor alias not found in signature: aaaa")
    assert error.details().endswith("...TRUNCATED")
    assert len(error.details()) == 1024 + len("...TRUNCATED")


def test_classify_with_labels_and_scores(server: GrpcServer) -> None:
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "half_plus_two"
    request.model_spec.signature_name = "classify_two_classes"
    request.model_spec.version.value = 123
    for x in (2.0, 4.0):
        request.input.example_list.examples.add().features.feature["x"].float_list.value.append(x)
    result = server.prediction.Classify(request, RPC_TIMEOUT)
    rows = [[(c.label, c.score) for c in item.classes] for item in result.result.classifications]
    assert rows == [[("low", -3.0), ("high", 3.0)], [("low", -4.0), ("high", 4.0)]]
    assert result.model_spec.version.value == 123
    assert result.model_spec.signature_name == "classify_two_classes"


def test_the_clients_classify_and_regress_answer_what_rest_answers(server: GrpcServer) -> None:
    """The dashboard's gRPC client sends REST-style examples as tf.Examples and reads the results in
    REST's shape: the same numbers as `:classify` / `:regress` on the same server."""
    client = GrpcClient(server.target, timeout=RPC_TIMEOUT)
    try:
        examples = [{"x": 2.0}, {"x": 4.0}]
        classified = client.classify("half_plus_two", examples, version=123, signature="classify_two_classes")
        rest = server.server.post("/v1/models/half_plus_two/versions/123:classify",
                                  {"signature_name": "classify_two_classes", "examples": examples})
        assert classified.results == json.loads(rest.text)["results"] == [[["low", -3.0], ["high", 3.0]],
                                                                         [["low", -4.0], ["high", 4.0]]]
        assert (classified.version, classified.signature) == (123, "classify_two_classes")
        regressed = client.regress("half_plus_two", [{}, {"x": 1.0}], context={"x": 80.0}, label="stable",
                                   signature="regress_x_to_y")
        assert regressed.results == [42.0, 2.5]
        with pytest.raises(ClientError, match="feature 'x' mixes numbers and strings"):
            client.classify("half_plus_two", [{"x": [1.0, "a"]}], signature="classify_two_classes")
    finally:
        client.close()


def test_metadata_is_the_signature_def_map_rest_shows_and_nothing_else(server: GrpcServer) -> None:
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "half_plus_two"
    request.metadata_field.append("signature_def")
    response = server.prediction.GetModelMetadata(request, RPC_TIMEOUT)
    assert (response.model_spec.name, response.model_spec.version.value) == ("half_plus_two", 124)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_map)
    rest = json.loads(server.server.get("/v1/models/half_plus_two/metadata").text)
    as_dict = json_format.MessageToDict(signature_map, preserving_proto_field_name=True,
                                        always_print_fields_with_no_presence=True)
    assert as_dict == rest["metadata"]["signature_def"]
    request.metadata_field[:] = ["signature_def", "saved_model"]
    error = rpc_error(server.prediction.GetModelMetadata, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "Metadata field saved_model is not supported"
    del request.metadata_field[:]
    assert rpc_error(server.prediction.GetModelMetadata, request).code() == grpc.StatusCode.INVALID_ARGUMENT


def test_model_status_lists_every_version_and_unknown_versions_are_not_found(server: GrpcServer) -> None:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "half_plus_two"
    response = server.model_service.GetModelStatus(request, RPC_TIMEOUT)
    available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert [(s.version, s.state, s.status.error_code) for s in response.model_version_status] == [
        (124, available, 0), (123, available, 0)]
    request.model_spec.version.value = 7
    error = rpc_error(server.model_service.GetModelStatus, request)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    rest = server.server.get("/v1/models/half_plus_two/versions/7")
    assert error.details() == json.loads(rest.text)["error"]


@pytest.mark.parametrize("service", ["", "tensorflow.serving.PredictionService", "PredictionService",
                                     "tensorflow.serving.ModelService", "ModelService"])
def test_health_checks_answer_serving(server: GrpcServer, service: str) -> None:
    stub = health_pb2_grpc.HealthStub(server.channel)
    response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=RPC_TIMEOUT)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_services(server: GrpcServer) -> None:
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    services = ProtoReflectionDescriptorDatabase(server.channel).get_services()
    assert {"tensorflow.serving.PredictionService", "tensorflow.serving.ModelService",
            "grpc.health.v1.Health"} <= set(services)


def test_gzip_compressed_calls_are_answered(server: GrpcServer) -> None:
    response = server.prediction.Predict(predict_request("half_plus_two", [2.0] * 1000), RPC_TIMEOUT,
                                         compression=grpc.Compression.Gzip)
    assert y_of(response) == [4.0] * 1000


def test_requests_count_in_the_metrics_as_grpc(server: GrpcServer) -> None:
    before = metric_value(server.server, ":tensorflow:serving:request_latency_count",
                          model_name="half_plus_two", API="Predict", entrypoint="GRPC")
    server.prediction.Predict(predict_request("half_plus_two", [2.0]), RPC_TIMEOUT)
    after = metric_value(server.server, ":tensorflow:serving:request_latency_count",
                         model_name="half_plus_two", API="Predict", entrypoint="GRPC")
    assert after == before + 1


def _histogram(server: GrpcServer, name: str, model: str) -> tuple[float, float]:
    text = server.server.get("/monitoring/prometheus/metrics").text
    values = []
    for part in ("count", "sum"):
        match = re.search(rf'^{name}_{part}{{model_name="{model}"}} (\S+)$', text, re.MULTILINE)
        values.append(float(match.group(1)) if match else 0.0)
    return values[0], values[1]


def _gauge(server: GrpcServer, name: str) -> float:
    return metric_value(server.server, f"tensorflow_serving_batch_{name}")


def _occupy_slow_model(server: GrpcServer, gate: Path) -> threading.Thread:
    """Close the gate, start one slow REST call and wait until it runs: later calls queue behind it
    until the test opens the gate."""
    gate.unlink(missing_ok=True)
    first = threading.Thread(target=server.server.post,
                             args=("/v1/models/slow:predict", {"instances": [[1.0]]}))
    first.start()
    wait_for(lambda: _gauge(server, "running_calls") == 1, 60)
    return first


def test_a_rest_and_a_grpc_request_run_in_the_same_batch(server: GrpcServer, grpc_root: Path) -> None:
    calls_before, requests_before = _histogram(server, "tensorflow_serving_batch_requests", "slow")
    gate = grpc_root / "gate"
    try:
        first = _occupy_slow_model(server, gate)
        with ThreadPoolExecutor(max_workers=2) as pool:
            rest = pool.submit(server.server.post, "/v1/models/slow:predict", {"instances": [[3.0]]})
            over_grpc = pool.submit(server.prediction.Predict,
                                    predict_request("slow", [5.0], shape=[1, 1]), RPC_TIMEOUT)
            wait_for(lambda: _gauge(server, "queued_tasks") == 2, 60)  # both wait behind the first call
            assert first.is_alive()
            gate.touch()
            rest_answer, grpc_answer = rest.result(60), over_grpc.result(60)
    finally:
        gate.touch()
    first.join(60)
    assert _gauge(server, "queued_tasks") == 0
    assert json.loads(rest_answer.text) == {"predictions": [[6.0]]}
    assert y_of(grpc_answer) == [10.0]
    calls, requests = _histogram(server, "tensorflow_serving_batch_requests", "slow")
    assert (calls - calls_before, requests - requests_before) == (2, 3)  # the first alone, then both


def test_a_client_deadline_drops_the_queued_request_unrun(server: GrpcServer, grpc_root: Path) -> None:
    """A Predict whose 0.3 s deadline passes while it waits behind a running call (held at its
    gate) is dropped without running once the running call ends."""
    dropped_before = metric_value(server.server, "tensorflow_serving_dropped_request_count_total",
                                  model_name="slow", reason="deadline_exceeded")
    gate = grpc_root / "gate"
    try:
        first = _occupy_slow_model(server, gate)
        error = rpc_error(server.prediction.Predict, predict_request("slow", [5.0], shape=[1, 1]),
                          timeout=0.3)
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert first.is_alive()  # the deadline passed while the request was still queued
    finally:
        gate.touch()
    first.join(60)
    wait_for(lambda: metric_value(server.server, "tensorflow_serving_dropped_request_count_total",
                                  model_name="slow", reason="deadline_exceeded") == dropped_before + 1, 60)
    # and the server keeps serving
    assert y_of(server.prediction.Predict(predict_request("half_plus_two", [2.0]), RPC_TIMEOUT)) == [4.0]


def test_the_dashboard_client_predicts_reads_status_metadata_and_health(server: GrpcServer) -> None:
    client = GrpcClient(server.target, timeout=RPC_TIMEOUT)
    result = client.predict("linear", [[1.0, 2.0], [5.0, 7.0]])
    assert result.predictions == [[3.0], [6.0]] and result.version == 1 and result.latency_s > 0
    pinned = client.predict("half_plus_two", [[1.0]], label="stable", input_name="x")
    assert pinned.version == 123 and pinned.predictions == [[2.5]]
    assert client.model_status("half_plus_two")[0] == {
        "version": 124, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    assert "serving_default" in client.metadata("linear")["metadata"]["signature_def"]["signature_def"]
    assert client.health() == "SERVING"
    with pytest.raises(ClientError, match="NOT_FOUND: Servable not found for request: Latest"):
        client.predict("nope", [[1.0]], input_name="x")
    client.close()


CLIENT_THEN_STUBS = """
import json
from pipeline.client.grpc import GrpcClient
client = GrpcClient({target!r}, timeout={timeout})
mine = {{"predict": client.predict("linear", [[1.0, 2.0], [5.0, 7.0]]).outputs,
        "pinned": client.predict("half_plus_two", [[1.0], [3.0]], label="stable", input_name="x").outputs,
        "status": client.model_status("half_plus_two"), "metadata": client.metadata("linear")}}
seen = list({seen})

import grpc
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc,
                                     predict_pb2, prediction_service_pb2_grpc)
channel = grpc.insecure_channel({target!r})
prediction = prediction_service_pb2_grpc.PredictionServiceStub(channel)
def predict(model, rows, key, label=""):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    if label:
        request.model_spec.version_label = label
    request.inputs[key].CopyFrom(tf.make_tensor_proto(rows, dtype=tf.float32))
    answer = prediction.Predict(request, {timeout})
    return {{name: tf.make_ndarray(proto).tolist() for name, proto in answer.outputs.items()}}
status_request = get_model_status_pb2.GetModelStatusRequest()
status_request.model_spec.name = "half_plus_two"
status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(status_request, {timeout})
metadata_request = get_model_metadata_pb2.GetModelMetadataRequest()
metadata_request.model_spec.name = "linear"
metadata_request.metadata_field.append("signature_def")
metadata = prediction.GetModelMetadata(metadata_request, {timeout})
signature_map = get_model_metadata_pb2.SignatureDefMap()
metadata.metadata["signature_def"].Unpack(signature_map)
official = {{"predict": predict("linear", [[1.0, 2.0], [5.0, 7.0]], "inputs"),
            "pinned": predict("half_plus_two", [[1.0], [3.0]], "x", label="stable"),
            "status": [[entry.version, get_model_status_pb2.ModelVersionStatus.State.Name(entry.state)]
                       for entry in status.model_version_status],
            "signatures": json_format.MessageToDict(signature_map, preserving_proto_field_name=True),
            "version": metadata.model_spec.version.value}}
print(json.dumps({{"mine": mine, "seen": seen, "official": official}}))
"""


def test_the_dashboard_client_never_imports_tensorflow_and_reads_what_the_official_stubs_read(
        server: GrpcServer) -> None:
    """Predict, GetModelStatus and GetModelMetadata from the dashboard's client in a fresh process,
    with nothing importing TensorFlow or putting it in sys.modules (an audit hook watches), then the
    same calls with TensorFlow and the official stubs in the same process: the same answers."""
    from tests.support.no_tensorflow import SEEN, run_watched

    done = run_watched(CLIENT_THEN_STUBS.format(target=server.target, timeout=RPC_TIMEOUT, seen=SEEN))
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    mine, official = report["mine"], report["official"]
    assert report["seen"] == []
    assert mine["predict"] == official["predict"] == {"output_0": [[3.0], [6.0]]}
    assert mine["pinned"] == official["pinned"] == {"y": [[2.5], [3.5]]}
    assert [[entry["version"], entry["state"]] for entry in mine["status"]] == official["status"]
    assert {entry["status"]["error_code"] for entry in mine["status"]} == {"OK"}
    assert mine["metadata"]["metadata"]["signature_def"] == official["signatures"]
    assert mine["metadata"]["model_spec"] == {"name": "linear", "version": str(official["version"])}


def test_the_grpc_snippet_runs_as_printed(server: GrpcServer) -> None:
    snippet = grpc_python_snippet(server.target, "linear", [[1.0, 2.0]], version=1)
    printed: list[str] = []
    capture = {"print": lambda *args: printed.append(" ".join(map(str, args)))}
    exec(compile(snippet, "snippet.py", "exec"), capture)
    assert printed[0] == "version 1"
    assert printed[1].endswith("[[3.0]]")


def test_a_client_of_a_server_without_grpc_gets_an_actionable_error() -> None:
    from tests.server.harness import free_port

    client = GrpcClient(f"127.0.0.1:{free_port()}", timeout=5)
    with pytest.raises(ClientError, match="UNAVAILABLE") as caught:
        client.health()
    assert "--port 8500" in str(caught.value)
