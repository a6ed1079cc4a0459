"""The tutorial's request, verbatim, against a Keras 3 `Model.export`ed SavedModel.

The server is started with the same flags the tensorflow/serving Docker image passes
(`--port=8500 --model_name=... --model_base_path=...`; here a free port in place of 8500, so a
server already on 8500 cannot collide), plus a MonitoringConfig file.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.server.harness import Models, Server, error_of, free_port, install_version, ok_json, start_server

PREDICT = "/v1/models/linear_model:predict"
METRICS_PATH = "/custom/metrics"


@pytest.fixture(scope="module")
def tutorial_server(models: Models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("tutorial")
    install_version(models.linear_keras, root / "linear_model", "1")
    monitoring = root / "monitoring.config"
    monitoring.write_text(f'prometheus_config {{ enable: true, path: "{METRICS_PATH}" }}\n')
    flags = [f"--port={free_port()}", "--model_name=linear_model",
             f"--model_base_path={root / 'linear_model'}", f"--monitoring_config_file={monitoring}"]
    server = start_server(flags, root / "server.log")
    yield server
    server.stop()


def test_tutorial_request_verbatim(tutorial_server: Server) -> None:
    expected = {"predictions": [[3.0], [6.0]]}
    assert ok_json(tutorial_server.post(PREDICT, '{"instances": [[1.0, 2.0], [5.0, 7.0]]}')) == expected
    body = '{"signature_name": "serving_default", "instances": [[1.0, 2.0], [5.0, 7.0]]}'
    response = tutorial_server.post(PREDICT, body)
    assert ok_json(response) == expected
    assert "[[3.0],[6.0]]" in response.text.replace(" ", "").replace("\n", "")


def test_columnar_and_metadata_of_a_keras_export(tutorial_server: Server) -> None:
    assert ok_json(tutorial_server.post(PREDICT, {"inputs": [[1.0, 2.0]]})) == {"outputs": [[3.0]]}
    named = {"inputs": {"inputs": [[0.0, 0.0]]}}
    assert ok_json(tutorial_server.post(PREDICT, named)) == {"outputs": [[3.0]]}
    metadata = ok_json(tutorial_server.get("/v1/models/linear_model/metadata"))
    default = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert default["inputs"]["inputs"]["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in default["inputs"]["inputs"]["tensor_shape"]["dim"]] == ["-1", "2"]
    assert list(default["outputs"]) == ["output_0"]


def test_wrong_shape_is_a_readable_400(tutorial_server: Server) -> None:
    message = error_of(tutorial_server.post(PREDICT, {"instances": [[1.0, 2.0, 3.0]]}), 400)
    # No shape check of ours: the graph's MatMul refuses it, and its message is the answer (as in TF Serving)
    assert "Matrix size-incompatible: In[0]: [1,3], In[1]: [2,1]" in message
    assert "Missing named input" not in message
    assert ok_json(tutorial_server.post(PREDICT, {"instances": [[1.0, 2.0]]})) == {"predictions": [[3.0]]}


def test_monitoring_config_file_sets_the_metrics_path(tutorial_server: Server) -> None:
    tutorial_server.post(PREDICT, {"instances": [[1.0, 2.0]]})
    response = tutorial_server.get(METRICS_PATH)
    assert response.status_code == 200
    assert ':tensorflow:serving:request_count{model_name="linear_model",status="OK"}' in response.text
    assert tutorial_server.get("/monitoring/prometheus/metrics").status_code == 404


def test_both_apis_are_announced_as_tensorflow_model_server_does(tutorial_server: Server) -> None:
    assert "Running gRPC ModelServer at 127.0.0.1:" in tutorial_server.log()
    assert "Exporting HTTP/REST API at:127.0.0.1:" in tutorial_server.log()
