"""A frozen TensorFlow graph, laid out as a TensorFlow.js graph model (`model.json` + weight shards).

This is the part of tfjs-converter's `tf_saved_model_conversion_v2` that our models need, written
against the format `tf.loadGraphModel` reads (tfjs-converter 4.x):

- `model.json` holds `format: "graph-model"`, `generatedBy` (the TensorFlow version),
  `convertedBy`, `signature` (SignatureDef inputs/outputs in protobuf JSON), `modelTopology` (the
  GraphDef in protobuf JSON: `node[]` with `name`, `op`, `input`, `attr`; enums as names, int64 as
  strings, bytes as base64) and `weightsManifest` (`[{paths, weights: [{name, shape, dtype}]}]`).
- Every `Const` node keeps its place in the graph, but its value moves into the weight shards,
  keyed by the node's name, exactly as tfjs-converter does: TF.js looks Const values up by name.
- Shards are the weights' bytes (little-endian float32 / int32, bool as one byte) concatenated in
  manifest order and cut every 4 MiB into `group1-shard{k}of{n}.bin`.

Pure functions on plain dicts and numpy: no TensorFlow import, so the layout is unit-tested
without it. `pipeline.formats.tfjs` freezes a version and hands the result here.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.formats.errors import FormatError

SHARD_BYTES = 4 * 1024 * 1024
"""tfjs-converter's default `weight_shard_size_bytes`."""

CONVERTED_BY = "tf-serving-dashboard pipeline.formats.tfjs"

SUPPORTED_OPS = frozenset({
    # what a frozen Keras Dense / linear model is made of
    "Placeholder", "Const", "Identity", "MatMul", "BiasAdd", "AddV2", "Add",
    # shape and dtype plumbing Keras adds around layers
    "Reshape", "Cast", "Squeeze", "ExpandDims",
    # common elementwise arithmetic and activations (same attrs in TF.js as in TensorFlow)
    "Sub", "Mul", "RealDiv", "Maximum", "Minimum", "Neg", "Square", "Exp",
    "Relu", "Relu6", "Elu", "Selu", "Sigmoid", "Tanh", "Softplus",
})
"""Ops TF.js 4.x runs with the attrs TensorFlow gives them; anything else is refused by name."""

# dtype name -> (numpy dtype of the value, protobuf JSON field of repeated values, manifest dtype)
_DTYPES: dict[str, tuple[type, str, str]] = {
    "DT_FLOAT": (np.float32, "floatVal", "float32"),
    "DT_INT32": (np.int32, "intVal", "int32"),
    "DT_INT64": (np.int64, "int64Val", "int32"),  # TF.js has no int64; tfjs-converter narrows it too
    "DT_BOOL": (np.bool_, "boolVal", "bool"),
}
_WIRE = {"float32": "<f4", "int32": "<i4", "bool": "u1"}


@dataclass(frozen=True)
class FrozenGraph:
    """A signature with its variables folded into constants, in protobuf JSON form.

    `nodes` are GraphDef nodes as `json_format.MessageToDict` writes them; `inputs` and `outputs`
    map signature keys to TensorInfo JSON (`{"name": "inputs:0", "dtype": "DT_FLOAT",
    "tensorShape": {...}}`), naming tensors of `nodes`.
    """

    nodes: list[dict[str, Any]]
    inputs: dict[str, dict[str, Any]]
    outputs: dict[str, dict[str, Any]]
    generated_by: str = ""
    versions: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GraphModel:
    """What goes on disk: `model.json` (as a dict) and the shard files' bytes by file name."""

    model_json: dict[str, Any]
    shards: dict[str, bytes]


def node_name(tensor: str) -> str:
    """The node a tensor or input reference names: `^a` -> `a`, `a:1` -> `a`."""
    return tensor.lstrip("^").split(":")[0]


def reachable_nodes(nodes: list[dict[str, Any]], outputs: list[str]) -> list[dict[str, Any]]:
    """The nodes the outputs compute from through data inputs, in graph order.

    Control dependencies (`^name`) are not followed: after freezing they only order variable
    reads, and TF.js would otherwise have to run the `NoOp`s they point at.
    """
    by_name = {node["name"]: node for node in nodes}
    keep: set[str] = set()
    stack = [node_name(tensor) for tensor in outputs]
    while stack:
        name = stack.pop()
        if name in keep:
            continue
        if name not in by_name:
            raise FormatError(f"TF.js export: the graph has no node '{name}' that the signature names")
        keep.add(name)
        stack.extend(node_name(i) for i in by_name[name].get("input", []) if not i.startswith("^"))
    return [node for node in nodes if node["name"] in keep]


def tensor_value(tensor: dict[str, Any], where: str) -> np.ndarray:
    """The value of a TensorProto in protobuf JSON, as numpy (TensorFlow's fill rule for short lists)."""
    dtype_name = tensor.get("dtype", "DT_INVALID")
    if dtype_name not in _DTYPES:
        short = dtype_name.removeprefix("DT_").lower()
        raise FormatError(f"TF.js export does not support constants of dtype {short} ({where})")
    np_dtype, field_name, _ = _DTYPES[dtype_name]
    shape = [int(dim.get("size", 0)) for dim in tensor.get("tensorShape", {}).get("dim", [])]
    size = math.prod(shape)
    if "tensorContent" in tensor:
        raw = base64.b64decode(tensor["tensorContent"])
        values = np.frombuffer(raw, dtype=np.dtype(np_dtype).newbyteorder("<"))
    else:
        listed = tensor.get(field_name, [])
        convert = {np.float32: float, np.bool_: bool}.get(np_dtype, int)
        values = np.array([convert(v) for v in listed], dtype=np_dtype)
        if 0 < values.size < size:
            values = np.concatenate([values, np.repeat(values[-1:], size - values.size)])
        elif values.size == 0:
            values = np.zeros(size, dtype=np_dtype)
    if values.size != size:
        raise FormatError(f"TF.js export: constant {where} holds {values.size} values for shape {shape}")
    return values.astype(np_dtype).reshape(shape)


def _weight_bytes(value: np.ndarray, manifest_dtype: str, where: str) -> bytes:
    if value.dtype == np.int64 and value.size and (value.min() < -(2**31) or value.max() >= 2**31):
        raise FormatError(f"TF.js export: int64 constant {where} does not fit in TF.js int32")
    return np.ascontiguousarray(value.astype(_WIRE[manifest_dtype])).tobytes()


def _clean_node(node: dict[str, Any]) -> dict[str, Any]:
    """The node as TF.js reads it: data inputs only, no private (`_`-prefixed) attrs or device."""
    out: dict[str, Any] = {"name": node["name"], "op": node["op"]}
    inputs = [i for i in node.get("input", []) if not i.startswith("^")]
    if inputs:
        out["input"] = inputs
    attrs = {k: v for k, v in node.get("attr", {}).items() if not k.startswith("_")}
    if attrs:
        out["attr"] = attrs
    return out


def shard_names(count: int) -> list[str]:
    """tfjs-converter's shard file names for one weight group."""
    return [f"group1-shard{k}of{count}.bin" for k in range(1, count + 1)]


def to_graph_model(frozen: FrozenGraph, shard_bytes: int = SHARD_BYTES) -> GraphModel:
    """Lay a frozen signature out as a TF.js graph model.

    Raises FormatError naming the first op (and its node) TF.js export does not support, or a
    constant whose dtype TF.js cannot hold. Only nodes the outputs depend on are checked and kept.
    """
    kept = reachable_nodes(frozen.nodes, [info["name"] for info in frozen.outputs.values()])
    for node in kept:
        if node["op"] not in SUPPORTED_OPS:
            raise FormatError(f"TF.js export does not support op '{node['op']}' (node '{node['name']}')")
    for key, info in frozen.inputs.items():
        source = next((n for n in frozen.nodes if n["name"] == node_name(info["name"])), None)
        if source is None or source["op"] != "Placeholder":
            raise FormatError(f"TF.js export: signature input '{key}' is not a placeholder of the graph")

    topology_nodes: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for node in kept:
        clean = _clean_node(node)
        if node["op"] == "Const":
            where = f"node '{node['name']}'"
            tensor = node.get("attr", {}).get("value", {}).get("tensor", {})
            value = tensor_value(tensor, where)
            manifest_dtype = _DTYPES[tensor["dtype"]][2]
            entries.append({"name": node["name"], "shape": list(value.shape), "dtype": manifest_dtype})
            chunks.append(_weight_bytes(value, manifest_dtype, where))
            stripped = {k: v for k, v in tensor.items() if k in ("dtype", "tensorShape")}
            clean["attr"] = {**clean.get("attr", {}), "value": {"tensor": stripped}}
        topology_nodes.append(clean)

    data = b"".join(chunks)
    count = max(1, math.ceil(len(data) / shard_bytes)) if entries else 0
    names = shard_names(count)
    shards = {name: data[i * shard_bytes:(i + 1) * shard_bytes] for i, name in enumerate(names)}
    topology: dict[str, Any] = {"node": topology_nodes, "library": {}}
    if frozen.versions:
        topology["versions"] = frozen.versions
    model_json = {
        "format": "graph-model",
        "generatedBy": frozen.generated_by,
        "convertedBy": CONVERTED_BY,
        "signature": {"inputs": frozen.inputs, "outputs": frozen.outputs},
        "modelTopology": topology,
        "weightsManifest": [{"paths": names, "weights": entries}],
    }
    return GraphModel(model_json, shards)


def read_weights(model_json: dict[str, Any], shards: dict[str, bytes]) -> dict[str, np.ndarray]:
    """Decode a graph model's weights by name, the way TF.js does (the inverse of the layout above)."""
    weights: dict[str, np.ndarray] = {}
    for group in model_json["weightsManifest"]:
        data = b"".join(shards[path] for path in group["paths"])
        offset = 0
        for entry in group["weights"]:
            wire = np.dtype(_WIRE[entry["dtype"]])
            count = math.prod(entry["shape"])
            value = np.frombuffer(data, dtype=wire, count=count, offset=offset).reshape(entry["shape"])
            weights[entry["name"]] = value.astype(bool) if entry["dtype"] == "bool" else value
            offset += count * wire.itemsize
    return weights
