"""A served model as its signatures tell it: typed inputs and outputs, valid requests, answers by name.

Everything the dashboard needs to explore a model it has never seen comes from the metadata TF
Serving returns (``GET /v1/models/<name>/metadata``): each SignatureDef's method (predict, classify,
regress) and its tensors' dtypes and shapes. From those this module says which editor fits an
input (:func:`input_kind`), builds a valid example row (:func:`example_value`), checks values
against dtype and shape before anything is sent (:func:`check_inputs`, naming the input, the row
and what was expected), writes REST bodies in row (``instances``) or columnar (``inputs``) format
(:func:`rest_body`) and reads any answer back as one list per output name (:func:`read_outputs`),
including the ``predictions`` list of a one-output model, which carries no name. Pure functions,
no network, no Streamlit.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

INIT_OP = "__saved_model_init_op"
PREDICT, CLASSIFY, REGRESS = "predict", "classify", "regress"
FLOAT_DTYPES = frozenset({"DT_FLOAT", "DT_DOUBLE", "DT_HALF", "DT_BFLOAT16"})
INT_DTYPES = frozenset({"DT_INT8", "DT_INT16", "DT_INT32", "DT_INT64", "DT_UINT8", "DT_UINT16",
                        "DT_UINT32", "DT_UINT64"})
INT_RANGES = {"DT_INT8": (-2**7, 2**7 - 1), "DT_INT16": (-2**15, 2**15 - 1), "DT_INT32": (-2**31, 2**31 - 1),
              "DT_INT64": (-2**63, 2**63 - 1), "DT_UINT8": (0, 2**8 - 1), "DT_UINT16": (0, 2**16 - 1),
              "DT_UINT32": (0, 2**32 - 1), "DT_UINT64": (0, 2**64 - 1)}
MAX_COLUMNS = 64
"""A ``[-1, k]`` input is edited as k table columns up to this k; wider ones in JSON."""
MAX_FIELDS = 16
"""An input without a batch dimension is edited as typed fields up to this many values."""
IMAGE_CHANNELS = (1, 3, 4)
NUMPY_DTYPES = {"DT_FLOAT": "float32", "DT_DOUBLE": "float64", "DT_HALF": "float16", "DT_INT8": "int8",
                "DT_INT16": "int16", "DT_INT32": "int32", "DT_INT64": "int64", "DT_UINT8": "uint8",
                "DT_UINT16": "uint16", "DT_UINT32": "uint32", "DT_UINT64": "uint64", "DT_BOOL": "bool",
                "DT_STRING": "object"}


class InputKind(Enum):
    """Which editor fits one input tensor."""

    COLUMNS = "columns"
    """numbers or booleans, ``[-1]`` or ``[-1, k]``: k columns of a table, one row per example"""
    TEXT = "text"
    """strings, ``[-1]`` or ``[-1, 1]``: one text per example"""
    IMAGE = "image"
    """numbers ``[-1, H, W, C]`` with C of 1, 3 or 4: a picture per example"""
    FIELDS = "fields"
    """a scalar or a small fixed shape without a batch dimension: typed fields"""
    JSON = "json"
    """anything else (unknown rank, other dtypes, large shapes): the JSON editor"""


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a signature: its key, TF dtype name and shape (``-1`` unknown,
    ``None`` for unknown rank)."""

    key: str
    dtype: str
    shape: tuple[int, ...] | None

    @property
    def batched(self) -> bool:
        """Whether dimension 0 is the batch (unknown size), as the row format needs."""
        return bool(self.shape) and self.shape[0] == -1

    @property
    def row_shape(self) -> tuple[int, ...] | None:
        """The shape of one example (the shape without the batch dimension)."""
        if self.shape is None:
            return None
        return self.shape[1:] if self.batched else self.shape

    @property
    def numeric(self) -> bool:
        return self.dtype in FLOAT_DTYPES or self.dtype in INT_DTYPES

    def describe(self) -> str:
        """``float32 [-1, 2]``: the dtype and shape as a user reads them."""
        return f"{dtype_text(self.dtype)} {shape_text(self.shape)}"


@dataclass(frozen=True)
class Signature:
    """One SignatureDef: its key, method (predict, classify or regress) and tensors."""

    name: str
    method: str
    inputs: dict[str, TensorSpec] = field(default_factory=dict)
    outputs: dict[str, TensorSpec] = field(default_factory=dict)

    @property
    def takes_examples(self) -> bool:
        """Classify and regress signatures take ``tf.Example``s (``:classify``/``:regress``)."""
        return self.method in (CLASSIFY, REGRESS)


def dtype_text(dtype: str) -> str:
    """``DT_FLOAT`` -> ``float32``, ``DT_STRING`` -> ``string``: names as numpy and users say them."""
    short = dtype[3:].lower() if dtype.startswith("DT_") else dtype.lower()
    return {"float": "float32", "double": "float64", "half": "float16"}.get(short, short)


def shape_text(shape: tuple[int, ...] | None) -> str:
    """``[-1, 2]``, ``[]`` for a scalar, ``unknown rank``."""
    return "unknown rank" if shape is None else "[" + ", ".join(str(d) for d in shape) + "]"


def _method(name: str) -> str:
    tail = (name or "").rsplit("/", 1)[-1].lower()
    return tail if tail in (CLASSIFY, REGRESS) else PREDICT


def _tensor(key: str, info: Mapping[str, Any]) -> TensorSpec:
    shape_info = info.get("tensor_shape") or {}
    if shape_info.get("unknown_rank"):
        shape = None
    else:
        shape = tuple(int(d.get("size", -1)) for d in shape_info.get("dim", []))
    return TensorSpec(key, str(info.get("dtype", "DT_INVALID")), shape)


def read_signatures(metadata: Mapping[str, Any]) -> dict[str, Signature]:
    """Every callable signature in a metadata answer (REST or gRPC as JSON), ``serving_default``
    first, then by name; TF2's init op left out."""
    outer = (metadata.get("metadata") or {}).get("signature_def") or {}
    defs = outer.get("signature_def", outer) if isinstance(outer, Mapping) else {}
    found = {}
    for name in sorted(defs, key=lambda n: (n != "serving_default", n)):
        if name == INIT_OP or not isinstance(defs[name], Mapping):
            continue
        sig = defs[name]
        found[name] = Signature(
            name, _method(sig.get("method_name", "")),
            {k: _tensor(k, v) for k, v in sorted((sig.get("inputs") or {}).items())},
            {k: _tensor(k, v) for k, v in sorted((sig.get("outputs") or {}).items())})
    return found


def input_kind(spec: TensorSpec) -> InputKind:
    """The editor that fits ``spec`` (see :class:`InputKind`)."""
    shape, numeric = spec.shape, spec.numeric or spec.dtype == "DT_BOOL"
    if shape is None or (spec.dtype not in FLOAT_DTYPES | INT_DTYPES | {"DT_BOOL", "DT_STRING"}):
        return InputKind.JSON
    if spec.batched:
        row = shape[1:]
        if spec.numeric and len(row) == 3 and row[0] > 0 and row[1] > 0 and row[2] in IMAGE_CHANNELS:
            return InputKind.IMAGE
        if spec.dtype == "DT_STRING" and row in ((), (1,)):
            return InputKind.TEXT
        if numeric and (row == () or (len(row) == 1 and 0 < row[0] <= MAX_COLUMNS)):
            return InputKind.COLUMNS
        return InputKind.JSON
    if all(d > 0 for d in shape) and math.prod(shape) <= MAX_FIELDS:
        return InputKind.FIELDS
    return InputKind.JSON


def columns_of(spec: TensorSpec) -> list[str]:
    """The table columns a COLUMNS or TEXT input fills: its key for ``[-1]`` and ``[-1, 1]``, else
    ``key[0]``, ``key[1]``, ..."""
    row = spec.row_shape or ()
    if row in ((), (1,)):
        return [spec.key]
    return [f"{spec.key}[{i}]" for i in range(row[0])]


def _scalar_example(dtype: str) -> Any:
    if dtype in FLOAT_DTYPES:
        return 0.0
    if dtype in INT_DTYPES:
        return 0
    if dtype == "DT_BOOL":
        return False
    return "example"


def example_value(spec: TensorSpec, image_fill: float = 0.5) -> Any:
    """A valid value for one example of ``spec`` (one row of a batched input, the whole tensor of
    an unbatched one): zeros, ``False``, ``"example"``; images a mid-grey ``image_fill``. Unknown
    dimensions are taken as 1; unknown rank as a scalar."""
    value: Any = image_fill if input_kind(spec) == InputKind.IMAGE else _scalar_example(spec.dtype)
    for size in reversed(spec.row_shape or ()):
        value = [value for _ in range(size if size > 0 else 1)]
    return value


def example_inputs(signature: Signature, rows: int = 1) -> dict[str, list[Any] | Any]:
    """A valid request for ``signature``: ``rows`` examples of each batched input (a list per
    input), the value itself for an unbatched one."""
    return {key: ([example_value(spec) for _ in range(rows)] if spec.batched else example_value(spec))
            for key, spec in signature.inputs.items()}


# -- checking values ---------------------------------------------------------------------------------

def _shape_of(value: Any) -> tuple[int, ...] | None:
    """The shape of a nested list, ``None`` when ragged."""
    if not isinstance(value, list):
        return ()
    if not value:
        return (0,)
    inner = [_shape_of(v) for v in value]
    first = inner[0]
    if first is None or any(s != first for s in inner):
        return None
    return (len(value), *first)


def _flat(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [x for v in value for x in _flat(v)]
    return [value]


def _bad_scalar(dtype: str, item: Any) -> str | None:
    """Why ``item`` is not a value of ``dtype`` (None when it is)."""
    if dtype in FLOAT_DTYPES:
        if isinstance(item, bool) or not isinstance(item, int | float):
            return f"{item!r:.40} is not a number"
        return None
    if dtype in INT_DTYPES:
        if isinstance(item, float) and item.is_integer():
            item = int(item)
        if isinstance(item, bool) or not isinstance(item, int):
            return f"{item!r:.40} is not a whole number"
        low, high = INT_RANGES[dtype]
        return None if low <= item <= high else f"{item} is outside {dtype_text(dtype)}'s range {low}..{high}"
    if dtype == "DT_BOOL":
        return None if isinstance(item, bool) else f"{item!r:.40} is not true or false"
    if dtype == "DT_STRING":
        if isinstance(item, str) or (isinstance(item, dict) and set(item) == {"b64"}):
            return None
        return f"{item!r:.40} is not a string"
    return None


def _fits(shape: tuple[int, ...], wanted: tuple[int, ...] | None) -> bool:
    if wanted is None:
        return True
    return len(shape) == len(wanted) and all(w < 0 or w == s for s, w in zip(shape, wanted, strict=True))


def check_value(spec: TensorSpec, value: Any, row: int | None = None) -> None:
    """``ValueError`` naming the input (and ``row``, counted from 1) when ``value`` does not have
    ``spec``'s dtype and shape (one example's shape when ``row`` is given)."""
    where = f"Input '{spec.key}'" + (f", row {row}" if row is not None else "")
    wanted = spec.row_shape if row is not None else spec.shape
    shape = _shape_of(value)
    if shape is None:
        raise ValueError(f"{where}: the nested lists are ragged; expected {spec.describe()}")
    if not _fits(shape, wanted):
        raise ValueError(f"{where}: expected shape {shape_text(wanted)} ({spec.describe()}), got "
                         f"{shape_text(shape)}")
    for item in _flat(value):
        if (problem := _bad_scalar(spec.dtype, item)) is not None:
            raise ValueError(f"{where}: {problem}; expected {spec.describe()}")


def check_inputs(signature: Signature, inputs: Mapping[str, Any], *, rows: bool) -> int | None:
    """Check a whole request before it is sent: every input of the signature present, no other,
    each value of the right dtype and shape. With ``rows`` (row format), every batched input is a
    list of examples checked one by one, all of the same count, which is returned. ``ValueError``
    names the input, the row and what was expected."""
    missing = [k for k in signature.inputs if k not in inputs]
    extra = [k for k in inputs if k not in signature.inputs]
    if missing or extra:
        parts = ([f"missing input(s) {', '.join(missing)}"] if missing else []) + (
            [f"unknown input(s) {', '.join(extra)}"] if extra else [])
        raise ValueError(f"The request does not match signature '{signature.name}': {'; '.join(parts)} "
                         f"(it takes {', '.join(signature.inputs) or 'no input'}).")
    counts = {}
    for key, spec in signature.inputs.items():
        value = inputs[key]
        if rows and spec.batched:
            if not isinstance(value, list) or not value:
                raise ValueError(f"Input '{key}': expected a list of examples ({spec.describe()}).")
            for index, item in enumerate(value, start=1):
                check_value(spec, item, row=index)
            counts[key] = len(value)
        else:
            check_value(spec, value)
    if len(set(counts.values())) > 1:
        raise ValueError("Every input needs one value per example: "
                         + ", ".join(f"'{k}' has {n}" for k, n in counts.items()) + ".")
    return next(iter(counts.values()), None)


# -- requests and answers ------------------------------------------------------------------------------

def rest_body(inputs: Mapping[str, Any], fmt: str, signature_name: str | None = None) -> dict[str, Any]:
    """A ``:predict`` body: ``fmt`` "row" gives ``instances`` (one object per example with several
    inputs, the bare value with one), "columnar" gives ``inputs`` (an object, or the bare value with
    one input). ``signature_name`` is written unless it is ``serving_default`` or None."""
    named = signature_name not in (None, "serving_default")
    body: dict[str, Any] = {"signature_name": signature_name} if named else {}
    if len(inputs) == 1:
        (value,) = inputs.values()
        body["instances" if fmt == "row" else "inputs"] = value
    elif fmt == "row":
        keys = list(inputs)
        counts = {len(v) if isinstance(v, list) else -1 for v in inputs.values()}
        if len(counts) != 1 or -1 in counts:
            raise ValueError("The row format needs one value per example for every input; "
                             "use the columnar format for inputs without a batch dimension.")
        body["instances"] = [dict(zip(keys, values, strict=True)) for values in zip(*inputs.values(),
                                                                                      strict=True)]
    else:
        body["inputs"] = dict(inputs)
    return body


def inputs_of_body(body: Mapping[str, Any], signature: Signature) -> tuple[dict[str, Any], str]:
    """The inputs of a ``:predict`` body by key, and its format ("row" or "columnar"); the reverse
    of :func:`rest_body`. ``ValueError`` when it has neither ``instances`` nor ``inputs``."""
    if "instances" in body:
        value, fmt = body["instances"], "row"
    elif "inputs" in body:
        value, fmt = body["inputs"], "columnar"
    else:
        raise ValueError('The body needs "instances" (row format) or "inputs" (columnar format).')
    keys = list(signature.inputs)
    if fmt == "columnar":
        if isinstance(value, Mapping) and (len(keys) != 1 or set(value) <= set(keys)):
            return dict(value), fmt
        return {keys[0] if len(keys) == 1 else "inputs": value}, fmt
    if not isinstance(value, list):
        raise ValueError('"instances" must be a list (one item per example).')
    named = value and all(isinstance(v, Mapping) for v in value)
    if named and (len(keys) != 1 or set(value[0]) <= set(keys)):
        return {k: [v.get(k) for v in value] for k in dict.fromkeys(k for v in value for k in v)}, fmt
    return {keys[0] if len(keys) == 1 else "instances": value}, fmt


def read_outputs(response: Mapping[str, Any], signature: Signature | None) -> dict[str, Any]:
    """Every output of an answer by name. ``predictions`` (row format) of a one-output model carry
    no name: the signature's only output key names them; ``outputs`` (columnar) likewise. A
    classify answer gives ``classes`` and ``scores`` (one list per example), a regress answer
    ``outputs``. ``ValueError`` when the answer holds none of these."""
    names = list(signature.outputs) if signature is not None else []
    single = names[0] if len(names) == 1 else "output"
    if "predictions" in response:
        values = response["predictions"]
        if isinstance(values, list) and values and all(isinstance(v, Mapping) for v in values) and (
                len(names) != 1):
            keys = list(dict.fromkeys(k for v in values for k in v))
            return {k: [v.get(k) for v in values] for k in keys}
        return {single: values}
    if "outputs" in response:
        values = response["outputs"]
        if isinstance(values, Mapping) and (len(names) != 1 or set(values) <= set(names)):
            return dict(values)
        return {single: values}
    if "results" in response:
        results = response["results"]
        if signature is not None and signature.method == CLASSIFY or _looks_classified(results):
            return {"classes": [[pair[0] for pair in r] for r in results],
                    "scores": [[pair[1] for pair in r] for r in results]}
        return {"outputs": results}
    raise ValueError("The answer has no predictions, outputs or results.")


def _looks_classified(results: Any) -> bool:
    return (isinstance(results, list) and bool(results) and isinstance(results[0], list)
            and bool(results[0]) and isinstance(results[0][0], list))


def examples_count(outputs: Mapping[str, Any]) -> int | None:
    """How many examples an answer covers (the length of its first list output), if any."""
    for value in outputs.values():
        if isinstance(value, list):
            return len(value)
    return None


def tutorial_like(signature: Signature | None, features: Sequence[str] = ("x1", "x2")) -> bool:
    """Whether ``signature`` is the tutorial's: one float input ``[-1, len(features)]`` and one
    float output ``[-1, 1]`` (or ``[-1]``), predict method."""
    if signature is None or signature.method != PREDICT or len(signature.inputs) != 1 or len(
            signature.outputs) != 1:
        return False
    (inp,), (out,) = signature.inputs.values(), signature.outputs.values()
    return (inp.dtype == "DT_FLOAT" and inp.shape == (-1, len(features)) and out.dtype == "DT_FLOAT"
            and out.shape in ((-1, 1), (-1,)))


def _as_bytes(item: Any) -> bytes:
    if isinstance(item, Mapping) and "b64" in item:
        return base64.b64decode(item["b64"])
    return item.encode() if isinstance(item, str) else bytes(item)


def typed_array(spec: TensorSpec, value: Any) -> Any:
    """``value`` (checked against ``spec``) as a numpy array of the signature's dtype, strings as
    bytes: what a gRPC TensorProto carries. ``ValueError`` for a dtype numpy has no type for."""
    import numpy as np

    if spec.dtype not in NUMPY_DTYPES:
        raise ValueError(f"Input '{spec.key}': {dtype_text(spec.dtype)} cannot be sent over gRPC from here; "
                         "use REST.")
    if spec.dtype == "DT_STRING":
        items = np.asarray(value, dtype=object)
        return np.vectorize(_as_bytes, otypes=[object])(items) if items.size else items
    return np.asarray(value, dtype=NUMPY_DTYPES[spec.dtype])
