"""JSON <-> tensor conversion behaves like TF Serving's REST API (spec §1.4, §1.6, §2.3, P1-P19, P29)."""

from __future__ import annotations

import json
import math

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pipeline.serving.errors import Code, ServingError
from pipeline.serving.rest import float_text
from pipeline.serving.rest import json_tensor as jt
from pipeline.serving.rest.float_text import decimal_text, json_array, json_items
from pipeline.serving.rest.http_status import HTTP_STATUS, http_status
from pipeline.serving.rest.json_body import parse_json_body, signature_name_of
from pipeline.serving.rest.json_tensor import (
    dumps,
    error_body,
    format_predict_response,
    parse_predict_inputs,
)

INT32 = {"default": "DT_INT32"}
FLOAT = {"x": "DT_FLOAT"}
STRING = {"default": "DT_STRING"}
TWO = {"a": "DT_INT32", "b": "DT_INT32"}
P5_INPUTS = {"int_tensor": "DT_INT32", "str_tensor": "DT_STRING", "float_tensor": "DT_FLOAT",
             "dbl_tensor": "DT_DOUBLE"}
HELLO_WORLD = np.array([b"hello", b"world", b"tf", b"serving"], dtype=object).reshape(2, 2)
P16_JSON = [[{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}], [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}]]


def predict(body: bytes | str, dtypes: dict[str, str]) -> tuple[str, dict[str, np.ndarray]]:
    """What the server does with a predict body: parse, check signature_name, convert inputs."""
    request = parse_json_body(body.encode() if isinstance(body, str) else body)
    signature_name_of(request)
    return parse_predict_inputs(request, dtypes)


def error_of(body: bytes | str, dtypes: dict[str, str] = INT32) -> ServingError:
    with pytest.raises(ServingError) as info:
        predict(body, dtypes)
    return info.value


def response(fmt: str, outputs: dict[str, np.ndarray]):
    """A response body as the client sees it (Python's json reads NaN/Infinity tokens)."""
    return json.loads(format_predict_response(fmt, outputs))


# ---------------------------------------------------------------- P1-P6: requests that convert

def test_p1_row_int32_matrix():
    fmt, tensors = predict('{"instances": [[1,2],[3,4],[5,6]]}', INT32)
    assert fmt == "row"
    assert tensors["default"].dtype == np.int32
    assert tensors["default"].tolist() == [[1, 2], [3, 4], [5, 6]]


@pytest.mark.parametrize(("dtype", "numpy_dtype", "body"), [
    ("DT_FLOAT", np.float32, '{"instances": [1, 2.0, 3, 4, 5.003, 0.007, 0.0]}'),
    ("DT_DOUBLE", np.float64, '{"instances": [1.0, 2, 3, 4, 0.662, 0, 0.0]}'),
])
def test_p2_floats_accept_integers(dtype, numpy_dtype, body):
    _, tensors = predict(body, {"default": dtype})
    values = tensors["default"]
    assert values.dtype == numpy_dtype and values.shape == (7,)
    assert values.tolist() == np.array(json.loads(body)["instances"], dtype=numpy_dtype).tolist()


def test_p3_signature_name_is_read():
    request = parse_json_body(b'{"signature_name": "predict_images", "instances": [[1,2]]}')
    assert signature_name_of(request) == "predict_images"
    assert parse_predict_inputs(request, INT32)[1]["default"].shape == (1, 2)


@pytest.mark.parametrize("request_", [{}, {"signature_name": ""}])
def test_empty_or_absent_signature_name_means_serving_default(request_):
    assert signature_name_of(request_) == "serving_default"


def test_p4_b64_strings_are_decoded():
    _, tensors = predict('{"instances": [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}]}', STRING)
    assert tensors["default"].dtype == object
    assert tensors["default"].tolist() == [b"hello", b"world"]


def test_p5_row_objects_batch_every_named_input():
    body = ('{"instances": [{"int_tensor": [[1,2],[3,4],[5,6]], "str_tensor": ["foo","bar"], '
            '"float_tensor": [1.0, NaN], "dbl_tensor": [NaN]}, {"int_tensor": [[7,8],[9,0],[1,2]], '
            '"str_tensor": ["baz","bat"], "float_tensor": [2.0, Infinity], "dbl_tensor": [2.0]}]}')
    fmt, t = predict(body, P5_INPUTS)
    assert fmt == "row"
    assert (t["int_tensor"].dtype, t["int_tensor"].shape) == (np.int32, (2, 3, 2))
    assert t["int_tensor"].ravel().tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2]
    assert t["str_tensor"].tolist() == [[b"foo", b"bar"], [b"baz", b"bat"]]
    assert t["float_tensor"].dtype == np.float32
    np.testing.assert_array_equal(t["float_tensor"], [[1, np.nan], [2, np.inf]])
    assert t["dbl_tensor"].dtype == np.float64
    np.testing.assert_array_equal(t["dbl_tensor"], [[np.nan], [2.0]])


@pytest.mark.parametrize("body", ['{"inputs": {"int_tensor": [[[1,2],[3,4],[5,6]]]}}',
                                  '{"inputs": [[[1,2],[3,4],[5,6]]]}'])
def test_p6_columnar_keeps_the_given_shape(body):
    fmt, tensors = predict(body, {"int_tensor": "DT_INT32"})
    assert fmt == "columnar"
    assert tensors["int_tensor"].shape == (1, 3, 2)
    assert tensors["int_tensor"].dtype == np.int32


def test_columnar_scalar_has_empty_shape_and_extra_keys_are_ignored():
    dtypes = {"a": "DT_DOUBLE", "b": "DT_INT64"}
    _, tensors = predict('{"inputs": {"a": 3.5, "b": [1], "unused": "x"}}', dtypes)
    assert tensors["a"].shape == () and tensors["a"] == 3.5
    assert tensors["b"].dtype == np.int64 and set(tensors) == {"a", "b"}


def test_columnar_inputs_may_differ_in_leading_dims():
    _, tensors = predict('{"inputs": {"a": [[1, 2]], "b": [1, 2, 3]}}', TWO)
    assert tensors["a"].shape == (1, 2) and tensors["b"].shape == (3,)


def test_empty_inner_lists_give_zero_sized_dims():
    _, tensors = predict('{"inputs": [[], []]}', FLOAT)
    assert tensors["x"].shape == (2, 0) and tensors["x"].dtype == np.float32


# ---------------------------------------------------------------- §1.6 value rules

def test_float_inputs_round_to_float32_and_saturate():
    body = '{"instances": [1435774380, 1435774380.0, 1e39, -1e39, 1e-50, -1e-50]}'
    values = predict(body, FLOAT)[1]["x"]
    assert values.dtype == np.float32
    assert values[:2].tolist() == [1435774336.0, 1435774336.0]
    assert values[2:4].tolist() == [math.inf, -math.inf]
    assert values[4] == 0 and not np.signbit(values[4]) and values[5] == 0 and np.signbit(values[5])


def test_nan_and_infinity_tokens_including_rapidjson_inf():
    values = predict('{"instances": [NaN, Infinity, -Infinity, Inf, -Inf]}', FLOAT)[1]["x"]
    assert np.isnan(values[0])
    assert values[1:].tolist() == [math.inf, -math.inf, math.inf, -math.inf]


def test_inf_inside_a_string_is_left_alone():
    values = predict('{"instances": ["Inf", "-NaN", "x"], "y": Inf}', {"s": "DT_STRING"})[1]["s"]
    assert values.tolist() == [b"Inf", b"-NaN", b"x"]


@pytest.mark.parametrize(("dtype", "good", "bad"), [
    ("DT_INT32", [-2147483648, 2147483647], [2147483648, 1.0, True]),
    ("DT_INT8", [-5, 7], [1e2]),
    ("DT_INT64", [-(2**63), 2**63 - 1], [2**63, 2.5]),
    ("DT_UINT32", [0, 2**32 - 1], [-1, 2**32]),
    ("DT_UINT64", [0, 2**64 - 1], [-1]),
    ("DT_BOOL", [True, False], [1, 0]),
    ("DT_STRING", ["a", "ü"], [1, None]),
])
def test_integer_bool_and_string_ranges(dtype, good, bad):
    array = predict(json.dumps({"inputs": good}), {"x": dtype})[1]["x"]
    expected = [v.encode() for v in good] if dtype == "DT_STRING" else good
    assert array.tolist() == expected
    for value in bad:
        error = error_of(json.dumps({"inputs": [value]}), {"x": dtype})
        assert f"is not of expected type: {jt._type_name(dtype)}" in error.message


def test_narrow_int_types_wrap_like_tf():
    assert predict('{"inputs": [300, -1]}', {"x": "DT_UINT8"})[1]["x"].tolist() == [44, 255]


def test_bool_mixed_into_floats_is_rejected():
    error = error_of('{"instances": [1.5, true]}', FLOAT)
    assert "JSON Value: true Type: True is not of expected type: float" in error.message


def test_integers_beyond_uint64_are_doubles():
    assert predict('{"inputs": [18446744073709551616]}', FLOAT)[1]["x"].tolist() == [2.0**64]
    assert "is not of expected type: uint64" in error_of('{"inputs": [18446744073709551616]}',
                                                         {"x": "DT_UINT64"}).message


# ---------------------------------------------------------------- parsing the body (P7, P29, §2.3)

def test_p7_p29_empty_body():
    assert error_of(b"").message == "JSON Parse error: The document is empty"


def test_whitespace_body_reports_its_offset():
    error = error_of(b" \n\t ")
    assert error.message == "JSON Parse error: The document is empty. at offset: 4"


def test_p29_malformed_json():
    error = error_of(b"instances = [1, 2]")
    assert error.code == "INVALID_ARGUMENT"
    assert error.message == "JSON Parse error: Invalid value. at offset: 0"


@pytest.mark.parametrize(("body", "text"), [
    (b'{"instances": [1 2]}', "Missing a comma or ']' after an array element. at offset: 17"),
    (b'{"a": 1 "b": 2}', "Missing a comma or '}' after an object member. at offset: 8"),
    (b'{"a" 1}', "Missing a colon after a name of object member."),
    (b'{1: 2}', "Missing a name for object member."),
    (b'{"a": "abc', "Missing a closing quotation mark in string."),
    (b'{"a": 1e400}', "Number too big to be stored in double."),
    (b'{"a": "\xff"}', "Invalid encoding in string."),
    (b'{"a": "\\ud800"}', "The surrogate pair in string is invalid."),
])
def test_malformed_json_gets_rapidjson_texts(body, text):
    error = error_of(body)
    assert error.message.startswith("JSON Parse error: ") and text in error.message


def test_top_level_must_be_an_object():
    assert error_of(b"[1, 2]").message.endswith(" Is not object")


def test_trailing_bytes_after_the_object_are_ignored():
    assert predict(b'{"instances": [1]} trailing junk', INT32)[1]["default"].tolist() == [1]


def test_very_deep_nesting_is_a_400_not_a_crash():
    deep_input = b'{"inputs": ' + b"[" * 2000 + b"]" * 2000 + b"}"
    for body in (b"[" * 100_000, b"[" * 5000 + b"]" * 5000, deep_input):
        assert error_of(body).code == "INVALID_ARGUMENT"


def test_p8_signature_name_checked_before_shapes():
    error = error_of('{"signature_name": 5, "instances": [[1,2],[3,4],[5,6,7]]}')
    assert "'signature_name' key must be a string value." in error.message
    assert error.message.startswith("JSON Value: {")


# ---------------------------------------------------------------- conversion errors (P9-P13, P29, §2.3)

@pytest.mark.parametrize(("body", "dtypes", "text"), [
    ('{"instances": [[1,2],[3,4],[5,6,7]], "inputs": [[1,2],[3,4],[5,6,7]]}', INT32,
     "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist "),
    ('{"signature_name": "x"}', INT32, "Missing 'inputs' or 'instances' key"),
    ('{"instances": {"a": 1}}', INT32, "Expecting 'instances' to be an list/array"),
    ('{"instances": []}', INT32, "No values in 'instances' array"),
    ('{"instances": [[1,2],[3,4],[5,6,7]]}', INT32,
     ("Failed to process element: 2 of 'instances' list. Error: INVALID_ARGUMENT: "
      "Expecting tensor size: 2 but got: 3")),
    ('{"instances": [[1,2],[[3,4]]]}', INT32, "Expecting shape [2] but got: [1,2]"),
    ('{"instances": [[1,2],["a", "b"]]}', INT32,
     'JSON Value: "a" Type: String is not of expected type: int32'),
    ('{"instances": ["x", "y"]}', FLOAT,
     ("Failed to process element: 0 of 'instances' list. Error: "
      'INVALID_ARGUMENT: JSON Value: "x" Type: String is not of expected type: float')),
    ('{"inputs": ["x", "y"]}', FLOAT, 'JSON Value: "x" Type: String is not of expected type: float'),
    ('{"inputs": [[1,2],[3]]}', FLOAT, "Encountered list at unexpected size: 1 at level: 1 expected size: 2"),
    ('{"instances": [[[1,2],[3]]]}', FLOAT,
     "Error: INVALID_ARGUMENT: Encountered list at unexpected size: 1 at level: 1"),
    ('{"instances": [[1, 2], [1, 2]], "x": 1}', TWO,
     ("instances is a plain list, but expecting list of objects as multiple input tensors required as per "
     "tensorinfo_map")),
    ('{"inputs": [1]}', TWO,
     ("inputs is a plain value/list, but expecting an object as multiple input tensors required as per "
     "tensorinfo_map")),
    ('{"instances": [{"a": 1, "foo": 2}]}', TWO,
     ("Failed to process element: 0 key: foo of 'instances' list. Error: INVALID_ARGUMENT: JSON object: does "
     "not have named input: foo")),
    ('{"instances": [{"a": 1}]}', TWO, "keys must be equal to: a,b"),
    ('{"inputs": {"b": 1}}', TWO, "Missing named input: a in 'inputs' object."),
    ('{"instances": [[1], {"x": [1]}]}', {"x": "DT_INT32"},
     "Expecting value/list but got object at item 1 of input list"),
    ('{"inputs": [{"b64": 5}]}', {"x": "DT_STRING"}, "not formatted correctly for base64 data"),
    ('{"inputs": [{"b64": "!!!"}]}', {"x": "DT_STRING"}, "Unable to base64 decode"),
    ('{"inputs": [[1, 2], 3]}', FLOAT,
     "JSON Value: 3 found at incorrect level: 2 in the JSON DOM. Expected at level: 2"),
])
def test_conversion_errors_carry_tf_texts(body, dtypes, text):
    error = error_of(body, dtypes)
    assert (error.code, http_status(error.code)) == ("INVALID_ARGUMENT", 400)
    assert text in error.message


def test_p12_list_after_objects():
    body = ('{"instances": [{"int_tensor": [[1,2],[3,4],[5,6]], "str_tensor": ["foo","bar"]}, [1, 20, 30], '
            '{"int_tensor": [[1,2],[3,4],[5,6]], "str_tensor": ["foo","bar"]}]}')
    error = error_of(body, {"int_tensor": "DT_INT32", "str_tensor": "DT_STRING"})
    assert error.message == "Expecting object but got list at item 1 of input list"


def test_p13_named_input_changes_size_between_instances():
    body = ('{"instances": [{"int_tensor": [[1,2],[3,4],[5,6],[7,8]], "str_tensor": ["foo","bar"]}, '
            '{"int_tensor": [[7,8],[9,0],[1,2]], "str_tensor": ["baz","bat"]}]}')
    error = error_of(body, {"int_tensor": "DT_INT32", "str_tensor": "DT_STRING"})
    assert "Failed to process element: 1 key: int_tensor of 'instances' list." in error.message
    assert "Expecting tensor size: 8 but got: 6" in error.message


def test_unsupported_input_dtype_is_501_columnar_400_row():
    columnar = error_of('{"inputs": [1]}', {"x": "DT_HALF"})
    assert (columnar.code, http_status(columnar.code)) == ("UNIMPLEMENTED", 501)
    assert columnar.message == "Conversion of JSON Value: 1 to type: half"
    row = error_of('{"instances": [1]}', {"x": "DT_HALF"})
    assert http_status(row.code) == 400
    assert "Error: UNIMPLEMENTED: Conversion of JSON Value: 1 to type: half" in row.message


# ---------------------------------------------------------------- P14-P19: responses

P14 = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2], dtype=np.int32).reshape(2, 3, 2)
P14_JSON = [[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]]
P18 = {"int_tensor": P14,
       "str_tensor": np.array([b"foo", b"bar", b"baz", b"bat"], dtype=object).reshape(2, 2),
       "float_tensor": np.array([[1.0], [2.0]], dtype=np.float32),
       "double_scalar_tensor": np.array([8.0, 9.0]),
       "str_tensor_bytes": HELLO_WORLD}


def test_p14_p15_single_output_drops_its_name():
    assert response("row", {"int_tensor": P14}) == {"predictions": P14_JSON}
    assert response("columnar", {"int_tensor": P14}) == {"outputs": P14_JSON}
    five = np.arange(1, 6, dtype=np.int32)
    assert format_predict_response("row", {"int_tensor": five}) == b'{\n    "predictions": [1,2,3,4,5]\n}'
    assert format_predict_response("columnar", {"int_tensor": five}) == b'{\n    "outputs": [1,2,3,4,5]\n}'


def test_p16_bytes_suffix_gives_b64():
    assert response("row", {"str_tensor_bytes": HELLO_WORLD}) == {"predictions": P16_JSON}
    as_text = {"predictions": [["hello", "world"], ["tf", "serving"]]}
    assert response("row", {"str_tensor": HELLO_WORLD}) == as_text


def test_p17_non_finite_floats_are_bare_tokens():
    values = np.array([np.nan, np.inf, 3, -np.inf], dtype=np.float32).reshape(2, 2)
    body = format_predict_response("row", {"y": values})
    assert body == b'{\n    "predictions": [[NaN,Infinity],[3.0,-Infinity]]\n}'


def test_p18_row_with_several_outputs_gives_one_object_per_item():
    assert response("row", P18) == {"predictions": [
        {"double_scalar_tensor": 8.0, "float_tensor": [1.0], "int_tensor": P14_JSON[0],
         "str_tensor": ["foo", "bar"], "str_tensor_bytes": P16_JSON[0]},
        {"double_scalar_tensor": 9.0, "float_tensor": [2.0], "int_tensor": P14_JSON[1],
         "str_tensor": ["baz", "bat"], "str_tensor_bytes": P16_JSON[1]}]}


def test_p19_columnar_with_several_outputs_maps_names():
    assert response("columnar", P18) == {"outputs": {
        "double_scalar_tensor": [8.0, 9.0], "float_tensor": [[1.0], [2.0]], "int_tensor": P14_JSON,
        "str_tensor": [["foo", "bar"], ["baz", "bat"]], "str_tensor_bytes": P16_JSON}}


@pytest.mark.parametrize(("dtype", "values", "text"), [
    # 6 digits (%g) when they read back at the tensor's precision, else 9 (float32) / 17 (float64),
    # then ".0" when there is no "." or "e": TF Serving's WriteDecimal
    (np.float32, [0.1, 3.0, 0.5, 1e-7, 123456.7, 9e6, 3e-5, 2.9296489, 1435774336.0, -0.0],
     "[0.1,3.0,0.5,1e-07,123456.703,9e+06,3e-05,2.92964888,1.43577434e+09,-0.0]"),
    (np.float64, [0.1, 1 / 3, 2.0, 9e6, 3e-5, 2.9296489, 1435774336.0, 1e100, 0.1 + 0.2],
     "[0.1,0.33333333333333331,2.0,9e+06,3e-05,2.9296489000000001,1435774336.0,1e+100,"
     "0.30000000000000004]"),
    (np.float32, [np.nan, np.inf, -np.inf, 1.5], "[NaN,Infinity,-Infinity,1.5]"),
])
def test_float_text_is_tf_servings_write_decimal(dtype, values, text):
    array = np.array(values, dtype=dtype)
    assert format_predict_response("columnar", {"y": array}) == b'{\n    "outputs": ' + text.encode() + b"\n}"
    assert format_predict_response("row", {"y": array}) == b'{\n    "predictions": ' + text.encode() + b"\n}"
    items = text[1:-1].split(",")
    rows = ",".join(f'{{"y":{item},"z":{index}}}' for index, item in enumerate(items))
    body = format_predict_response("row", {"y": array, "z": np.arange(len(items))})
    assert body == b'{\n    "predictions": [' + rows.encode() + b"]\n}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1e-40, 1e-12, 1e-6, 1.0, 1e5, 1e8, 1e20, 1e27, 1e30])
def test_vectorised_float_text_matches_the_one_value_reference(dtype, scale):
    """Plain and scientific notation (e-07, e+20), subnormals, ties: byte for byte `decimal_text`."""
    rng = np.random.default_rng(int(np.log10(scale)) + 50)
    values = rng.standard_normal(5000) * scale
    values[::7] = np.round(values[::7] / scale, 2) * scale  # short decimals: the 6-digit case
    values[::11] = np.round(values[::11] * 1000)     # whole numbers: the ".0" case
    values[::13] = 10.0 ** rng.integers(-30, 30, values[::13].size)  # powers of ten: 1e+28
    with np.errstate(over="ignore", under="ignore"):
        array = values.astype(dtype)
    single = dtype == np.float32
    texts = [decimal_text(v, single) for v in array.astype(np.float64).tolist()]
    assert json_array(array).decode() == "[" + ",".join(texts) + "]"
    assert json_array(array.reshape(-1, 1)).decode() == "[" + ",".join(f"[{t}]" for t in texts) + "]"
    matrix = array.reshape(1000, 5, 1)
    assert orjson.dumps(json_items(matrix), option=orjson.OPT_SERIALIZE_NUMPY) == json_array(matrix)


def test_float32_exact_ties_round_to_even_like_printf_without_the_one_by_one_path():
    """float32 values from 1e-4 to 1e9 that sit exactly on a 9- or 6-digit rounding tie
    (710809.0625 -> 710809.062, 1234565 -> 1234565.0) are written by the vectorised path."""
    rng = np.random.default_rng(9)
    whole = rng.integers(1, 2**24, 4000).astype(np.float64) * 2.0 ** rng.integers(-7, 6, 4000)
    halves = np.floor(whole) + rng.choice([0.5, 0.25, 0.125, 0.0625, 0.03125], 4000)
    fives = rng.integers(100_000, 10_000_000, 2000) * 10.0 + 5  # 6 digits: an exact tie
    array = np.concatenate([halves, fives, -halves[:500]]).astype(np.float32)
    texts = [decimal_text(v, True) for v in array.astype(np.float64).tolist()]
    assert json_array(array).decode() == "[" + ",".join(texts) + "]"
    assert "710809.062" in json_array(np.array([710809.0625] * 40, np.float32)).decode()
    assert float_text._plan(array).scientific.all()  # no value left to decimal_text


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(), (1,), (1, 1), (2, 3, 1), (32,), (4, 8)])
def test_small_tensors_written_one_by_one_match_the_vectorised_text(monkeypatch, dtype, shape):
    """A 1-row prediction takes the per-value path: byte for byte what the vectorised path writes."""
    rng = np.random.default_rng(len(shape))
    values = rng.standard_normal(math.prod(shape)) * 10.0 ** rng.integers(-8, 12, math.prod(shape))
    values[::5] = np.round(values[::5], 1)
    array = values.astype(dtype).reshape(shape)
    small, small_items = json_array(array), shape and json_items(array)
    assert math.prod(shape) <= float_text.SMALL_TENSOR
    monkeypatch.setattr(float_text, "SMALL_TENSOR", 0)
    assert small == json_array(array)
    if shape:  # json_items needs rank >= 1
        assert orjson.dumps(small_items) == orjson.dumps(json_items(array), option=orjson.OPT_SERIALIZE_NUMPY)
    assert np.allclose(orjson.loads(small), array.astype(np.float64), rtol=1e-6)


def test_ints_and_bools_are_json_natives():
    outputs = {"i": np.array([2**63 - 1], np.int64), "b": np.array([True, False])}
    body = format_predict_response("columnar", outputs)
    assert body == b'{\n    "outputs": {"b":[true,false],"i":[9223372036854775807]}\n}'


def test_multi_output_row_keeps_tokens_per_item():
    body = format_predict_response("row", {"a": np.array([np.nan, 1.0], np.float32), "b": np.array([1, 2])})
    assert body == b'{\n    "predictions": [{"a":NaN,"b":1},{"a":1.0,"b":2}]\n}'


@pytest.mark.parametrize(("outputs", "text"), [
    ({"y": np.float32(1.0)}, "Tensor name: y has no shape information "),
    ({"a": np.zeros(2), "b": np.zeros(3)}, "Tensor name: b has inconsistent batch size: 3 expecting: 2"),
])
def test_row_output_needs_a_common_batch(outputs, text):
    with pytest.raises(ServingError) as info:
        format_predict_response("row", outputs)
    assert info.value.message == text
    format_predict_response("columnar", outputs)  # columnar has no such limit


def test_zero_batch_row_is_an_empty_list():
    body = format_predict_response("row", {"y": np.zeros((0, 3), np.float32)})
    assert body == b'{\n    "predictions": []\n}'


@pytest.mark.parametrize(("array", "name"), [(np.array([1j], np.complex64), "complex64"),
                                             (np.array([1.0], np.float16), "half")])
def test_unwritable_output_dtypes(array, name):
    with pytest.raises(ServingError) as info:
        format_predict_response("columnar", {"y": array})
    assert info.value.message == f"Failed to write JSON value for tensor type: {name}"


# ---------------------------------------------------------------- errors, status table, generic writer

def test_http_status_table_matches_spec():
    expected = {"OK": 200, "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400,
                "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "ABORTED": 409, "PERMISSION_DENIED": 403,
                "UNAUTHENTICATED": 401, "RESOURCE_EXHAUSTED": 429, "CANCELLED": 499, "DEADLINE_EXCEEDED": 504,
                "UNIMPLEMENTED": 501, "UNAVAILABLE": 503, "UNKNOWN": 500, "INTERNAL": 500, "DATA_LOSS": 500}
    assert expected == HTTP_STATUS
    assert http_status(Code.NOT_FOUND) == 404
    assert set(HTTP_STATUS) == set(Code)  # every outcome has its status: none falls through to a 500


def test_error_body_is_escaped_json():
    message = 'JSON Value: "x"\n\\ bad \ud800'
    assert json.loads(error_body(message))["error"].startswith('JSON Value: "x"\n\\ bad ')


def test_dumps_keeps_nan_tokens_and_numpy_values():
    weights = np.array([0.1, np.inf], np.float32)
    body = dumps({"version": "123", "loss": float("nan"), "w": weights, "n": np.int64(3)})
    assert body == b'{"version":"123","loss":NaN,"w":[0.1,Infinity],"n":3}'


# ---------------------------------------------------------------- properties

finite_or_not_f32 = st.floats(width=32, allow_nan=True, allow_infinity=True)


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6),
                  elements=finite_or_not_f32))
def test_float32_matrices_round_trip_exactly(matrix):
    for fmt, out_key, in_key in (("row", "predictions", "instances"), ("columnar", "outputs", "inputs")):
        body = format_predict_response(fmt, {"y": matrix})
        sent = parse_json_body(body)[out_key]
        back = parse_predict_inputs({in_key: sent}, FLOAT)[1]["x"]
        assert back.dtype == np.float32 and back.shape == matrix.shape
        np.testing.assert_array_equal(back, matrix)
        assert (np.signbit(back) == np.signbit(matrix))[~np.isnan(matrix)].all()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats() | st.text(max_size=5)
    | st.fixed_dictionaries({"b64": st.sampled_from(["aGk=", "aGk", "!", ""])}),
    lambda inner: (st.lists(inner, max_size=4)
                   | st.dictionaries(st.sampled_from(["a", "b", "b64", "x"]), inner, max_size=3)),
    max_leaves=20)
dtype_maps = st.dictionaries(st.sampled_from(["a", "b", "x", "b64"]),
                             st.sampled_from([*jt._DTYPES, "DT_HALF", "DT_COMPLEX64"]),
                             min_size=1, max_size=3)
json_like_text = st.text(alphabet='{}[]":,0123456789.eE-+ NaInfty\\u\x00', max_size=40).map(str.encode)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["instances", "inputs", "signature_name", "junk"]), json_values, dtype_maps)
def test_any_json_request_gives_tensors_or_rest_error(key, value, dtypes):
    body = json.dumps({key: value}).encode()
    try:
        fmt, tensors = predict(body, dtypes)
    except ServingError as error:
        assert error.code in set(Code) and error.message
        error_body(error.message)
        return
    assert fmt in ("row", "columnar") and set(tensors) == set(dtypes)
    assert all(isinstance(t, np.ndarray) for t in tensors.values())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64) | json_like_text)
def test_any_bytes_parse_or_rest_error(body):
    try:
        request = parse_json_body(body)
    except ServingError as error:
        assert error.code == "INVALID_ARGUMENT"
        assert error.message.startswith(("JSON Parse error", "JSON Value"))
        return
    assert isinstance(request, dict)


@settings(max_examples=200, deadline=None)
@given(json_values, st.sampled_from(list(jt._DTYPES)))
def test_fast_path_agrees_with_tf_walk(value, dtype):
    """The vectorised path may only accept what TF's element walk accepts, with the same result."""
    fast = jt._fast_array(value, dtype)
    if fast is None:
        return
    shape, leaves = jt._dense_shape(value), []
    jt._fill(value, 0, shape, dtype, leaves)
    slow = jt._to_array(leaves, shape, dtype)
    assert fast.dtype == slow.dtype and fast.shape == slow.shape
    np.testing.assert_array_equal(fast, slow)



DEEP = 500_000


def test_an_unused_member_may_nest_500000_deep():
    body = b'{"unused": ' + b"[" * DEEP + b"]" * DEEP + b', "instances": [1.5, NaN], "s": "]]}\\"["}'
    request = parse_json_body(body)
    assert request["s"] == ']]}"[' and request["instances"][0] == 1.5 and math.isnan(request["instances"][1])
    assert signature_name_of(request) == "serving_default"
    fmt, tensors = jt.parse_predict_inputs(request, {"x": "DT_FLOAT"})
    assert fmt == "row" and tensors["x"][0] == np.float32(1.5)


def test_a_deep_signature_name_is_not_a_string():
    body = b'{"signature_name": ' + b"{\"a\":" * DEEP + b"1" + b"}" * DEEP + b', "instances": [1]}'
    with pytest.raises(ServingError) as info:
        signature_name_of(parse_json_body(body))
    assert info.value.message.endswith("'signature_name' key must be a string value.")


@pytest.mark.parametrize("body", [
    b"[" * DEEP + b"]" * DEEP,                                           # not an object
    b'{"instances": ' + b"[" * DEEP + b"1" + b"]" * DEEP + b"}",            # a deep tensor
    b'{"a": ' + b"[" * DEEP + b"]" * (DEEP - 1) + b"}",                     # unbalanced
])
def test_other_deep_documents_are_refused_without_recursion(body):
    with pytest.raises(ServingError) as info:
        parse_json_body(body)
    assert info.value.message == "JSON Parse error: The document nests arrays/objects too deeply."
