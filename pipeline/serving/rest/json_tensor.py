"""JSON <-> numpy exactly as TensorFlow Serving's REST API maps them (`util/json_tensor.cc`).

Contract (see docs spec §1.4-§1.6, §2.3): predict inputs become numpy arrays of the signature's
dtypes with TF's shape rules and error texts, and responses are written with TF's keys and value
formats. Every request problem raises `ServingError`, never another exception. Body parsing lives in
`json_body` (imported here, never the other way round) and tf.Example handling in `examples`,
which imports `tensor_json` from here. No HTTP and no TensorFlow here: the predict path stays light.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from itertools import chain
from typing import Any

import numpy as np
import orjson

from pipeline.serving.errors import InvalidArgument, ServingError, Unimplemented
from pipeline.serving.rest import float_text
from pipeline.serving.rest.json_body import (
    as_float,
    b64_decode,
    decimal_text,
    dump_value,
    format_error,
    is_b64,
    json_type_name,
    signature_name_of,
)
from pipeline.serving.rest.json_layout import (  # noqa: F401 - error_body, pretty_proto_json: re-exported
    error_body,
    pretty_proto_json,
    pretty_top_level,
    raw_json_string,
)

# ---------------------------------------------------------------- JSON values -> numpy

def _ints(low: int, high: int, target: type) -> Any:
    """Builder for an integer dtype: values must lie in [low, high]; narrower dtypes wrap like TF's cast."""
    def build(values: list) -> np.ndarray:
        array = np.array(values, dtype=np.uint64 if high >= 2**64 - 1 else np.int64)
        if array.size and (array.min() < low or array.max() > high):
            raise OverflowError
        return array.astype(target)
    return build


def _floats(target: type) -> Any:
    def build(values: list) -> np.ndarray:
        try:
            array = np.array(values, dtype=np.float64)
        except OverflowError:
            array = np.array([as_float(v) for v in values], dtype=np.float64)
        with np.errstate(over="ignore"):  # beyond float range -> +-inf, below smallest -> 0 (TF tests)
            return array.astype(target)
    return build


def _strings(values: list) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = [v.encode("utf-8") if type(v) is str else v for v in values]
    return array


_INT32 = (-(2**31), 2**31 - 1)
# dtype enum name -> (TF's short name, JSON leaf types accepted, inclusive int range or None, builder)
_DTYPES: dict[str, tuple[str, frozenset, tuple[int, int] | None, Any]] = {
    "DT_FLOAT": ("float", frozenset({float, int}), None, _floats(np.float32)),
    "DT_DOUBLE": ("double", frozenset({float, int}), None, _floats(np.float64)),
    "DT_INT32": ("int32", frozenset({int}), _INT32, _ints(*_INT32, np.int32)),
    "DT_INT16": ("int16", frozenset({int}), _INT32, _ints(*_INT32, np.int16)),
    "DT_INT8": ("int8", frozenset({int}), _INT32, _ints(*_INT32, np.int8)),
    "DT_UINT8": ("uint8", frozenset({int}), _INT32, _ints(*_INT32, np.uint8)),
    "DT_INT64": ("int64", frozenset({int}), (-(2**63), 2**63 - 1), _ints(-(2**63), 2**63 - 1, np.int64)),
    "DT_UINT32": ("uint32", frozenset({int}), (0, 2**32 - 1), _ints(0, 2**32 - 1, np.uint32)),
    "DT_UINT64": ("uint64", frozenset({int}), (0, 2**64 - 1), _ints(0, 2**64 - 1, np.uint64)),
    "DT_BOOL": ("bool", frozenset({bool}), None, lambda values: np.array(values, dtype=bool)),
    "DT_STRING": ("string", frozenset({str}), None, _strings),
}
_MAX_RANK = 64  # numpy's limit (TF allows 254)


def _type_name(dtype: str) -> str:
    """DataTypeString: 'DT_HALF' -> 'half'."""
    known = _DTYPES.get(dtype)
    return known[0] if known else {"DT_HALF": "half"}.get(dtype, dtype.removeprefix("DT_").lower())


def _type_error(value: Any, dtype: str) -> ServingError:
    return InvalidArgument(f"JSON Value: {dump_value(value)} Type: {json_type_name(value)} "
                    f"is not of expected type: {_type_name(dtype)}")


def _leaf(value: Any, dtype: str) -> Any:
    """One JSON scalar (or b64 object) checked against a signature dtype, as AddValueToTensor does."""
    if type(value) is dict:
        if dtype == "DT_STRING":
            return b64_decode(value)
        raise _type_error(value, dtype)
    known = _DTYPES.get(dtype)
    if known is None:
        raise Unimplemented(f"Conversion of JSON Value: {dump_value(value)} to type: {_type_name(dtype)}")
    _, accepted, limits, _ = known
    if type(value) not in accepted or (limits and not limits[0] <= value <= limits[1]):
        raise _type_error(value, dtype)
    return as_float(value) if type(value) is int and dtype in ("DT_FLOAT", "DT_DOUBLE") else value


def _dense_shape(value: Any) -> list[int]:
    """Shape = nesting of the first element at each level (GetDenseTensorShape)."""
    shape = []
    while type(value) is list:
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _fill(value: Any, level: int, shape: list[int], dtype: str, out: list) -> None:
    """Walk a JSON tensor, checking it is dense against `shape` (FillTensorProto), collecting leaves."""
    if type(value) is not list:
        if level != len(shape):
            raise InvalidArgument(f"JSON Value: {dump_value(value)} found at incorrect level: {level + 1} "
                           f"in the JSON DOM. Expected at level: {len(shape)}")
        out.append(_leaf(value, dtype))
        return
    if level >= len(shape):
        raise InvalidArgument(f"Encountered list at unexpected level: {level} expected < {len(shape)}")
    if len(value) != shape[level]:
        raise InvalidArgument(f"Encountered list at unexpected size: {len(value)} at level: {level} "
                       f"expected size: {shape[level]}")
    for item in value:
        _fill(item, level + 1, shape, dtype, out)


def _to_array(leaves: list, shape: list[int], dtype: str) -> np.ndarray:
    if len(shape) > _MAX_RANK:
        raise InvalidArgument(
            f"Tensor of rank {len(shape)} is not supported; the maximum rank is {_MAX_RANK}")
    if dtype not in _DTYPES:  # only reachable without leaves, e.g. [] for a half input
        raise Unimplemented(f"Conversion of JSON Value: [] to type: {_type_name(dtype)}")
    return _DTYPES[dtype][3](leaves).reshape(shape)


def _fast_array(value: Any, dtype: str) -> np.ndarray | None:
    """The array for a dense list of plain leaves, or None if anything is unusual (the slow path then
    gives TF's exact error). Level by level with C-speed set/map/chain; no per-element Python code.
    For numeric dtypes a str or dict among the lists contributes str items that the leaf check rejects,
    so list levels need a type check only when all lists are empty, or for strings."""
    known = _DTYPES.get(dtype)
    if known is None or type(value) is not list:
        return None
    shape, items = [len(value)], value
    while items and type(items[0]) is list:
        try:
            lengths = set(map(len, items))
        except TypeError:
            return None
        if len(lengths) != 1 or len(shape) >= _MAX_RANK:
            return None
        shape.append(lengths.pop())
        if (shape[-1] == 0 or dtype == "DT_STRING") and set(map(type, items)) != {list}:
            return None
        items = list(chain.from_iterable(items))
    if not set(map(type, items)) <= known[1]:
        return None
    try:
        return known[3](items).reshape(shape)
    except (OverflowError, ValueError, TypeError):
        return None


def _tensor(value: Any, dtype: str) -> np.ndarray:
    """A whole JSON tensor (columnar input) as an array."""
    array = _fast_array(value, dtype)
    if array is not None:
        return array
    shape, leaves = _dense_shape(value), []
    _fill(value, 0, shape, dtype, leaves)
    return _to_array(leaves, shape, dtype)


def _element_is_object(value: Any) -> bool:
    return type(value) is dict and not is_b64(value)


def _row_slow(instances: list, dtypes: Mapping[str, str], as_objects: bool) -> dict[str, np.ndarray]:
    """FillTensorMapFromInstancesList: every instance of an input must match the first in size and shape."""
    names = sorted(dtypes)
    leaves: dict[str, list] = {}
    shapes: dict[str, list[int]] = {}
    sizes: dict[str, int] = {}

    def add(item: Any, name: str) -> None:
        if name not in dtypes:
            raise InvalidArgument(f"JSON object: does not have named input: {name}")
        shape, values = _dense_shape(item), []
        _fill(item, 0, shape, dtypes[name], values)
        if name not in shapes:
            shapes[name], sizes[name], leaves[name] = shape, len(values), []
        elif sizes[name] != len(values):
            raise InvalidArgument(f"Expecting tensor size: {sizes[name]} but got: {len(values)}")
        elif shapes[name] != shape:
            raise InvalidArgument(f"Expecting shape [{','.join(map(str, shapes[name]))}] "
                           f"but got: [{','.join(map(str, shape))}]")
        leaves[name].extend(values)

    for index, element in enumerate(instances):
        if as_objects != _element_is_object(element):
            kind = "object but got list" if as_objects else "value/list but got object"
            raise InvalidArgument(f"Expecting {kind} at item {index} of input list")
        for key, item in element.items() if as_objects else [(None, element)]:
            try:
                add(item, names[0] if key is None else key)
            except ServingError as exc:
                where = f"{index}" if key is None else f"{index} key: {key}"
                raise InvalidArgument(f"Failed to process element: {where} of 'instances' list. "
                               f"Error: {exc.code}: {exc.message}") from None
        if as_objects and set(element) != set(names):
            raise InvalidArgument(f"Failed to process element: {index} of 'instances' list. JSON object: "
                           f"{dump_value(element)} keys must be equal to: {','.join(names)}")
    count = len(instances)
    return {name: _to_array(leaves[name], [count, *shapes[name]], dtypes[name]) for name in shapes}


def _row_tensors(instances: list, dtypes: Mapping[str, str]) -> dict[str, np.ndarray]:
    if type(instances[0]) is not dict and len(dtypes) > 1:
        raise InvalidArgument("instances is a plain list, but expecting list of objects as multiple input "
                       "tensors required as per tensorinfo_map")
    as_objects = _element_is_object(instances[0])
    if not as_objects:
        array = _fast_array(instances, dtypes[min(dtypes)])
        if array is not None:
            return {min(dtypes): array}
    elif "b64" not in dtypes and all(type(e) is dict and e.keys() == dtypes.keys() for e in instances):
        arrays = {name: _fast_array([e[name] for e in instances], dtype) for name, dtype in dtypes.items()}
        if all(a is not None for a in arrays.values()):
            return arrays  # type: ignore[return-value]
    return _row_slow(instances, dtypes, as_objects)


def _columnar_tensors(inputs: Any, dtypes: Mapping[str, str]) -> dict[str, np.ndarray]:
    if not _element_is_object(inputs):
        if len(dtypes) > 1:
            raise InvalidArgument("inputs is a plain value/list, but expecting an object as multiple input "
                           "tensors required as per tensorinfo_map")
        return {min(dtypes): _tensor(inputs, dtypes[min(dtypes)])}
    for name in sorted(dtypes):
        if name not in inputs:
            raise InvalidArgument(f"Missing named input: {name} in 'inputs' object.")
    return {name: _tensor(inputs[name], dtype) for name, dtype in dtypes.items()}


def parse_predict_inputs(request: dict, input_dtypes: Mapping[str, str]) -> tuple[str, dict[str, np.ndarray]]:
    """('row', tensors) for "instances", ('columnar', tensors) for "inputs" (spec §1.4, §1.6).

    `input_dtypes` maps the signature's input names to DataType enum names ('DT_FLOAT', ...). Arrays have
    the matching numpy dtype (DT_STRING: object array of bytes); floats are rounded to float32 for
    DT_FLOAT. Errors are ServingError with TF's texts, checked in TF's order.
    """
    signature_name_of(request)
    if not input_dtypes:
        raise InvalidArgument(
            f"Failed to get input map for signature: {request.get('signature_name') or 'DEFAULT'}")
    if "instances" not in request and "inputs" not in request:
        raise InvalidArgument("Missing 'inputs' or 'instances' key")
    if "instances" in request and "inputs" in request:
        raise format_error(request, "Not formatted correctly expecting only one of 'inputs' or "
                                     "'instances' keys to exist ")
    try:
        if "inputs" in request:
            fmt, tensors = "columnar", _columnar_tensors(request["inputs"], input_dtypes)
        elif type(instances := request["instances"]) is not list:
            raise format_error(request, "Expecting 'instances' to be an list/array")
        elif not instances:
            raise format_error(request, "No values in 'instances' array")
        else:
            fmt, tensors = "row", _row_tensors(instances, input_dtypes)
    except RecursionError:
        raise InvalidArgument("JSON value nests too deeply to be a tensor") from None
    if tensors.keys() != input_dtypes.keys():  # only a b64 first instance gets here (TF's predict_util text)
        sent, wanted = sorted(tensors), sorted(input_dtypes)
        missing = ",".join(sorted(set(wanted) - set(sent)))
        raise InvalidArgument(f"input size does not match signature: {len(sent)}!={len(wanted)} "
                       f"len({{{','.join(sent)}}}) != len({{{','.join(wanted)}}}). Sent extra: {{}}. "
                       f"Missing but required: {{{missing}}}.")
    return fmt, tensors


# ---------------------------------------------------------------- numpy -> JSON

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
# The dtypes AddSingleValueAndAdvance writes, as numpy kind + item size.
_WRITABLE = frozenset({"f4", "f8", "i1", "i2", "i4", "i8", "u1", "u4", "u8", "b1"})


def _tf_type_of(array: np.ndarray) -> str:
    """DataTypeString of a numpy dtype, for messages ('float', 'half', 'complex64', 'string')."""
    if array.dtype.kind in "OSU":
        return "string"
    names = {"float16": "half", "float32": "float", "float64": "double"}
    return names.get(array.dtype.name, array.dtype.name)


def _string_value(item: Any, as_bytes: bool) -> Any:
    data = item if isinstance(item, bytes) else str(item).encode("utf-8", "surrogatepass")
    if as_bytes:
        return {"b64": base64.b64encode(data).decode("ascii")}
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:  # TF Serving's rapidjson copies the bytes as they are
        return orjson.Fragment(raw_json_string(data))


def _nest(flat: list, shape: tuple[int, ...]) -> Any:
    """A flat C-order list as nested lists of `shape` (every dim > 0)."""
    for dim in reversed(shape[1:]):
        flat = [flat[i:i + dim] for i in range(0, len(flat), dim)]
    return flat if shape else flat[0]


def tensor_json(array: np.ndarray, as_bytes: bool = False) -> bytes:
    """One tensor as JSON text, TF's way: floats as WriteDecimal writes them (`float_text`: '0.1',
    '3.0', '9e+06', '2.92964888'), NaN/Infinity/-Infinity as bare tokens, ints, true/false,
    strings (or {"b64": ..} when `as_bytes`). Unwritable dtypes raise TF's
    'Failed to write JSON value for tensor type: ...'."""
    array = np.asarray(array)
    if array.size == 0:  # TF writes only the brackets, so even unwritable dtypes pass
        return orjson.dumps(np.zeros(array.shape, np.int8), option=_NUMPY)
    if array.dtype.kind in "OSU":
        flat = [_string_value(item, as_bytes) for item in array.ravel().tolist()]
        return orjson.dumps(_nest(flat, array.shape))
    if array.dtype.kind + str(array.dtype.itemsize) not in _WRITABLE:
        raise InvalidArgument(f"Failed to write JSON value for tensor type: {_tf_type_of(array)}")
    if array.dtype.kind == "f":  # TF's WriteDecimal text, NaN/Infinity tokens included
        return float_text.json_array(array)
    if array.ndim:  # (ascontiguousarray would turn a scalar into shape [1])
        array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
    return orjson.dumps(array if array.ndim else array[()], option=_NUMPY)


def _row_items(name: str, array: np.ndarray) -> list:
    """Per batch item values of one output, ready for orjson (numpy views, or pre-written fragments)."""
    if array.dtype.kind == "f" and array.dtype.kind + str(array.dtype.itemsize) in _WRITABLE and array.size:
        return float_text.json_items(array)
    if array.dtype.kind + str(array.dtype.itemsize) in _WRITABLE and array.dtype.kind in "iub":
        return list(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("=")))
    as_bytes = name.endswith("_bytes")
    return [orjson.Fragment(tensor_json(array[i, ...], as_bytes)) for i in range(array.shape[0])]


def format_predict_response(fmt: str, outputs: Mapping[str, np.ndarray]) -> bytes:
    """The predict response body: 'row' -> {"predictions": ...}, 'columnar' -> {"outputs": ...}.

    One output drops its name; several give per-item objects (row) or name -> tensor (columnar).
    Row needs every output to have rank >= 1 and the same dim 0, else ServingError with TF's texts.
    """
    if not outputs:
        raise InvalidArgument("Cannot convert empty tensor map to JSON")
    arrays = {name: np.asarray(outputs[name]) for name in sorted(outputs)}

    def is_bytes(name: str) -> bool:
        return name.endswith("_bytes") and arrays[name].dtype.kind in "OSU"

    if fmt == "columnar":
        if len(arrays) == 1:
            ((name, array),) = arrays.items()
            return pretty_top_level("outputs", tensor_json(array, is_bytes(name)))
        fields = {name: orjson.Fragment(tensor_json(a, is_bytes(name))) for name, a in arrays.items()}
        return pretty_top_level("outputs", orjson.dumps(fields))
    if fmt != "row":
        raise InvalidArgument("Invalid request format")
    batch = None
    for name, array in arrays.items():
        if array.ndim == 0:
            raise InvalidArgument(f"Tensor name: {name} has no shape information ")
        if batch is not None and array.shape[0] != batch:
            raise InvalidArgument(f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} "
                           f"expecting: {batch}")
        batch = array.shape[0]
    if len(arrays) == 1:
        ((name, array),) = arrays.items()
        return pretty_top_level("predictions", tensor_json(array, is_bytes(name)))
    columns = [_row_items(name, array) for name, array in arrays.items()]
    items = [dict(zip(arrays, item, strict=True)) for item in zip(*columns, strict=True)]
    return pretty_top_level("predictions", orjson.dumps(items, option=_NUMPY))


def _with_tokens(obj: Any) -> Any:
    """obj with non-finite floats and numpy arrays pre-written, so orjson keeps NaN/Infinity tokens."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return orjson.Fragment(decimal_text(obj, single=False).encode())
    if isinstance(obj, np.ndarray):
        return orjson.Fragment(tensor_json(obj))
    if isinstance(obj, dict):
        return {key: _with_tokens(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_with_tokens(value) for value in obj]
    return obj


def _fallback(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def dumps(obj: Any) -> bytes:
    """Generic JSON writer for status/metadata bodies: orjson, NaN/Infinity as bare tokens like TF."""
    return orjson.dumps(_with_tokens(obj), option=_NUMPY, default=_fallback)
