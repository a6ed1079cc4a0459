"""Classify/regress requests and results map like TF Serving's (spec §1.5, §2.3, cases P20-P22, P25)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tensorflow.core.example import example_pb2

from pipeline.serving.errors import ServingError
from pipeline.serving.rest.examples import (
    format_classify_response,
    format_regress_response,
    parse_examples,
)
from pipeline.serving.rest.json_body import parse_json_body


def features_of(serialized: bytes) -> dict[str, tuple[str | None, list]]:
    """{feature: (kind, values)} of a serialized tf.Example, as a model parsing it would see it."""
    example = example_pb2.Example.FromString(serialized)
    result = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        result[name] = (kind, list(getattr(feature, kind).value) if kind else [])
    return result


def error_of(request: dict, method: str = "classify") -> str:
    with pytest.raises(ServingError) as info:
        parse_examples(request, method)
    assert info.value.code == "INVALID_ARGUMENT"
    return info.value.message


@pytest.mark.parametrize("method", ["classify", "regress"])
def test_p20_examples_become_typed_features(method):
    request = parse_json_body(b'{"examples": [{"names": ["foo","bar"], "ratings": [8.0, 9.0], "age": 20}, '
                              b'{"names": ["baz"], "ratings": 6.0}]}')
    first, second = (features_of(e) for e in parse_examples(request, method))
    assert first == {"names": ("bytes_list", [b"foo", b"bar"]), "ratings": ("float_list", [8.0, 9.0]),
                     "age": ("int64_list", [20])}
    assert second == {"names": ("bytes_list", [b"baz"]), "ratings": ("float_list", [6.0])}


def test_p25_regress_request_of_half_plus_two():
    request = parse_json_body(b'{"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]}')
    assert [features_of(e) for e in parse_examples(request, "regress")] == [{"x": ("float_list", [80.0])}]


def test_bools_b64_nan_and_empty_lists():
    request = parse_json_body(b'{"examples": [{"flag": [true, false], "img": {"b64": "aGk="}, '
                              b'"v": [NaN, 1e39], "none": []}]}')
    features = features_of(parse_examples(request, "classify")[0])
    assert features["flag"] == ("int64_list", [1, 0])
    assert features["img"] == ("bytes_list", [b"hi"])
    assert np.isnan(features["v"][1][0]) and features["v"][1][1] == float("inf")
    assert features["none"] == (None, [])


def test_context_is_merged_into_every_example_and_examples_win():
    request = {"context": {"country": "fr", "x": 1}, "examples": [{"x": 2.5}, {"y": 3}]}
    first, second = (features_of(e) for e in parse_examples(request, "regress"))
    assert first == {"country": ("bytes_list", [b"fr"]), "x": ("float_list", [2.5])}
    assert second == {"country": ("bytes_list", [b"fr"]), "x": ("int64_list", [1]), "y": ("int64_list", [3])}


@pytest.mark.parametrize(("request_", "text"), [
    ({"instances": [1]}, "When method is classify, key 'examples' is expected and was not found"),
    ({"examples": {"x": 1}}, "Expecting 'examples' value to be an list/array"),
    ({"examples": []}, "'examples' value is an empty array"),
    ({"examples": [[1]]}, "Example must be JSON object but got JSON Array"),
    ({"context": 5, "examples": [{}]}, "Example must be JSON object but got JSON Number"),
    ({"examples": [{"names": None}]}, "Feature: names has element with unexpected JSON type: Null"),
    ({"examples": [{"names": [[1]]}]}, "Feature: names has element with unexpected JSON type: Array"),
    ({"examples": [{"names": {"a": 1}}]}, "Feature: names has element with unexpected JSON type: Object"),
    ({"examples": [{"names": [1, "a"]}]}, "Unexpected element type in feature: names expecting type: int64"),
    ({"examples": [{"names": ["a", 1.5]}]},
     "Unexpected element type in feature: names expecting type: bytes"),
    ({"examples": [{"names": 2**63}]}, "Feature: names has uint64_t element. Only int64_t is supported."),
    ({"examples": [{"img": {"b64": "%%"}}]}, "Unable to base64 decode"),
    ({"signature_name": 1, "examples": [{}]}, "'signature_name' key must be a string value."),
])
def test_bad_requests_get_tf_texts(request_, text):
    assert text in error_of(request_, "regress")


def test_p21_classification_results():
    classes = np.array([[b"car", b"bike", b"bus"]] * 2, dtype=object)
    scores = np.array([[0.2, 0.7, 0.1], [0.7, 0.1, 0.2]], dtype=np.float32)
    body = format_classify_response(classes, scores)
    assert body == (b'{\n    "results": [[["car",0.2],["bike",0.7],["bus",0.1]],'
                    b'[["car",0.7],["bike",0.1],["bus",0.2]]]\n}')


def test_p25_classify_without_classes_has_empty_labels():
    body = format_classify_response(None, np.array([[12.0]], np.float32))
    assert json.loads(body) == {"results": [[["", 12.0]]]}


def test_classes_without_scores_score_zero():
    body = format_classify_response(np.array([[b"a"]], dtype=object), None)
    assert json.loads(body) == {"results": [[["a", 0.0]]]}


def test_p22_regression_results():
    body = format_regress_response(np.array([0.2, 0.9, 1.0], np.float32))
    assert body == b'{\n    "results": [0.2,0.9,1.0]\n}'
    assert format_regress_response(np.array([[42.0]], np.float32)) == b'{\n    "results": [42.0]\n}'


@pytest.mark.parametrize(("call", "text"), [
    (lambda: format_regress_response(np.zeros((2, 2), np.float32)),
     "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got [2,2]"),
    (lambda: format_regress_response(np.zeros(2, np.float64)),
     "Expected output Tensor of DT_FLOAT.  Got: DT_DOUBLE"),
    (lambda: format_classify_response(None, np.zeros(3, np.float32)),
     "Expected Tensor shape: [batch_size num_classes] but got [3]"),
    (lambda: format_classify_response(np.array([[b"a", b"b"]], dtype=object), np.zeros((1, 3), np.float32)),
     "Tensors class and score should match"),
])
def test_model_outputs_of_the_wrong_shape_or_type(call, text):
    with pytest.raises(ServingError) as info:
        call()
    assert text in info.value.message


def test_non_finite_scores_are_bare_tokens():
    scores = np.array([[np.nan, -np.inf, 0.1]], np.float32)
    body = format_classify_response(None, scores)
    assert body == b'{\n    "results": [[["",NaN],["",-Infinity],["",0.1]]]\n}'
