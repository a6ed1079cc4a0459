"""`TensorProto` <-> numpy for the gRPC front end, with TensorFlow's parsing rules and TF Serving's texts.

A request tensor is read as `tensorflow::Tensor::FromProto` reads it: `tensor_content` (raw
little-endian bytes, exactly `elements x itemsize` long) wins over the typed `*_val` field; a `*_val`
field with fewer values than the shape holds is filled with its last value (zeros when empty), and
more values than the shape holds is an error. Every failure is TF Serving's
`INVALID_ARGUMENT: tensor parsing error: <alias>`.

One protection TensorFlow does not have: a declared shape is never trusted for memory. The bytes it
needs must fit in a gRPC message (2 GiB), and a `*_val` field may expand to at most
`MAX_FILLED_BYTES` (a few values declaring a [10^9] shape would otherwise allocate gigabytes).

Answers use the typed `*_val` fields, as TF Serving's `Tensor::AsProtoField` does, or
`tensor_content` with `--enable_serialization_as_tensor_content`.

The common dtypes are converted with numpy directly (a 1-row float request: ~3 us here, against
~40 us through `tf.make_ndarray`/`tf.make_tensor_proto`); the rare ones (complex, bfloat16,
quantized, strings in `tensor_content`) fall back to TensorFlow's own converters.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from pipeline import tf_protos
from pipeline.serving.errors import InvalidArgument, ServingError

if TYPE_CHECKING:
    from tensorflow.core.framework import tensor_pb2

DataType = tf_protos.enum("tensorflow.DataType")
"""TensorFlow's DataType enum, read without importing TensorFlow: the dashboard's gRPC client reads
answers with `to_array` too (its TensorProtos come from `tf_protos`, the server's from the generated
modules; both have the same fields)."""
MAX_MESSAGE_BYTES = 2**31 - 1
MAX_FILLED_BYTES = 256 * 1024 * 1024
"""Largest tensor a short `*_val` field may be expanded to (project limit, see the module doc)."""

# DataType -> (numpy dtype, typed field)
_FAST: dict[int, tuple[np.dtype, str]] = {
    DataType.DT_FLOAT: (np.dtype(np.float32), "float_val"),
    DataType.DT_DOUBLE: (np.dtype(np.float64), "double_val"),
    DataType.DT_INT32: (np.dtype(np.int32), "int_val"),
    DataType.DT_INT16: (np.dtype(np.int16), "int_val"),
    DataType.DT_INT8: (np.dtype(np.int8), "int_val"),
    DataType.DT_UINT8: (np.dtype(np.uint8), "int_val"),
    DataType.DT_UINT16: (np.dtype(np.uint16), "int_val"),
    DataType.DT_INT64: (np.dtype(np.int64), "int64_val"),
    DataType.DT_UINT32: (np.dtype(np.uint32), "uint32_val"),
    DataType.DT_UINT64: (np.dtype(np.uint64), "uint64_val"),
    DataType.DT_BOOL: (np.dtype(np.bool_), "bool_val"),
    DataType.DT_HALF: (np.dtype(np.float16), "half_val"),
}
_BY_NUMPY: dict[np.dtype, tuple[int, str]] = {dtype: (enum, field) for enum, (dtype, field) in _FAST.items()}


def type_name(dtype: int) -> str:
    """TensorFlow's short name of a DataType (`float`, `int32`, `string`), as its errors print it."""
    name = DataType.Name(dtype) if dtype in DataType.values() else f"unknown dtype {dtype}"
    short = name[3:].lower() if name.startswith("DT_") else name
    return {"half": "half", "bool": "bool"}.get(short, short)


def _parse_error(alias: str) -> ServingError:
    return InvalidArgument(f"tensor parsing error: {alias}")


def _elements(proto: tensor_pb2.TensorProto, alias: str) -> tuple[tuple[int, ...], int]:
    """(shape, element count) of a request tensor; negative or unknown dims cannot be parsed."""
    shape_proto = proto.tensor_shape
    if shape_proto.unknown_rank:
        raise _parse_error(alias)
    shape = tuple(dim.size for dim in shape_proto.dim)
    if any(size < 0 for size in shape):
        raise _parse_error(alias)
    if math.prod(size for size in shape if size) > 2**62 // 16:  # even with a 0 dim, numpy cannot hold it
        raise _parse_error(alias)
    return shape, math.prod(shape)


def to_array(proto: tensor_pb2.TensorProto, alias: str) -> np.ndarray:
    """The numpy array a request `TensorProto` holds, or INVALID_ARGUMENT `tensor parsing error`."""
    shape, count = _elements(proto, alias)
    fast = _FAST.get(proto.dtype)
    if fast is not None:
        dtype, field = fast
        if count * dtype.itemsize > MAX_MESSAGE_BYTES:
            raise _parse_error(alias)
        if proto.tensor_content:
            content = proto.tensor_content
            if len(content) != count * dtype.itemsize:
                raise _parse_error(alias)
            array = np.frombuffer(content, dtype=dtype.newbyteorder("<"))
            return array.astype(dtype, copy=False).reshape(shape)
        values = getattr(proto, field)
        if field == "half_val":
            return _filled(np.array(values, dtype=np.uint16).view(np.float16), shape, count, alias)
        return _filled(np.array(values, dtype=dtype), shape, count, alias)
    if proto.dtype == DataType.DT_STRING and not proto.tensor_content:
        values = proto.string_val
        if len(values) > count or (len(values) < count and count * 8 > MAX_FILLED_BYTES):
            raise _parse_error(alias)
        array = np.empty(count, dtype=object)
        array[:len(values)] = list(values)
        array[len(values):] = values[-1] if values else b""
        return array.reshape(shape)
    return _with_tensorflow(proto, alias)


def _filled(values: np.ndarray, shape: tuple[int, ...], count: int, alias: str) -> np.ndarray:
    """`values` as `shape`: exact, or padded with the last value (zeros if none), as TensorFlow does."""
    have = values.size
    if have == count:
        return values.reshape(shape)
    if have > count or count * values.itemsize > MAX_FILLED_BYTES:
        raise _parse_error(alias)
    filled = np.full(count, values[-1] if have else 0, dtype=values.dtype)
    filled[:have] = values
    return filled.reshape(shape)


def _with_tensorflow(proto: tensor_pb2.TensorProto, alias: str) -> np.ndarray:
    """Rare dtypes: TensorFlow's own parser (after the same memory bound)."""
    import tensorflow as tf

    if proto.dtype in (DataType.DT_INVALID, DataType.DT_RESOURCE, DataType.DT_VARIANT):
        raise _parse_error(alias)
    try:
        itemsize = tf.dtypes.as_dtype(proto.dtype).size
    except (TypeError, ValueError):
        raise _parse_error(alias) from None
    _, count = _elements(proto, alias)
    if count * max(1, itemsize) > MAX_FILLED_BYTES and not proto.tensor_content:
        raise _parse_error(alias)
    try:
        return tf.make_ndarray(proto)
    except Exception:  # noqa: BLE001 - any parse failure is the same INVALID_ARGUMENT
        raise _parse_error(alias) from None


def predict_inputs(inputs: Mapping[str, tensor_pb2.TensorProto], signature_dtypes: Mapping[str, str]
                   ) -> dict[str, np.ndarray]:
    """The request's inputs as numpy, checked against the signature in TF Serving's order: the
    number of inputs, each alias, each tensor's parse, then its dtype against the signature's."""
    expected = sorted(signature_dtypes)
    if len(inputs) != len(signature_dtypes):
        sent = sorted(inputs)
        extra = [key for key in sent if key not in signature_dtypes]
        missing = [key for key in expected if key not in inputs]
        raise InvalidArgument(
            f"input size does not match signature: {len(inputs)}!={len(signature_dtypes)} "
            f"len({{{','.join(sent)}}}) != len({{{','.join(expected)}}}). Sent extra: "
            f"{{{','.join(extra)}}}. Missing but required: {{{','.join(missing)}}}.")
    arrays = {}
    for alias, proto in inputs.items():
        if alias not in signature_dtypes:
            raise InvalidArgument(
                f"input tensor alias not found in signature: {alias}. Inputs expected to be "
                          f"in the set {{{','.join(expected)}}}.")
        arrays[alias] = to_array(proto, alias)
    for index, alias in enumerate(expected):
        wanted = DataType.Value(signature_dtypes[alias])
        sent_type = inputs[alias].dtype
        if sent_type != wanted:
            raise InvalidArgument(
                f"Expects arg[{index}] to be {type_name(wanted)} but {type_name(sent_type)} "
                          "is provided")
    return arrays


def output_names(output_filter: Iterable[str], signature_outputs: Iterable[str]) -> list[str]:
    """The outputs to answer: the filter (checked, in its order) or every output of the signature."""
    known = sorted(signature_outputs)
    wanted = list(output_filter)
    if not wanted:
        return known
    seen: set[str] = set()
    for alias in wanted:
        if alias not in known:
            raise InvalidArgument(
                f"output tensor alias not found in signature: {alias} Outputs expected to be "
                          f"in the set {{{','.join(known)}}}.")
        if alias in seen:
            raise InvalidArgument(f"duplicate output tensor alias: {alias}")
        seen.add(alias)
    return wanted


def fill_proto(proto: tensor_pb2.TensorProto, array: np.ndarray, as_content: bool = False) -> None:
    """Write `array` into an empty response `TensorProto` (`*_val` fields, or `tensor_content`)."""
    array = np.asarray(array)
    dims = proto.tensor_shape.dim
    for size in array.shape:
        dims.add().size = size
    fast = _BY_NUMPY.get(array.dtype)
    if fast is not None:
        enum, field = fast
        proto.dtype = enum
        if as_content:
            proto.tensor_content = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
        elif field == "half_val":
            proto.half_val.extend(array.ravel().view(np.uint16).tolist())
        else:
            getattr(proto, field).extend(array.ravel().tolist())
        return
    if array.dtype.kind in "OSU":
        proto.dtype = DataType.DT_STRING
        proto.string_val.extend(_as_bytes(item) for item in array.ravel())
        return
    import tensorflow as tf

    proto.CopyFrom(tf.make_tensor_proto(array))


def _as_bytes(item: object) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode()
    return str(item).encode()
