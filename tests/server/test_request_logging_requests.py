"""Requests reach the request log on a real server: REST and gRPC predict, classify and regress are
logged with the request sent and the answer given (a REST request as the protobuf messages a gRPC
client would have exchanged), a failed one with its status and message; sampling 0.25 logs about a
quarter, no logging_config nothing; SIGTERM right after the last answer loses none.

Model `every` logs at rate 1.0, `quarter` at 0.25, `none` has no logging_config; all three serve
half_plus_two (y = 0.5 x + 2) from one base path."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from tensorflow_serving.apis import classification_pb2, inference_pb2, regression_pb2

from pipeline.traffic.logs import Logged, read_logs
from tests.server.grpc_harness import RPC_TIMEOUT, predict_request
from tests.server.harness import free_port, start_server, wait_for

RATES = {"every": 1.0, "quarter": 0.25}


def _config(root: Path, base: Path) -> Path:
    entries = []
    for name in ("every", "quarter", "none"):
        logging = "" if name == "none" else (
            f'logging_config {{ log_collector_config {{ type: "file" '
            f'filename_prefix: "{root / "traffic" / name / "requests"}" }} '
            f'sampling_config {{ sampling_rate: {RATES[name]} }} }}')
        entries.append(f'config {{ name: "{name}" base_path: "{base}" model_platform: "tensorflow" '
                       f'{logging} }}')
    config = root / "models.config"
    config.write_text("model_config_list { " + " ".join(entries) + " }")
    return config


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    from tests.server import savedmodels

    root = tmp_path_factory.mktemp("request-logging")
    savedmodels.export_half_plus_two(root / "hpt" / "1")
    grpc_port = free_port()
    server = start_server([f"--model_config_file={_config(root, root / 'hpt')}", f"--port={grpc_port}"],
                          root / "server.log")
    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
    try:
        for name in ("every", "quarter", "none"):
            wait_for(lambda name=name: server.get(f"/v1/models/{name}").ok, 120)
        yield server, channel, root
    finally:
        channel.close()
        server.stop()


def predict(server, model: str, x: int):
    return server.post(f"/v1/models/{model}:predict", {"instances": [float(x)]})


def logged(root: Path, model: str) -> list[Logged]:
    return read_logs([root / "traffic" / model])


def wait_logged(root: Path, model: str, count: int) -> list[Logged]:
    """The model's logged requests once `count` are on disk with their companion records (both are
    flushed within about a second)."""

    def enough() -> list[Logged] | None:  # companion lines may land a moment after their records
        found = logged(root, model)
        return found if len(found) >= count and all(e.status is not None for e in found) else None

    return wait_for(enough, 60)


def test_rest_and_grpc_predicts_are_logged_with_their_request_and_answer(served) -> None:
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    server, channel, root = served
    before = len(logged(root, "every"))
    answer = server.post("/v1/models/every:predict", {"instances": [1.0, 2.0]})
    assert answer.json() == {"predictions": [2.5, 3.0]}
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    response = stub.Predict(predict_request("every", [6.0]), timeout=RPC_TIMEOUT)
    assert list(response.outputs["y"].float_val) == [5.0]
    entries = wait_logged(root, "every", before + 2)[before:]
    by_transport = {entry.transport: entry for entry in entries}
    assert set(by_transport) == {"REST", "gRPC"}
    for transport, sent, answered in (("REST", [1.0, 2.0], [2.5, 3.0]), ("gRPC", [6.0], [5.0])):
        entry = by_transport[transport]
        assert (entry.model, entry.version, entry.api, entry.status, entry.signature) == (
            "every", 1, "predict", "OK", "serving_default")
        assert entry.latency_ms is not None and entry.latency_ms > 0
        log = entry.prediction_log().predict_log
        assert list(log.request.inputs["x"].float_val) == sent
        assert log.request.model_spec.name == "every"
        assert list(log.response.outputs["y"].float_val) == answered
        assert log.response.model_spec.version.value == 1
        assert entry.prediction_log().log_metadata.sampling_config.sampling_rate == 1.0


def test_classify_regress_and_multi_inference_are_logged_over_rest_and_grpc(served) -> None:
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    server, channel, root = served
    before = len(logged(root, "every"))
    assert server.post("/v1/models/every:classify", {"signature_name": "classify_x_to_y",
                                                     "examples": [{"x": 2.0}]}).ok
    assert server.post("/v1/models/every:regress", {"signature_name": "regress_x_to_y",
                                                    "examples": [{"x": 4.0}, {"x": 0.0}]}).ok
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = regression_pb2.RegressionRequest()
    request.model_spec.name, request.model_spec.signature_name = "every", "regress_x_to_y"
    request.input.example_list.examples.add().features.feature["x"].float_list.value.append(8.0)
    stub.Regress(request, timeout=RPC_TIMEOUT)
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name, classify.model_spec.signature_name = "every", "classify_x_to_y"
    classify.input.example_list.examples.add().features.feature["x"].float_list.value.append(2.0)
    stub.Classify(classify, timeout=RPC_TIMEOUT)
    multi = inference_pb2.MultiInferenceRequest()
    task = multi.tasks.add()
    task.model_spec.name, task.model_spec.signature_name = "every", "regress_x_to_y"
    task.method_name = "tensorflow/serving/regress"
    multi.input.example_list.examples.add().features.feature["x"].float_list.value.append(10.0)
    stub.MultiInference(multi, timeout=RPC_TIMEOUT)
    entries = wait_logged(root, "every", before + 5)[before:]
    seen = {(entry.api, entry.transport): entry.prediction_log() for entry in entries}
    assert set(seen) == {("classify", "REST"), ("regress", "REST"), ("regress", "gRPC"), ("classify", "gRPC"),
                         ("multi_inference", "gRPC")}
    result = seen[("multi_inference", "gRPC")].multi_inference_log.response.results[0]
    assert result.regression_result.regressions[0].value == 7.0 and result.model_spec.version.value == 1
    for transport in ("REST", "gRPC"):
        result = seen[("classify", transport)].classify_log.response.result
        assert result.classifications[0].classes[0].score == 3.0
    rest = seen[("regress", "REST")].regress_log
    assert [e.features.feature["x"].float_list.value[0] for e in rest.request.input.example_list.examples] \
        == [4.0, 0.0]
    assert [r.value for r in rest.response.result.regressions] == [4.0, 2.0]
    assert rest.response.model_spec.signature_name == "regress_x_to_y"
    assert [r.value for r in seen[("regress", "gRPC")].regress_log.response.result.regressions] == [6.0]


def test_a_failed_request_is_logged_with_its_status_and_message(served) -> None:
    server, _, root = served
    before = len(logged(root, "every"))
    answer = server.post("/v1/models/every:predict", {"instances": [[1.0], ["a"]]})
    assert answer.status_code == 400
    entry = wait_logged(root, "every", before + 1)[before]
    assert entry.status == "INVALID_ARGUMENT" and entry.message == answer.json()["error"]
    assert entry.outputs == "" and not entry.prediction_log().predict_log.HasField("response")


def test_sampling_a_quarter_logs_about_a_quarter_and_sigterm_loses_no_record(tmp_path: Path) -> None:
    """400 requests to `quarter`, 300 to `every`, 20 to `none`, then SIGTERM right after the last
    answer: what was queued is written before the process ends, so the files hold every sampled one."""
    from tests.server import savedmodels

    savedmodels.export_half_plus_two(tmp_path / "hpt" / "1")
    server = start_server([f"--model_config_file={_config(tmp_path, tmp_path / 'hpt')}"],
                          tmp_path / "server.log")
    sent = {"every": 300, "quarter": 400, "none": 20}
    try:
        for name in sent:
            wait_for(lambda name=name: server.get(f"/v1/models/{name}").ok, 120)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda call: predict(server, *call),
                                    [(name, x) for name, count in sent.items() for x in range(count)]))
        assert all(answer.ok for answer in answers)
    finally:
        server.stop()  # SIGTERM at once: what is queued is written before the process ends
    assert server.process.returncode == 0
    every = logged(tmp_path, "every")
    assert sorted(e.prediction_log().predict_log.request.inputs["x"].float_val[0] for e in every) \
        == [float(x) for x in range(sent["every"])]
    assert f"Request log of model every closed: {sent['every']} records written, 0 dropped" in server.log()
    quarter = len(logged(tmp_path, "quarter"))
    assert 55 <= quarter <= 145, quarter  # mean 100, sd 8.7: outside in about 1 run in 10^6
    assert f"Request log of model quarter closed: {quarter} records written, 0 dropped" in server.log()
    assert not (tmp_path / "traffic" / "none").exists()
