"""A valid ``:predict`` request for a served model, built from its signature alone.

The Predict page starts with this example (the tutorial's rows ``[1, 2]`` and ``[5, 7]``, which
fit the tutorial's ``float32 [-1, 2]`` input), and ``python -m pipeline.loadtest`` and the Load page
send it when no request is given, so "the request the dashboard shows first" and "the request the
load test sends" are one thing. Other signatures get one example per input: zeros for numbers,
``False`` for booleans, ``"example"`` for strings, with unknown dimensions taken as 1. Pure
functions over the metadata JSON (REST ``/metadata``, or gRPC's as JSON); no network, no Streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TUTORIAL_ROWS: tuple[tuple[float, ...], ...] = ((1.0, 2.0), (5.0, 7.0))
"""The TF Serving tutorial's two input rows: what the Predict page shows first."""
DEFAULT_SIGNATURE = "serving_default"
INIT_OP_SIGNATURE = "__saved_model_init_op"
FLOATS = frozenset({"DT_FLOAT", "DT_DOUBLE", "DT_HALF", "DT_BFLOAT16"})
INTEGERS = frozenset({"DT_INT8", "DT_INT16", "DT_INT32", "DT_INT64", "DT_UINT8", "DT_UINT16", "DT_UINT32",
                      "DT_UINT64"})


@dataclass(frozen=True)
class TensorInfo:
    """One input of a signature: its key, TF dtype name (``DT_FLOAT``) and shape (``-1`` for an
    unknown dimension, ``None`` for an unknown rank)."""

    key: str
    dtype: str
    shape: tuple[int, ...] | None

    @property
    def batched(self) -> bool:
        """Dimension 0 is the batch (its size unknown), so rows can be sent in the row format."""
        return bool(self.shape) and self.shape[0] == -1


def signature_defs(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The SignatureDef map of a metadata answer (TF Serving nests it twice)."""
    outer = (metadata.get("metadata") or {}).get("signature_def") or {}
    defs = outer.get("signature_def", outer) if isinstance(outer, Mapping) else {}
    return {name: sig for name, sig in defs.items() if name != INIT_OP_SIGNATURE and isinstance(sig, Mapping)}


def signature_inputs(metadata: Mapping[str, Any],
                     signature: str = DEFAULT_SIGNATURE) -> dict[str, TensorInfo]:
    """The inputs of ``signature``, by key; ``ValueError`` naming the signatures there are when
    the model has no such signature."""
    defs = signature_defs(metadata)
    if signature not in defs:
        known = ", ".join(sorted(defs)) or "none"
        raise ValueError(f"the model has no signature {signature!r} (its signatures: {known})")
    found = {}
    for key, info in sorted((defs[signature].get("inputs") or {}).items()):
        shape_info = info.get("tensor_shape") or {}
        shape = None if shape_info.get("unknown_rank") else tuple(
            int(d.get("size", -1)) for d in shape_info.get("dim", []))
        found[key] = TensorInfo(key, str(info.get("dtype", "DT_INVALID")), shape)
    return found


def signature_method(metadata: Mapping[str, Any], signature: str = DEFAULT_SIGNATURE) -> str:
    """``predict``, ``classify`` or ``regress``: the REST verb the signature answers."""
    method = str(signature_defs(metadata).get(signature, {}).get("method_name", ""))
    tail = method.rsplit("/", 1)[-1].lower()
    return tail if tail in ("classify", "regress") else "predict"


def _scalar(dtype: str) -> Any:
    if dtype in FLOATS:
        return 0.0
    if dtype in INTEGERS:
        return 0
    if dtype == "DT_BOOL":
        return False
    return "example"


def example_value(info: TensorInfo) -> Any:
    """One valid example of ``info``: a row of a batched input, the whole value of another."""
    value = _scalar(info.dtype)
    dims = (info.shape[1:] if info.batched else info.shape) or ()
    for size in reversed(dims):
        value = [value for _ in range(size if size > 0 else 1)]
    return value


def is_tutorial_input(inputs: Mapping[str, TensorInfo]) -> bool:
    """One numeric input of shape ``[-1, 2]``: the tutorial's, which the tutorial's rows fit."""
    if len(inputs) != 1:
        return False
    (info,) = inputs.values()
    return info.shape == (-1, 2) and (info.dtype in FLOATS or info.dtype in INTEGERS)


def example_body(metadata: Mapping[str, Any], signature: str = DEFAULT_SIGNATURE) -> dict[str, Any]:
    """A valid ``:predict`` body for ``signature``: the tutorial's rows for the tutorial's input,
    else one example of every input (row format when every input is batched, columnar when one is
    not). ``signature_name`` is added unless it is ``serving_default``. ``ValueError`` when the
    model has no such signature, or it takes tf.Examples (classify/regress: give the body)."""
    inputs = signature_inputs(metadata, signature)
    if (method := signature_method(metadata, signature)) != "predict":
        raise ValueError(f"signature {signature!r} takes tf.Examples ({method}): give the request body")
    if not inputs:
        raise ValueError(f"signature {signature!r} has no inputs")
    head = {} if signature == DEFAULT_SIGNATURE else {"signature_name": signature}
    if is_tutorial_input(inputs):
        (info,) = inputs.values()
        rows = [list(row) if info.dtype in FLOATS else [int(v) for v in row] for row in TUTORIAL_ROWS]
        return {**head, "instances": rows}
    if all(info.batched for info in inputs.values()):
        if len(inputs) == 1:
            (info,) = inputs.values()
            return {**head, "instances": [example_value(info)]}
        return {**head, "instances": [{key: example_value(info) for key, info in inputs.items()}]}
    columns = {key: [example_value(info)] if info.batched else example_value(info)
               for key, info in inputs.items()}
    return {**head, "inputs": columns}
