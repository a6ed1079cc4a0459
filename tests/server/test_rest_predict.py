"""Predict, classify and regress over real HTTP: the spec's §3.1 cases, end to end.

P23-P30 run against half_plus_two as in TF Serving's handler and server tests; P1-P19 run through
identity signatures, so what a client sends is what it gets back, converted both ways.
"""

from __future__ import annotations

import base64
import math

import numpy as np
import pytest
import requests

from tests.server.harness import Server, error_of, ok_json

HPT = "/v1/models/half_plus_two"
IDENTITY = "/v1/models/identity:predict"


# -- TF Serving's handler test (half_plus_two, version 123, label Version_Label) -------------------

def test_p23_row_predict(main_server: Server) -> None:
    response = main_server.post(f"{HPT}:predict", {"instances": [[1.0, 2.0], [3.0, 4.0]]})
    assert ok_json(response) == {"predictions": [[2.5, 3.0], [3.5, 4.0]]}
    assert "3.0" in response.text  # whole floats keep their .0


def test_p24_version_and_columnar(main_server: Server) -> None:
    assert ok_json(main_server.post(f"{HPT}/versions/123:predict", {"instances": [1.0, 2.0]})) == {
        "predictions": [2.5, 3.0]}
    body = {"signature_name": "serving_default", "inputs": [3.0, 4.0]}
    assert ok_json(main_server.post(f"{HPT}/versions/123:predict", body)) == {"outputs": [3.5, 4.0]}
    assert ok_json(main_server.post(f"{HPT}/labels/Version_Label:predict", body)) == {"outputs": [3.5, 4.0]}


def test_p25_regress_and_classify(main_server: Server) -> None:
    regress = {"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]}
    assert ok_json(main_server.post(f"{HPT}:regress", regress)) == {"results": [42.0]}
    classify = {"signature_name": "classify_x_to_y", "examples": [{"x": 20.0}]}
    assert ok_json(main_server.post(f"{HPT}:classify", classify)) == {"results": [[["", 12.0]]]}


def test_classify_with_classes_and_context(main_server: Server) -> None:
    body = {"signature_name": "classify_two_classes", "examples": [{"x": 2.0}, {"x": 4.0}]}
    assert ok_json(main_server.post(f"{HPT}:classify", body)) == {
        "results": [[["low", -3.0], ["high", 3.0]], [["low", -4.0], ["high", 4.0]]]}
    with_context = {"signature_name": "regress_x_to_y", "context": {"x": 6.0}, "examples": [{}, {}]}
    assert ok_json(main_server.post(f"{HPT}:regress", with_context)) == {"results": [5.0, 5.0]}


@pytest.mark.parametrize(("verb", "body", "status", "text"), [
    ("classify", {"signature_name": "nope", "examples": [{"x": 1.0}]}, 400,
     "No signature was found with the name: nope"),
    # No method_name check by default (--enable_signature_method_name_check=false, as TF Serving):
    # the signature's own outputs are what is refused.
    ("regress", {"examples": [{"x": 1.0}]}, 400,
     "No regression outputs found in SignatureDef"),
    ("classify", {"signature_name": "regress_x_to_y", "examples": [{"x": 1.0}]}, 400,
     "Expected classification signature outputs to contain at least one of 'classes' or 'scores'"),
    ("regress", {"signature_name": "regress_x_to_y", "instances": [1.0]}, 400,
     "key 'examples' is expected and was not found"),
    ("regress", {"signature_name": "regress_x_to_y", "examples": [[1.0]]}, 400,
     "Example must be JSON object but got JSON Array"),
    ("regress", {"signature_name": "regress_x_to_y", "examples": [{"x": None}]}, 400,
     "unexpected JSON type: Null"),
    ("regress", {"signature_name": "regress_x_to_y", "examples": [{"y": 1.0}]}, 400,
     "Feature: x (data type: float) is required but could not be found"),
])
def test_classify_regress_errors(main_server: Server, verb, body, status, text) -> None:
    assert text in error_of(main_server.post(f"{HPT}:{verb}", body), status)


def test_p27_unknown_model_and_version_are_404(main_server: Server) -> None:
    assert error_of(main_server.post("/v1/models/foo:predict", {"instances": [1]}), 404) == (
        "Servable not found for request: Latest(foo)")
    assert error_of(main_server.post("/v1/models/foo/versions/50:predict", {"instances": [1]}), 404) == (
        "Servable not found for request: Specific(foo, 50)")
    assert error_of(main_server.post(f"{HPT}/versions/124:predict", {"instances": [1.0]}), 404) == (
        "Servable not found for request: Specific(half_plus_two, 124)")  # on disk, but not aspired


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/foo"), ("POST", "/v1/foo"), ("POST", "/v1/models"),
    ("GET", "/v1/models/debug/model_name"), ("GET", "/v1/models/foo:predict"),
    ("GET", "/v1/models/foo/version/50:predict"), ("POST", "/v1/models/foo/versions/HELLO:regress"),
    ("POST", f"{HPT}:Predict"), ("POST", f"{HPT}/metadata"), ("PUT", f"{HPT}:predict"),
    ("DELETE", HPT), ("PATCH", HPT), ("POST", f"{HPT}/versions/123/labels/Version_Label:predict"),
])
def test_p28_malformed_requests(main_server: Server, method: str, path: str) -> None:
    response = requests.request(method, main_server.url + path, json={"instances": [1.0]}, timeout=30)
    assert error_of(response, 400) == f"Malformed request: {method} {path}"


def test_p28_missing_model_name(main_server: Server) -> None:
    assert error_of(main_server.get("/v1/models"), 400) == "Missing model name in request."


def test_model_listing_extension_names_every_served_model(main_server: Server) -> None:
    """`GET /v1/models:list` (ours; TF Serving answers it 400 Malformed request) lists the models the
    config serves, sorted, and the client reads it; any other method on it is malformed as usual."""
    from pipeline.client.rest import ServingClient

    response = main_server.get("/v1/models:list")
    assert response.status_code == 200
    names = [m["name"] for m in response.json()["models"]]
    assert names == sorted(names) and {"half_plus_two", "hpt_all", "default", "identity"} <= set(names)
    assert ServingClient(main_server.url).list_models() == names
    post = requests.post(main_server.url + "/v1/models:list", json={}, timeout=30)
    assert error_of(post, 400) == "Malformed request: POST /v1/models:list"


def test_p29_body_errors(main_server: Server) -> None:
    assert "JSON Parse error: The document is empty" in error_of(main_server.post(f"{HPT}:predict", ""), 400)
    assert "JSON Parse error: Invalid value" in error_of(
        main_server.post(f"{HPT}:predict", "instances = [1, 2]"), 400)
    assert "not of expected type: float" in error_of(
        main_server.post(f"{HPT}:predict", {"instances": ["x", "y"]}), 400)


def test_check_order_parse_before_lookup(main_server: Server) -> None:
    # Invalid JSON to an unknown model is a parse error; a valid body to it is a 404 (spec §2.2).
    assert "JSON Parse error" in error_of(main_server.post("/v1/models/foo:predict", "{"), 400)
    assert error_of(main_server.post("/v1/models/foo:predict", {"instances": []}), 404)
    assert "Serving signature name: \"nope\" not found in signature def" in error_of(
        main_server.post(f"{HPT}:predict", {"signature_name": "nope", "instances": [1.0]}), 400)


def test_p30_docker_default_model(main_server: Server) -> None:
    path = "/v1/models/default"
    assert ok_json(main_server.post(f"{path}:predict", {"instances": [2.0, 3.0, 4.0]})) == {
        "predictions": [3.0, 3.5, 4.0]}
    assert ok_json(main_server.post(f"{path}:predict", {"inputs": [2.0, 3.0, 4.0]})) == {
        "outputs": [3.0, 3.5, 4.0]}
    assert ok_json(main_server.post(f"{path}:classify", {
        "signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]})) == {"results": [[["", 3.0]]]}
    assert ok_json(main_server.post(f"{path}:regress", {
        "signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]})) == {"results": [3.0]}


# -- JSON <-> tensor cases through identity signatures -------------------------------------------

def identity(server: Server, signature: str, body: dict) -> object:
    return ok_json(server.post(IDENTITY, {"signature_name": signature, **body}))


def test_p1_p3_int32_rows(main_server: Server) -> None:
    assert identity(main_server, "", {"instances": [[1, 2], [3, 4], [5, 6]]}) == {
        "predictions": [[1, 2], [3, 4], [5, 6]]}
    assert identity(main_server, "predict_images", {"instances": [[1, 2]]}) == {"predictions": [[1, 2]]}


def test_p2_float_and_double_accept_ints(main_server: Server) -> None:
    floats = identity(main_server, "float", {"instances": [1, 2.0, 3, 4, 5.003, 0.007, 0.0]})["predictions"]
    expected = np.array([1, 2.0, 3, 4, 5.003, 0.007, 0.0], np.float32)
    assert np.array_equal(np.array(floats, np.float32), expected)
    doubles = {"signature_name": "double", "instances": [1.0, 2, 3, 4, 0.662, 0, 0.0]}
    response = main_server.post(IDENTITY, doubles)
    assert ok_json(response) == {"predictions": [1.0, 2.0, 3.0, 4.0, 0.662, 0.0, 0.0]}
    assert "[1.0,2.0,3.0,4.0,0.662,0.0,0.0]" in response.text.replace(" ", "")


def test_float32_rounding_of_inputs(main_server: Server) -> None:
    out = identity(main_server, "float", {"instances": [1435774380, 1435774380.0, 1e39, 1e-50]})
    # Written at float32 precision ("1.4357743e+09"): equal as float32, not as the double sent.
    expected = np.float32([1435774336.0, 1435774336.0, np.inf, 0.0])
    assert np.array_equal(np.float32(out["predictions"]), expected)


def test_p4_b64_strings(main_server: Server) -> None:
    body = {"instances": [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}]}
    assert identity(main_server, "string", body) == {"predictions": ["hello", "world"]}


def test_p5_multi_input_rows_with_nan(main_server: Server) -> None:
    body = ('{"signature_name": "multi", "instances": ['
            '{"int_tensor": [[1,2],[3,4],[5,6]], "str_tensor": ["foo","bar"], "float_tensor": [1.0, NaN], '
            '"dbl_tensor": [NaN]}, '
            '{"int_tensor": [[7,8],[9,0],[1,2]], "str_tensor": ["baz","bat"], '
            '"float_tensor": [2.0, Infinity], "dbl_tensor": [2.0]}]}')
    predictions = ok_json(main_server.post(IDENTITY, body))["predictions"]
    assert [p["int_tensor"] for p in predictions] == [[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]]
    assert [p["str_tensor"] for p in predictions] == [["foo", "bar"], ["baz", "bat"]]
    assert predictions[0]["float_tensor"][0] == 1.0 and math.isnan(predictions[0]["float_tensor"][1])
    assert predictions[1]["float_tensor"] == [2.0, math.inf]
    assert math.isnan(predictions[0]["dbl_tensor"][0]) and predictions[1]["dbl_tensor"] == [2.0]


def test_p6_columnar_named_and_plain(main_server: Server) -> None:
    tensor = [[[1, 2], [3, 4], [5, 6]]]
    assert identity(main_server, "int_tensor", {"inputs": {"int_tensor": tensor, "extra": 1}}) == {
        "outputs": tensor}
    assert identity(main_server, "int_tensor", {"inputs": tensor}) == {"outputs": tensor}


@pytest.mark.parametrize(("body", "text"), [
    ('{"signature_name": 5, "instances": [[1,2],[3,4],[5,6,7]]}', "must be a string value"),       # P8
    ('{"instances": [[1,2],[3,4],[5,6,7]], "inputs": [[1,2],[3,4],[5,6,7]]}', "Not formatted correctly"),
    ('{"instances": [[1,2],[3,4],[5,6,7]]}', "Expecting tensor size"),                              # P10
    ('{"instances": [[1,2],["a", "b"]]}', "not of expected type"),                                  # P11
    ('{"instances": [[1,2],[[3],[4]]]}', "Expecting"),
    ('{"inputs": [[1,2],[3]]}', "Encountered list at unexpected size"),
    ('{"instances": 5}', "Expecting 'instances' to be an list/array"),
    ('{"instances": []}', "No values in 'instances' array"),
    ('{"nothing": []}', "Missing 'inputs' or 'instances' key"),
    ('[1, 2]', "Is not object"),
    ('{"instances": [1.5]}', "not of expected type: int32"),
])
def test_p7_p11_input_errors(main_server: Server, body: str, text: str) -> None:
    assert text in error_of(main_server.post(IDENTITY, body), 400)


def test_p12_p13_mixed_and_ragged_objects(main_server: Server) -> None:
    first = {"int_tensor": [[1, 2], [3, 4], [5, 6]], "str_tensor": ["foo", "bar"]}
    mixed = {"signature_name": "pair", "instances": [first, [1, 20, 30], first]}
    assert "Expecting object but got list" in error_of(main_server.post(IDENTITY, mixed), 400)
    ragged = {"signature_name": "pair", "instances": [
        {"int_tensor": [[1, 2], [3, 4], [5, 6], [7, 8]], "str_tensor": ["foo", "bar"]},
        {"int_tensor": [[7, 8], [9, 0], [1, 2]], "str_tensor": ["baz", "bat"]}]}
    assert "Expecting tensor size" in error_of(main_server.post(IDENTITY, ragged), 400)
    missing = {"signature_name": "pair", "instances": [{"int_tensor": [1]}]}
    message = error_of(main_server.post(IDENTITY, missing), 400)
    assert "keys must be equal to: int_tensor,str_tensor" in message
    plain = {"signature_name": "pair", "instances": [1, 2]}
    assert "instances is a plain list" in error_of(main_server.post(IDENTITY, plain), 400)


def test_p14_p15_int_outputs_row_and_columnar(main_server: Server) -> None:
    tensor = [[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]]
    assert identity(main_server, "int_tensor", {"instances": tensor}) == {"predictions": tensor}
    assert identity(main_server, "int_tensor", {"inputs": tensor}) == {"outputs": tensor}
    assert identity(main_server, "int_tensor", {"instances": [1, 2, 3, 4, 5]}) == {
        "predictions": [1, 2, 3, 4, 5]}
    assert identity(main_server, "int_tensor", {"inputs": [1, 2, 3, 4, 5]}) == {"outputs": [1, 2, 3, 4, 5]}


def b64(text: str) -> dict:
    return {"b64": base64.b64encode(text.encode()).decode()}


def test_p16_bytes_outputs_are_b64(main_server: Server) -> None:
    body = {"instances": [[b64("hello"), b64("world")], [b64("tf"), b64("serving")]]}
    assert identity(main_server, "bytes", body) == {"predictions": [
        [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}], [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}]]}


def test_p17_non_finite_tokens_both_ways(main_server: Server) -> None:
    body = '{"signature_name": "float", "instances": [[NaN, Infinity], [3, -Infinity]]}'
    response = main_server.post(IDENTITY, body)
    assert response.status_code == 200
    compact = response.text.replace(" ", "").replace("\n", "")
    assert compact == '{"predictions":[[NaN,Infinity],[3.0,-Infinity]]}'


P18_INSTANCES = [
    {"int_tensor": [[1, 2], [3, 4], [5, 6]], "str_tensor": ["foo", "bar"], "float_tensor": [1.0],
     "double_scalar_tensor": 8.0, "str_tensor_bytes": [b64("hello"), b64("world")]},
    {"int_tensor": [[7, 8], [9, 0], [1, 2]], "str_tensor": ["baz", "bat"], "float_tensor": [2.0],
     "double_scalar_tensor": 9.0, "str_tensor_bytes": [b64("tf"), b64("serving")]},
]


def test_p18_several_outputs_row(main_server: Server) -> None:
    expected = [dict(item, str_tensor_bytes=item["str_tensor_bytes"]) for item in P18_INSTANCES]
    assert identity(main_server, "multi_out", {"instances": P18_INSTANCES}) == {"predictions": expected}


def test_p19_several_outputs_columnar(main_server: Server) -> None:
    inputs = {name: [item[name] for item in P18_INSTANCES] for name in P18_INSTANCES[0]}
    assert identity(main_server, "multi_out", {"inputs": inputs}) == {"outputs": {
        "double_scalar_tensor": [8.0, 9.0], "float_tensor": [[1.0], [2.0]],
        "int_tensor": [[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]],
        "str_tensor": [["foo", "bar"], ["baz", "bat"]],
        "str_tensor_bytes": [[{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}],
                             [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}]],
    }}


def test_int64_bool_and_unsupported_dtypes(main_server: Server) -> None:
    big = 2**62 + 1  # not representable as a double: must come back exact, unquoted
    response = main_server.post(IDENTITY, {"signature_name": "int64", "instances": [big, -1]})
    assert f"[{big},-1]" in response.text.replace(" ", "")
    assert identity(main_server, "bool", {"instances": [True, False]}) == {"predictions": [True, False]}
    assert "not of expected type: bool" in error_of(
        main_server.post(IDENTITY, {"signature_name": "bool", "instances": [1]}), 400)
    assert "to type: half" in error_of(
        main_server.post(IDENTITY, {"signature_name": "half", "inputs": [1.0]}), 501)
    assert "to type: half" in error_of(
        main_server.post(IDENTITY, {"signature_name": "half", "instances": [1.0]}), 400)
