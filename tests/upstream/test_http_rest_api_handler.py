"""TensorFlow Serving's `http_rest_api_handler_test.cc`, ported to HTTP: model
`saved_model_half_plus_two_2_versions` with only version 123 aspired (a `specific` version policy)
and label `Version_Label` -> 123, each case's request and expected answer as upstream writes them."""

from __future__ import annotations

import json

import pytest
import requests

from tests.support import upstream_models as um
from tests.upstream.conftest import ModelFolder, UpstreamServers

pytestmark = pytest.mark.slow

MODEL = "saved_model_half_plus_two_2_versions"
LABEL = "Version_Label"
CONFIG = """model_config_list {{
  config {{
    name: "{name}"
    base_path: "{base_path}"
    model_platform: "tensorflow"
    model_version_policy {{ specific {{ versions: 123 }} }}
    version_labels {{ key: "{label}" value: 123 }}
  }}
}}
"""


@pytest.fixture(scope="module")
def rest(servers: UpstreamServers, testdata: ModelFolder) -> str:
    config = testdata.scratch / "handler_test.config"
    config.write_text(CONFIG.format(name=MODEL, base_path=testdata.root / MODEL, label=LABEL))
    return "http://" + servers.run(None, None, model_config_file=config)[2]


def process(rest: str, method: str, path: str, body: str = "") -> tuple[int, dict]:
    response = requests.request(method, rest + path, data=body.encode(), timeout=30)
    return response.status_code, json.loads(response.text)


@pytest.mark.parametrize(("method", "path", "text"), [
    ("GET", "/v1/foo", "Malformed request"),
    ("POST", "/v1/foo", "Malformed request"),
    ("GET", "/v1/models", "Missing model name"),
    ("POST", "/v1/models", "Malformed request"),
    ("GET", "/v1/models/foo:predict", "Malformed request"),
    ("GET", "/v1/models/foo/version/50:predict", "Malformed request"),
    ("POST", "/v1/models/foo/version/50:regress", "Malformed request"),
    ("POST", "/v1/models/foo/versions/HELLO:regress", "Malformed request"),
    ("POST", f"/v1/models/foo/versions/{2**64 - 1}:regress", "Failed to convert version"),
    ("GET", "/v1/models/debug/model_name", "Malformed request"),
    ("POST", "/v1/models/foo/metadata", "Malformed request"),
    ("POST", "/v1/models/foo/label/some_label:regress", "Malformed request"),
    ("POST", "/v1/models/foo/versions/50/labels/some_label:regress", "Malformed request"),
    ("POST", "/v1/models/foo/versions/some_label:regress", "Malformed request"),
])
def test_unsupported_api_calls(rest: str, method: str, path: str, text: str) -> None:
    status, body = process(rest, method, path)
    assert status == 400 and text in body["error"]


@pytest.mark.parametrize("path", ["/v1/models/foo:predict", "/v1/models/foo/versions/50:predict",
                                  f"/v1/models/{MODEL}99:predict"])
def test_predict_model_name_version_errors(rest: str, path: str) -> None:
    status, _ = process(rest, "POST", path, '{ "instances": [1] }')
    assert status == 404  # NOT_FOUND


@pytest.mark.parametrize(("path", "body", "text"), [
    (":predict", "", "JSON Parse error: The document is empty"),
    (":predict", "instances = [1, 2]", "JSON Parse error: Invalid value"),
    (":predict", '{ "instances": ["x", "y"] }', "not of expected type: float"),
    ("/labels/Version_Nonexistent:predict", '{ "instances": ["x", "y"] }',
     "Unrecognized servable version label"),
    (":predict", '{ "signature_name": 100 }', "'signature_name' key must be a string value."),
])
def test_predict_request_errors(rest: str, path: str, body: str, text: str) -> None:
    status, answer = process(rest, "POST", f"/v1/models/{MODEL}{path}", body)
    assert status == 400 and text in answer["error"]


@pytest.mark.parametrize(("path", "body", "expected"), [
    (":predict", '{"instances": [[1.0, 2.0], [3.0, 4.0]]}', {"predictions": [[2.5, 3.0], [3.5, 4.0]]}),
    ("/versions/123:predict", '{"instances": [1.0, 2.0]}', {"predictions": [2.5, 3.0]}),
    (f"/labels/{LABEL}:predict", '{"instances": [1.0, 2.0]}', {"predictions": [2.5, 3.0]}),
    ("/versions/123:predict", '{"signature_name": "serving_default", "instances": [3.0, 4.0]}',
     {"predictions": [3.5, 4.0]}),
    ("/versions/123:predict", '{"signature_name": "serving_default", "inputs": [3.0, 4.0]}',
     {"outputs": [3.5, 4.0]}),
    (":regress", '{"signature_name": "regress_x_to_y", "examples": [ { "x": 80.0 } ] }', {"results": [42]}),
    ("/versions/123:regress", '{"signature_name": "regress_x_to_y", "examples": [ { "x": 80.0 } ] }',
     {"results": [42]}),
    (":classify", '{"signature_name": "classify_x_to_y", "examples": [ { "x": 20.0 } ] }',
     {"results": [[["", 12]]]}),
    (f"/labels/{LABEL}:regress", '{"signature_name": "regress_x_to_y", "examples": [ { "x": 80.0 } ] }',
     {"results": [42]}),
    (f"/labels/{LABEL}:classify", '{"signature_name": "classify_x_to_y", "examples": [ { "x": 10.0 } ] }',
     {"results": [[["", 7]]]}),
])
def test_predict_regress_classify(rest: str, path: str, body: str, expected: dict) -> None:
    response = requests.post(f"{rest}/v1/models/{MODEL}{path}", data=body.encode(), timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert json.loads(response.text) == expected


@pytest.mark.parametrize("path", [f"/v1/models/{MODEL}", f"/v1/models/{MODEL}/versions/123",
                                  f"/v1/models/{MODEL}/labels/{LABEL}"])
def test_get_status(rest: str, path: str) -> None:
    status, body = process(rest, "GET", path)
    assert status == 200
    assert body == {"model_version_status": [
        {"version": "123", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}


def test_get_model_metadata(rest: str, testdata: ModelFolder) -> None:
    expected = (json.loads((testdata.root / f"{MODEL}_metadata.json").read_text()) if testdata.upstream
                else um.half_plus_two_metadata(MODEL, "123"))  # the project's copies are half_plus_two_cpu
    response = requests.get(f"{rest}/v1/models/{MODEL}/metadata", timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    assert json.loads(response.text) == expected
