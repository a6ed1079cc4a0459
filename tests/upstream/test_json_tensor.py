"""TensorFlow Serving's `json_tensor_test.cc` cases, ported: the REST codec's JSON -> tensors
(`FillPredictRequestFromJson`) and tensors -> JSON (`MakeJsonFromTensors`), with upstream's inputs,
expected tensors and error texts. In-process: the codec needs no server (`rest/json_tensor.py`).
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.serving.errors import Code, ServingError
from pipeline.serving.rest import json_tensor as jt
from pipeline.serving.rest.json_body import parse_json_body

INT32 = {"default": "DT_INT32"}
STRING = {"default": "DT_STRING"}
NAMED = {"int_tensor": "DT_INT32", "str_tensor": "DT_STRING"}


def fill(body: str, dtypes: dict[str, str]) -> tuple[str, dict[str, np.ndarray]]:
    return jt.parse_predict_inputs(parse_json_body(body.encode()), dtypes)


def error_of(body: str, dtypes: dict[str, str]) -> str:
    with pytest.raises(ServingError) as caught:
        fill(body, dtypes)
    assert caught.value.code is Code.INVALID_ARGUMENT
    return caught.value.message


@pytest.mark.parametrize("key, form", [("instances", "row"), ("inputs", "columnar")])
def test_single_unnamed_tensor(key: str, form: str) -> None:
    got_form, tensors = fill(f'{{"{key}": [[1,2],[3,4],[5,6]]}}', INT32)
    assert got_form == form
    assert tensors["default"].dtype == np.int32 and tensors["default"].shape == (3, 2)
    assert tensors["default"].ravel().tolist() == [1, 2, 3, 4, 5, 6]


def test_single_unnamed_tensor_base64_scalars() -> None:
    _, tensors = fill('{"instances": [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}]}', STRING)
    assert tensors["default"].shape == (2,) and tensors["default"].tolist() == [b"hello", b"world"]


def test_single_unnamed_tensor_base64_lists() -> None:
    _, tensors = fill('{"instances": [[{"b64": "aGVsbG8="}], [{"b64": "d29ybGQ="}]]}', STRING)
    assert tensors["default"].shape == (2, 1) and tensors["default"].tolist() == [[b"hello"], [b"world"]]


def test_multiple_named_tensors_row_format() -> None:
    _, tensors = fill('{"instances": [{"int_tensor": [[1,2],[3,4],[5,6]], "str_tensor": ["foo","bar"]},'
                      ' {"int_tensor": [[7,8],[9,10],[11,12]], "str_tensor": ["baz","bat"]}]}', NAMED)
    assert tensors["int_tensor"].shape == (2, 3, 2)
    assert tensors["int_tensor"].ravel().tolist() == list(range(1, 13))
    assert tensors["str_tensor"].shape == (2, 2)
    assert tensors["str_tensor"].ravel().tolist() == [b"foo", b"bar", b"baz", b"bat"]


def test_multiple_named_tensors_columnar_format() -> None:
    _, tensors = fill('{"inputs": {"int_tensor": [[1,2],[3,4]], "str_tensor": ["foo","bar"]}}', NAMED)
    assert tensors["int_tensor"].shape == (2, 2) and tensors["str_tensor"].tolist() == [b"foo", b"bar"]


def test_mixed_input_forms_are_refused() -> None:
    assert "expecting only one of 'inputs' or 'instances' keys to exist" in error_of(
        '{"instances": [[1,2]], "inputs": [[1,2]]}', INT32)


def test_instances_field_missing() -> None:
    assert error_of('{"foobar": [[1,2]]}', INT32) == "Missing 'inputs' or 'instances' key"


def test_non_list_instances() -> None:
    assert "Expecting 'instances' to be an list/array" in error_of('{"instances": "foo"}', INT32)


def test_mismatched_number_of_tensor_elements() -> None:
    assert "Expecting tensor size: 4 but got: 2" in error_of('{"instances": [[1,2,3,4], [1,2]]}', INT32)


@pytest.mark.parametrize("value", ["2147483648", "1.5"])
def test_a_value_that_is_not_an_int32(value: str) -> None:
    assert f"JSON Value: {value} Type: Number is not of expected type: int32" in error_of(
        f'{{"instances": [{value}]}}', INT32)


def test_named_instances_with_different_keys() -> None:
    assert "keys must be equal to: int_tensor,str_tensor" in error_of(
        '{"instances": [{"int_tensor": [1]}, {"str_tensor": ["a"]}]}', NAMED)


def test_make_json_from_tensors_row_and_columnar() -> None:
    tensor = {"default": np.array([[1, 2], [3, 4]], np.int32)}
    assert jt.format_predict_response("row", tensor) == b'{\n    "predictions": [[1,2],[3,4]]\n}'
    assert jt.format_predict_response("columnar", tensor) == b'{\n    "outputs": [[1,2],[3,4]]\n}'


def test_make_json_from_named_tensors_row_format() -> None:
    tensors = {"a": np.array([1, 2], np.int32), "b": np.array([b"x", b"y"], object)}
    assert jt.format_predict_response("row", tensors) == (
        b'{\n    "predictions": [{"a":1,"b":"x"},{"a":2,"b":"y"}]\n}')


def test_make_json_from_non_finite_floats() -> None:
    tensor = {"f": np.array([np.nan, np.inf, -np.inf], np.float32)}
    assert jt.format_predict_response("row", tensor) == b'{\n    "predictions": [NaN,Infinity,-Infinity]\n}'
