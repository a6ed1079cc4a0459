"""TensorFlow Serving's `tensorflow_model_server_test.py`, ported: its REST cases as written, and its
gRPC-only cases (TF2 classify/regress, TF Lite, `tf.saved_model.save` exports, model config files,
batching, channel arguments) asked over REST with the same models and the same expected values.
Plus the Docker smoke test and the counter model. Servers start with upstream's command lines
(conftest.py); the models are upstream's (`TFSERVING_TESTDATA`) or the project's copies.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.support import upstream_models as um
from tests.upstream.conftest import (
    BAD_MODEL_CONFIG,
    BATCHING_CONFIG,
    GOOD_MODEL_CONFIG,
    MONITORING_CONFIG,
    ModelFolder,
    UpstreamServers,
)

pytestmark = pytest.mark.slow


def call_rest(url: str, request: object | None) -> requests.Response:
    """Upstream's CallREST: POST the JSON body if there is one, else GET."""
    if request is None:
        return requests.get(url, timeout=30)
    return requests.post(url, data=json.dumps(request), timeout=30)


def rest_json(url: str, request: object | None) -> object:
    response = call_rest(url, request)
    assert response.status_code == 200, response.text
    return json.loads(response.text)


def predict_x(rest: str, x: float) -> object:
    """Upstream's VerifyPredictRequest over REST: input x of shape [1] holding `x`, model `default`."""
    return rest_json(f"http://{rest}/v1/models/default:predict", {"inputs": {"x": [x]}})


def sorted_object(obj: object) -> object:
    """Upstream's SortedObject: nested lists and dicts in a canonical order."""
    if isinstance(obj, dict):
        return sorted((k, sorted_object(v)) for k, v in obj.items())
    if isinstance(obj, list | tuple):
        return sorted((sorted_object(x) for x in obj), key=repr)
    return obj


def bundle(testdata: ModelFolder) -> Path:
    return testdata.root / "saved_model_half_plus_two_cpu"


def default_server(servers: UpstreamServers, testdata: ModelFolder) -> str:
    return servers.run("default", bundle(testdata))[2]


# -- upstream's REST cases, verbatim -----------------------------------------------------------------

def test_classify_rest(servers: UpstreamServers, testdata: ModelFolder) -> None:
    rest = default_server(servers, testdata)
    body = {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}
    assert rest_json(f"http://{rest}/v1/models/default:classify", body) == {"results": [[["", 3.0]]]}


def test_regress_rest(servers: UpstreamServers, testdata: ModelFolder) -> None:
    rest = default_server(servers, testdata)
    body = {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]}
    assert rest_json(f"http://{rest}/v1/models/default:regress", body) == {"results": [3.0]}


def test_predict_rest(servers: UpstreamServers, testdata: ModelFolder) -> None:
    rest = default_server(servers, testdata)
    assert rest_json(f"http://{rest}/v1/models/default:predict", {"instances": [2.0, 3.0, 4.0]}) == {
        "predictions": [3.0, 3.5, 4.0]}


def test_predict_columnar_rest(servers: UpstreamServers, testdata: ModelFolder) -> None:
    rest = default_server(servers, testdata)
    assert rest_json(f"http://{rest}/v1/models/default:predict", {"inputs": [2.0, 3.0, 4.0]}) == {
        "outputs": [3.0, 3.5, 4.0]}


def test_get_status_rest(servers: UpstreamServers, testdata: ModelFolder) -> None:
    rest = default_server(servers, testdata)
    assert rest_json(f"http://{rest}/v1/models/default", None) == {"model_version_status": [{
        "version": "123", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}


def test_get_model_metadata_rest(servers: UpstreamServers, testdata: ModelFolder) -> None:
    rest = default_server(servers, testdata)
    expected = (json.loads((testdata.root / "half_plus_two_model_metadata.json").read_text())
                if testdata.upstream else um.half_plus_two_metadata())
    got = rest_json(f"http://{rest}/v1/models/default/metadata", None)
    assert sorted_object(got) == sorted_object(expected)


def test_prometheus_endpoint(servers: UpstreamServers, testdata: ModelFolder) -> None:
    monitoring = testdata.file("monitoring_config.txt", MONITORING_CONFIG)
    rest = servers.run("default", bundle(testdata), monitoring_config_file=monitoring)[2]
    assert "# TYPE" in call_rest(f"http://{rest}/monitoring/prometheus/metrics", None).text


# -- upstream's gRPC cases, over REST ----------------------------------------------------------------

@pytest.mark.parametrize("folder", ["saved_model_half_plus_two_cpu", "saved_model_half_plus_two_tf2_cpu"])
def test_classify_and_regress_tf1_and_tf2(servers: UpstreamServers, testdata: ModelFolder,
                                          folder: str) -> None:
    """testClassify/testClassifyTf2/testRegress/testRegressTf2: the TF2 model's signatures carry the
    predict method name, and TF Serving classifies and regresses with them all the same."""
    rest = servers.run("default", testdata.root / folder)[2]
    example = {"examples": [{"x": 2.0}]}
    assert rest_json(f"http://{rest}/v1/models/default:classify",
                     {"signature_name": "classify_x_to_y", **example}) == {"results": [[["", 3.0]]]}
    assert rest_json(f"http://{rest}/v1/models/default:regress",
                     {"signature_name": "regress_x_to_y", **example}) == {"results": [3.0]}


@pytest.mark.parametrize("folder", ["saved_model_half_plus_two_cpu", "saved_model_half_plus_two_tf2_cpu"])
def test_predict_saved_model(servers: UpstreamServers, testdata: ModelFolder, folder: str) -> None:
    """_TestPredict: x of shape [1] holding 2.0 answers y = 3.0, with and without an output filter."""
    rest = servers.run("default", testdata.root / folder)[2]
    assert predict_x(rest, 2.0) == {"outputs": [3.0]}


def test_predict_batching(servers: UpstreamServers, testdata: ModelFolder) -> None:
    batching = testdata.file("batching_config.txt", BATCHING_CONFIG)
    rest = servers.run("default", bundle(testdata), batching_parameters_file=batching)[2]
    assert predict_x(rest, 2.0) == {"outputs": [3.0]}


def test_good_model_config(servers: UpstreamServers, testdata: ModelFolder) -> None:
    config = testdata.scratch / "good_model_config.conf"
    template = testdata.file("good_model_config.txt", GOOD_MODEL_CONFIG).read_text()
    half_plus_three = testdata.root / "saved_model_half_plus_three"
    config.write_text(template.replace("${TEST_HALF_PLUS_TWO_DIR}", str(bundle(testdata)))
                      .replace("${TEST_HALF_PLUS_THREE_DIR}", str(half_plus_three)))
    rest = servers.run(None, None, model_config_file=config)[2]
    assert rest_json(f"http://{rest}/v1/models/half_plus_two:predict", {"instances": [2.0]}) == {
        "predictions": [3.0]}
    assert rest_json(f"http://{rest}/v1/models/half_plus_three:predict", {"instances": [2.0]}) == {
        "predictions": [4.0]}


def test_bad_model_config(servers: UpstreamServers, testdata: ModelFolder) -> None:
    bad = testdata.file("bad_model_config.txt", BAD_MODEL_CONFIG)
    process = servers.run(None, None, model_config_file=bad, wait_for_server_ready=False)[0]
    assert process.wait(120) != 0
    assert "Error parsing text-format tensorflow.serving.ModelServerConfig" in servers.output(process)


def test_good_grpc_channel_args(servers: UpstreamServers, testdata: ModelFolder) -> None:
    rest = servers.run("default", bundle(testdata),
                       grpc_channel_arguments="grpc.max_connection_age_ms=2000,grpc.lb_policy_name=grpclb")[2]
    assert predict_x(rest, 2.0) == {"outputs": [3.0]}


@pytest.mark.parametrize("folder", ["saved_model_half_plus_two_tflite",
                                    "saved_model_half_plus_two_tflite_with_sigdef"])
def test_predict_on_tflite(servers: UpstreamServers, testdata: ModelFolder, folder: str) -> None:
    """testPredictOnTfLite / testPredictWithSignatureDefOnTfLite: `--prefer_tflite_model=true`."""
    rest = servers.run("default", testdata.root / folder, model_type="tflite")[2]
    assert predict_x(rest, 2.0) == {"outputs": [3.0]}
    assert rest_json(f"http://{rest}/v1/models/default", None)["model_version_status"][0]["version"] == "123"


def test_tf_saved_model_save(servers: UpstreamServers, tmp_path: Path) -> None:
    import tensorflow as tf

    base_path = tmp_path / "tf_saved_model_save"
    root = tf.train.Checkpoint()
    root.v1, root.v2 = tf.Variable(3.0), tf.Variable(2.0)
    root.f = tf.function(lambda x: {"y": root.v1 * root.v2 * x})
    tf.saved_model.save(root, str(base_path / um.VERSION), root.f.get_concrete_function(
        tf.TensorSpec(None, tf.float32)))
    rest = servers.run("default", base_path)[2]
    assert predict_x(rest, 2.0) == {"outputs": [12.0]}


def test_tf_saved_model_save_multiple_signatures(servers: UpstreamServers, tmp_path: Path) -> None:
    import tensorflow as tf

    base_path = tmp_path / "tf_saved_model_save"
    root = tf.train.Checkpoint()
    root.f = tf.function(lambda x: {"y": 1.0}, input_signature=[tf.TensorSpec(None, tf.float32)])
    root.g = tf.function(lambda x: {"y": 2.0}, input_signature=[tf.TensorSpec(None, tf.float32)])
    tf.saved_model.save(root, str(base_path / um.VERSION),
                        signatures={"serving_default": root.f, "custom_signature_key": root.g})
    rest = servers.run("default", base_path)[2]
    url = f"http://{rest}/v1/models/default:predict"
    assert rest_json(url, {"signature_name": "custom_signature_key", "inputs": {"x": [2.0]}}) == {
        "outputs": 2.0}
    assert predict_x(rest, 2.0) == {"outputs": 1.0}


def test_keras3_export(servers: UpstreamServers, tmp_path: Path) -> None:
    """test_sequential_keras_saved_model_save, for the Keras this project trains with (Keras 3)."""
    um.keras3_linear(tmp_path / "keras" / um.VERSION)
    rest = servers.run("default", tmp_path / "keras")[2]
    assert rest_json(f"http://{rest}/v1/models/default:predict", {"instances": [[2.0]]}) == {
        "predictions": [[5.0]]}


# -- the Docker smoke test and the counter ---------------------------------------------------------

def test_docker_smoke_test(servers: UpstreamServers, testdata: ModelFolder) -> None:
    """`docker run -p 8501:8501 -e MODEL_NAME=half_plus_two tensorflow/serving` +
    `curl -d '{"instances": [1.0, 2.0, 5.0]}' .../v1/models/half_plus_two:predict`."""
    rest = servers.run("half_plus_two", bundle(testdata))[2]
    response = call_rest(f"http://{rest}/v1/models/half_plus_two:predict", {"instances": [1.0, 2.0, 5.0]})
    assert response.status_code == 200
    assert json.loads(response.text) == {"predictions": [2.5, 3.0, 4.5]}


@pytest.mark.parametrize(("body", "expected"), [
    ({"instances": [[1.0, 2.0], [3.0, 4.0]]}, {"predictions": [[2.5, 3.0], [3.5, 4.0]]}),
    ({"inputs": {"x": 2.0}}, {"outputs": 3.0}),
    ({"inputs": {"x": [[1.0]]}}, {"outputs": [[2.5]]}),
])
def test_shapes_are_the_graphs_business(servers: UpstreamServers, testdata: ModelFolder, body,
                                        expected) -> None:
    rest = servers.run("half_plus_two", bundle(testdata))[2]
    assert rest_json(f"http://{rest}/v1/models/half_plus_two:predict", body) == expected


def test_counter_state_persists_across_requests(servers: UpstreamServers, testdata: ModelFolder) -> None:
    rest = servers.run("counter", testdata.root / "saved_model_counter")[2]
    url = f"http://{rest}/v1/models/counter:predict"
    incr_by = {"signature_name": "incr_counter_by", "inputs": {"delta": 3.0}}
    first, second = rest_json(url, incr_by), rest_json(url, incr_by)
    assert (first, second) == ({"outputs": 3.0}, {"outputs": 6.0})
