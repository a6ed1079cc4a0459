"""TensorProto <-> numpy in the gRPC front end: TensorFlow's parsing rules, TF Serving's texts, and the
memory bound on declared shapes. Checked against TensorFlow's own converters where they agree."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from pipeline.serving.errors import ServingError
from pipeline.serving.grpc import tensors
from pipeline.serving.grpc.status import grpc_code, wire_message
from pipeline.serving.grpc.transport import GrpcConfigError, parse_channel_arguments


@pytest.mark.parametrize("array", [
    np.array([[1.5, -2.0], [3.0, 4.25]], np.float32), np.array([1, 2, 3], np.int64),
    np.array([True, False]), np.array([[7]], np.int8), np.array([1.5, 2.5], np.float16),
    np.array([2**40], np.uint64), np.array(3.5, np.float64), np.array([b"a", b"bc"], object),
    np.array([1 + 2j], np.complex64)])
def test_round_trip_matches_tensorflow(array: np.ndarray) -> None:
    proto = tensor_pb2.TensorProto()
    tensors.fill_proto(proto, array)
    assert tf.make_ndarray(proto).tolist() == array.tolist()
    parsed = tensors.to_array(tf.make_tensor_proto(array), "x")
    assert parsed.tolist() == array.tolist() and parsed.shape == array.shape


def test_tensor_content_is_read_and_written() -> None:
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    proto = tensor_pb2.TensorProto()
    tensors.fill_proto(proto, array, as_content=True)
    assert proto.tensor_content == array.tobytes() and not proto.float_val
    assert tensors.to_array(proto, "x").tolist() == array.tolist()


def test_short_val_fields_are_filled_with_the_last_value_as_tensorflow_does() -> None:
    proto = tf.make_tensor_proto([1.0, 2.0], dtype=tf.float32)
    proto.tensor_shape.dim[0].size = 4
    proto.ClearField("tensor_content")
    proto.float_val.extend([1.0, 2.0])
    assert tensors.to_array(proto, "x").tolist() == [1.0, 2.0, 2.0, 2.0] == tf.make_ndarray(proto).tolist()


def _float_proto(shape: list[int], values: list[float] | None = None, content: bytes = b""
                 ) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=content)
    for size in shape:
        proto.tensor_shape.dim.add().size = size
    proto.float_val.extend(values or [])
    return proto


@pytest.mark.parametrize("proto", [
    _float_proto([3], content=b"\0" * 8),              # content does not match the shape
    _float_proto([1], [1.0, 2.0]),                     # more values than the shape holds
    _float_proto([2**20, 2**20], [1.0]),               # 4 TiB declared
    _float_proto([10**9], [1.0]),                      # 4 GB from one value
    _float_proto([-1], [1.0]),                         # negative dim
    tensor_pb2.TensorProto(dtype=types_pb2.DT_INVALID),
    tensor_pb2.TensorProto(dtype=types_pb2.DT_RESOURCE),
])
def test_unparseable_tensors_are_tf_servings_tensor_parsing_error(proto: tensor_pb2.TensorProto) -> None:
    with pytest.raises(ServingError) as caught:
        tensors.to_array(proto, "x")
    assert (caught.value.code, caught.value.message) == ("INVALID_ARGUMENT", "tensor parsing error: x")


def test_inputs_are_checked_against_the_signature_with_upstream_texts() -> None:
    dtypes = {"a": "DT_FLOAT", "b": "DT_FLOAT"}
    one = {"a": _float_proto([1], [1.0])}
    bad = "^INVALID_ARGUMENT: "
    with pytest.raises(ServingError, match=bad + r"input size does not match signature: 1!=2 "
                       r"len\(\{a\}\) != len\(\{a,b\}\). Sent extra: \{\}. Missing but required: \{b\}.$"):
        tensors.predict_inputs(one, dtypes)
    with pytest.raises(ServingError, match=bad + r"input tensor alias not found in signature: c. "
                       r"Inputs expected to be in the set \{a,b\}.$"):
        tensors.predict_inputs({"a": one["a"], "c": one["a"]}, dtypes)
    wrong = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[b"x"])
    wrong.tensor_shape.dim.add().size = 1
    with pytest.raises(ServingError, match=bad + r"Expects arg\[1\] to be float but string is provided$"):
        tensors.predict_inputs({"a": one["a"], "b": wrong}, dtypes)


def test_output_filter_rules() -> None:
    assert tensors.output_names([], ["y", "a"]) == ["a", "y"]
    assert tensors.output_names(["y"], ["y", "a"]) == ["y"]
    with pytest.raises(ServingError, match="^INVALID_ARGUMENT: duplicate output tensor alias: y$"):
        tensors.output_names(["y", "y"], ["y"])


def test_status_names_and_truncation() -> None:
    import grpc

    from pipeline.serving.errors import Code

    assert grpc_code(Code.NOT_FOUND) == grpc.StatusCode.NOT_FOUND
    assert {grpc_code(code).value[0] for code in Code} == set(range(17))  # each code, its own status
    assert wire_message("x" * 1024) == "x" * 1024
    assert wire_message("x" * 1025) == "x" * 1024 + "...TRUNCATED"


def test_channel_arguments_are_ints_when_they_parse_as_int32() -> None:
    assert parse_channel_arguments("grpc.max_connection_age_ms=2000,grpc.lb_policy_name=grpclb") == [
        ("grpc.max_connection_age_ms", 2000), ("grpc.lb_policy_name", "grpclb")]
    assert parse_channel_arguments("k=99999999999") == [("k", "99999999999")]
    assert parse_channel_arguments("") == []
    with pytest.raises(GrpcConfigError):
        parse_channel_arguments("=3")
