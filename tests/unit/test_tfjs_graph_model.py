"""The TF.js graph-model layout, checked on hand-written frozen graphs: no TensorFlow, no Node.

The graphs mirror what `convert_variables_to_constants_v2` makes of a Keras Dense model
(protobuf JSON as `json_format.MessageToDict` writes it), so a layout bug shows here first.
"""

from __future__ import annotations

import base64

import numpy as np
import pytest

from pipeline.formats.errors import FormatError
from pipeline.formats.graph_model import (
    FrozenGraph,
    read_weights,
    shard_names,
    tensor_value,
    to_graph_model,
)

W = np.array([[2.0], [-1.0]], dtype="<f4")
B = np.array([3.0], dtype="<f4")


def _shape(*dims: int) -> dict:
    return {"dim": [{"size": str(d)} for d in dims]} if dims else {}


def _const(name: str, value: np.ndarray) -> dict:
    tensor = {"dtype": "DT_FLOAT", "tensorShape": _shape(*value.shape),
              "tensorContent": base64.b64encode(value.astype("<f4").tobytes()).decode()}
    return {"name": name, "op": "Const", "attr": {"dtype": {"type": "DT_FLOAT"}, "value": {"tensor": tensor}}}


def _node(name: str, op: str, *inputs: str, **attr: dict) -> dict:
    node = {"name": name, "op": op, "attr": {"T": {"type": "DT_FLOAT"}, **attr}}
    if inputs:
        node["input"] = list(inputs)
    return node


def _linear(extra: list[dict] | None = None, last_op: str = "AddV2") -> FrozenGraph:
    """inputs -> MatMul(w) -> AddV2(b) -> Identity, with the NoOp/control edges freezing leaves."""
    nodes = [
        {"name": "inputs", "op": "Placeholder",
         "attr": {"dtype": {"type": "DT_FLOAT"}, "shape": {"shape": _shape(-1, 2)}}},
        _const("unknown", W),
        _const("unknown_0", B),
        _node("read_w", "Identity", "unknown", _has_manual_control_dependencies={"b": True}),
        _node("MatMul", "MatMul", "inputs", "read_w", transpose_a={"b": False}, transpose_b={"b": False}),
        _node("Add", last_op, "MatMul", "unknown_0"),
        {"name": "NoOp", "op": "NoOp", "input": ["^read_w"]},
        _node("Identity", "Identity", "Add", "^NoOp"),
        *(extra or []),
    ]
    info = {"dtype": "DT_FLOAT", "tensorShape": _shape(-1, 2)}
    return FrozenGraph(nodes=nodes, inputs={"inputs": {"name": "inputs:0", **info}},
                       outputs={"output_0": {"name": "Identity:0", "dtype": "DT_FLOAT",
                                             "tensorShape": _shape(-1, 1)}},
                       generated_by="2.21.0", versions={"producer": 2129})


def test_model_json_has_the_graph_model_header_and_signature():
    model = to_graph_model(_linear())
    doc = model.model_json
    assert doc["format"] == "graph-model"
    assert doc["generatedBy"] == "2.21.0"
    assert doc["convertedBy"]
    assert doc["signature"]["inputs"]["inputs"]["name"] == "inputs:0"
    assert doc["signature"]["outputs"]["output_0"]["name"] == "Identity:0"
    assert doc["modelTopology"]["versions"] == {"producer": 2129}


def test_const_values_move_to_the_weights_manifest_in_graph_order():
    model = to_graph_model(_linear())
    manifest = model.model_json["weightsManifest"]
    assert manifest == [{"paths": ["group1-shard1of1.bin"], "weights": [
        {"name": "unknown", "shape": [2, 1], "dtype": "float32"},
        {"name": "unknown_0", "shape": [1], "dtype": "float32"},
    ]}]
    # little-endian float32, concatenated in manifest order: 2, -1, 3
    assert model.shards == {"group1-shard1of1.bin": W.tobytes() + B.tobytes()}
    assert np.frombuffer(model.shards["group1-shard1of1.bin"], "<f4").tolist() == [2.0, -1.0, 3.0]


def test_const_nodes_stay_in_the_topology_without_their_values():
    nodes = {n["name"]: n for n in to_graph_model(_linear()).model_json["modelTopology"]["node"]}
    tensor = nodes["unknown"]["attr"]["value"]["tensor"]
    assert tensor == {"dtype": "DT_FLOAT", "tensorShape": _shape(2, 1)}
    assert nodes["unknown"]["attr"]["dtype"] == {"type": "DT_FLOAT"}


def test_control_edges_noops_and_private_attrs_are_dropped():
    topology = to_graph_model(_linear()).model_json["modelTopology"]["node"]
    names = [n["name"] for n in topology]
    assert names == ["inputs", "unknown", "unknown_0", "read_w", "MatMul", "Add", "Identity"]
    assert all(not i.startswith("^") for n in topology for i in n.get("input", []))
    read_w = next(n for n in topology if n["name"] == "read_w")
    assert read_w["attr"] == {"T": {"type": "DT_FLOAT"}}
    matmul = next(n for n in topology if n["name"] == "MatMul")
    assert matmul["input"] == ["inputs", "read_w"]
    assert matmul["attr"]["transpose_b"] == {"b": False}


def test_weights_read_back_as_tfjs_decodes_them():
    model = to_graph_model(_linear())
    weights = read_weights(model.model_json, model.shards)
    assert weights["unknown"].tolist() == [[2.0], [-1.0]]
    assert weights["unknown_0"].tolist() == [3.0]


def test_unsupported_op_is_refused_by_name_and_node():
    graph = _linear(last_op="Sin")
    with pytest.raises(FormatError, match=r"TF.js export does not support op 'Sin' \(node 'Add'\)"):
        to_graph_model(graph)


def test_unsupported_op_outside_the_signature_is_ignored():
    graph = _linear(extra=[_node("unused", "TopKV2", "inputs")])
    names = [n["name"] for n in to_graph_model(graph).model_json["modelTopology"]["node"]]
    assert "unused" not in names


def test_elementwise_activations_and_bias_add_are_supported():
    graph = _linear(last_op="BiasAdd")
    extra = [_node("relu", "Relu", "Identity")]
    graph = FrozenGraph(graph.nodes + extra, graph.inputs,
                        {"output_0": {**graph.outputs["output_0"], "name": "relu:0"}})
    ops = [n["op"] for n in to_graph_model(graph).model_json["modelTopology"]["node"]]
    assert ops[-2:] == ["Identity", "Relu"] and "BiasAdd" in ops


def test_large_weights_are_cut_into_numbered_shards():
    big = np.arange(3000, dtype="<f4").reshape(1000, 3)
    graph = _linear()
    graph = FrozenGraph([*graph.nodes, _const("big", big), _node("out2", "Mul", "big", "big")],
                        graph.inputs, {**graph.outputs, "output_1": {"name": "out2:0", "dtype": "DT_FLOAT"}})
    model = to_graph_model(graph, shard_bytes=4096)
    total = W.nbytes + B.nbytes + big.nbytes
    count = -(-total // 4096)
    assert count == 3
    assert list(model.shards) == shard_names(count) == [f"group1-shard{k}of3.bin" for k in (1, 2, 3)]
    assert all(len(data) == 4096 for data in list(model.shards.values())[:-1])
    assert read_weights(model.model_json, model.shards)["big"].tolist() == big.tolist()


def test_short_value_lists_fill_the_shape_like_tensorflow():
    tensor = {"dtype": "DT_FLOAT", "tensorShape": _shape(3), "floatVal": [1.5]}
    assert tensor_value(tensor, "node 'c'").tolist() == [1.5, 1.5, 1.5]
    scalar = {"dtype": "DT_INT32", "tensorShape": {}, "intVal": [7]}
    assert tensor_value(scalar, "node 's'").tolist() == 7


def test_int64_constants_become_int32_weights_and_overflow_is_refused():
    graph = _linear()
    shape_const = {"name": "shape", "op": "Const", "attr": {"dtype": {"type": "DT_INT64"}, "value": {
        "tensor": {"dtype": "DT_INT64", "tensorShape": _shape(2), "int64Val": ["-1", "1"]}}}}
    reshape = _node("reshaped", "Reshape", "Identity", "shape")
    outputs = {"output_0": {"name": "reshaped:0", "dtype": "DT_FLOAT"}}
    model = to_graph_model(FrozenGraph([*graph.nodes, shape_const, reshape], graph.inputs, outputs))
    entry = model.model_json["weightsManifest"][0]["weights"][-1]
    assert entry == {"name": "shape", "shape": [2], "dtype": "int32"}
    assert read_weights(model.model_json, model.shards)["shape"].tolist() == [-1, 1]

    shape_const["attr"]["value"]["tensor"]["int64Val"] = [str(2**40), "1"]
    with pytest.raises(FormatError, match="does not fit in TF.js int32"):
        to_graph_model(FrozenGraph([*graph.nodes, shape_const, reshape], graph.inputs, outputs))


def test_float64_constants_are_refused_with_the_dtype_named():
    graph = _linear()
    graph.nodes[1]["attr"]["value"]["tensor"]["dtype"] = "DT_DOUBLE"
    with pytest.raises(FormatError, match=r"dtype double \(node 'unknown'\)"):
        to_graph_model(graph)


def test_a_signature_naming_a_missing_node_is_refused():
    graph = _linear()
    graph = FrozenGraph(graph.nodes, graph.inputs, {"output_0": {"name": "nowhere:0", "dtype": "DT_FLOAT"}})
    with pytest.raises(FormatError, match="no node 'nowhere'"):
        to_graph_model(graph)
