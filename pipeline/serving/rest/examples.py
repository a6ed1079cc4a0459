"""Classify/regress JSON <-> tf.Example and results, as TF Serving maps them (spec §1.5).

Requests `{"signature_name"?, "context"?, "examples": [...]}` become serialized tf.Example protos; model
results become `{"results": ...}` bodies. TensorFlow's proto module is imported only when a request is
parsed, so importing this module stays cheap.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from pipeline.serving.errors import InvalidArgument, ServingError
from pipeline.serving.rest.json_body import (
    as_float,
    b64_decode,
    format_error,
    is_b64,
    json_type_name,
    signature_name_of,
)
from pipeline.serving.rest.json_layout import pretty_top_level
from pipeline.serving.rest.json_tensor import tensor_json

_INT64_MAX = 2**63 - 1
_UINT64_MAX = 2**64 - 1


def _feature_error(name: str, value: Any) -> ServingError:
    return InvalidArgument(f"Feature: {name} has element with unexpected JSON type: {json_type_name(value)}")


def _feature_value(value: Any, name: str) -> tuple[str, Any]:
    """(kind, value) of one feature element: JSON string or b64 -> bytes, number with '.' or exponent
    -> float, integer or bool -> int64 (AddValueToFeature)."""
    kind = type(value)
    if kind is bool:
        return "int64", int(value)
    if kind is str:
        return "bytes", value.encode("utf-8")
    if kind is dict and is_b64(value):
        return "bytes", value
    if kind is float:
        return "float", value
    if kind is int:
        if -_INT64_MAX - 1 <= value <= _UINT64_MAX:
            return "int64", value
        return "float", as_float(value)  # rapidjson holds integers past uint64 as doubles
    raise _feature_error(name, value)


def _features(value: Any) -> dict[str, tuple[str | None, list]]:
    """One JSON example as {feature name: (kind or None if empty, values)} (MakeExampleFromJsonObject)."""
    if type(value) is not dict:
        kind = json_type_name(value)
        raise InvalidArgument(f"Example must be JSON object but got JSON {kind}")
    features: dict[str, tuple[str | None, list]] = {}
    for name, content in value.items():
        kind, values = None, []
        for item in content if type(content) is list else [content]:
            item_kind, item_value = _feature_value(item, name)
            if kind not in (None, item_kind):
                raise InvalidArgument(f"Unexpected element type in feature: {name} expecting type: {kind}")
            if item_kind == "int64" and item_value > _INT64_MAX:
                raise InvalidArgument(f"Feature: {name} has uint64_t element. Only int64_t is supported.")
            kind = item_kind
            values.append(b64_decode(item_value) if type(item_value) is dict else item_value)
        features[name] = (kind, values)
    return features


def _serialize(features: dict[str, tuple[str | None, list]]) -> bytes:
    from tensorflow.core.example import example_pb2  # heavy: only when a classify/regress arrives

    example = example_pb2.Example()
    for name, (kind, values) in features.items():
        feature = example.features.feature[name]  # present even when empty, like TF's map entry
        if kind == "bytes":
            feature.bytes_list.value.extend(values)
        elif kind == "int64":
            feature.int64_list.value.extend(values)
        elif kind == "float":
            with np.errstate(over="ignore"):
                feature.float_list.value.extend(np.asarray(values, dtype=np.float32).tolist())
    return example.SerializeToString()


def parse_examples(request: dict, method: str) -> list[bytes]:
    """Serialized tf.Example protos of a classify ('classify') or regress ('regress') request.

    Context features are merged into every example, example features winning on a clash: what a model
    that parses one example at a time sees from TF Serving's ExampleListWithContext. Errors are
    ServingError INVALID_ARGUMENT with TF's texts (TF says "classify" in the missing-key text for both).
    """
    if method not in ("classify", "regress"):
        raise ValueError(f"method must be 'classify' or 'regress', not {method!r}")
    signature_name_of(request)
    context = _features(request["context"]) if "context" in request else {}
    if "examples" not in request:
        raise format_error(request, "When method is classify, key 'examples' is expected and was not found")
    examples = request["examples"]
    if type(examples) is not list:
        raise format_error(request, "Expecting 'examples' value to be an list/array")
    if not examples:
        raise format_error(request, "'examples' value is an empty array")
    try:
        return [_serialize({**context, **_features(example)}) for example in examples]
    except RecursionError:
        raise InvalidArgument("JSON value nests too deeply to be an example") from None


def _shape(array: np.ndarray) -> str:
    return "[" + ",".join(map(str, array.shape)) + "]"


def _dt_name(array: np.ndarray) -> str:
    """DataType_Name of a numpy dtype, for TF's output-type messages."""
    if array.dtype.kind in "OSU":
        return "DT_STRING"
    return "DT_" + {"float16": "HALF", "float32": "FLOAT", "float64": "DOUBLE"}.get(
        array.dtype.name, array.dtype.name.upper())


def _checked(array: Any, role: str, dtype: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2:
        raise InvalidArgument(f"Expected Tensor shape: [batch_size num_classes] but got "
                                            f"{_shape(array)}")
    if _dt_name(array) != dtype:
        raise InvalidArgument(f"Expected {role} Tensor of {dtype}. Got: {_dt_name(array)}")
    return array


def format_classify_response(classes: np.ndarray | None, scores: np.ndarray | None) -> bytes:
    """{"results": [[[label, score], ...] per example]}: label "" without a classes output, score 0.0
    without a scores output (proto defaults); scores at float32 precision, NaN/Infinity as tokens.
    Both are [batch, num_classes] (classes DT_STRING, scores DT_FLOAT), as TF's classifier checks."""
    if classes is None and scores is None:
        raise InvalidArgument("Expected classification signature outputs to contain classes "
                                            "or scores")
    if classes is not None:
        classes = _checked(classes, "classes", "DT_STRING")
    if scores is not None:
        scores = _checked(scores, "scores", "DT_FLOAT")
    if classes is not None and scores is not None and classes.shape != scores.shape:
        raise InvalidArgument(f"Tensors class and score should match in shape. Got "
                                            f"{_shape(classes)} vs. {_shape(scores)}")
    shape = (classes if classes is not None else scores).shape
    labels = (orjson.loads(tensor_json(classes)) if classes is not None
              else [[""] * shape[1] for _ in range(shape[0])])
    if scores is None:
        scores = np.zeros(shape, dtype=np.float32)
    # orjson writes numpy float32 scalars at float32 precision; only NaN/Infinity need TF's bare tokens.
    results = [[[label, score if np.isfinite(score) else orjson.Fragment(tensor_json(score))]
                for label, score in zip(row_labels, row, strict=True)]
               for row_labels, row in zip(labels, scores, strict=True)]
    return pretty_top_level("results", orjson.dumps(results, option=orjson.OPT_SERIALIZE_NUMPY))


def format_regress_response(values: np.ndarray) -> bytes:
    """{"results": [v1, v2, ...]} from a DT_FLOAT [batch] or [batch, 1] output, at float32 precision."""
    values = np.asarray(values)
    if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
        raise InvalidArgument("Expected output Tensor shape to be either [batch_size] or "
                                            f"[batch_size, 1] but got {_shape(values)}")
    if _dt_name(values) != "DT_FLOAT":
        raise InvalidArgument(f"Expected output Tensor of DT_FLOAT.  Got: {_dt_name(values)}")
    return pretty_top_level("results", tensor_json(values.reshape(-1)))

