"""A model read from its metadata (pipeline/client/signatures.py): which editor fits each input, a
valid example, checks that name the input, row and expected dtype/shape, REST bodies in both
formats and answers read back by output name."""

from __future__ import annotations

import pytest

from pipeline.client import signatures as sg

IMAGE, TEXT, MULTI, TF1 = "image", "text", "multi", "tf1"


def tensor(dtype: str, *dims: int, unknown_rank: bool = False) -> dict:
    if unknown_rank:
        return {"dtype": dtype, "tensor_shape": {"unknown_rank": True}}
    return {"dtype": dtype, "tensor_shape": {"dim": [{"size": str(d)} for d in dims]}}


METADATA = {"model_spec": {"name": "m", "version": "1"}, "metadata": {"signature_def": {"signature_def": {
    IMAGE: {"inputs": {"image": tensor("DT_FLOAT", -1, 8, 8, 3)},
            "outputs": {"output_0": tensor("DT_FLOAT", -1, 3)}, "method_name": "tensorflow/serving/predict"},
    TEXT: {"inputs": {"text": tensor("DT_STRING", -1)},
           "outputs": {"probabilities": tensor("DT_FLOAT", -1, 2), "words": tensor("DT_INT64", -1)},
           "method_name": "tensorflow/serving/predict"},
    MULTI: {"inputs": {"count": tensor("DT_INT64", -1), "features": tensor("DT_FLOAT", -1, 2),
                       "city": tensor("DT_STRING", -1)},
            "outputs": {"score": tensor("DT_FLOAT", -1), "tier": tensor("DT_STRING", -1)},
            "method_name": "tensorflow/serving/predict"},
    TF1: {"inputs": {"inputs": tensor("DT_STRING", unknown_rank=True)},
          "outputs": {"classes": tensor("DT_STRING", -1, 3), "scores": tensor("DT_FLOAT", -1, 3)},
          "method_name": "tensorflow/serving/classify"},
    "serving_default": {"inputs": {"delta": tensor("DT_FLOAT")}, "outputs": {"output": tensor("DT_FLOAT")},
                        "method_name": "tensorflow/serving/predict"},
    "__saved_model_init_op": {"inputs": {}, "outputs": {}, "method_name": ""},
}}}}
SIGS = sg.read_signatures(METADATA)


def test_signatures_are_read_serving_default_first_without_the_init_op() -> None:
    assert list(SIGS) == ["serving_default", IMAGE, MULTI, TEXT, TF1]
    assert SIGS[TF1].method == "classify" and SIGS[TF1].takes_examples
    assert SIGS[IMAGE].inputs["image"].describe() == "float32 [-1, 8, 8, 3]"
    assert SIGS[TF1].inputs["inputs"].describe() == "string unknown rank"


def test_each_input_gets_the_editor_its_dtype_and_shape_call_for() -> None:
    kinds = {key: sg.input_kind(spec) for sig in SIGS.values() for key, spec in sig.inputs.items()}
    assert kinds == {"delta": sg.InputKind.FIELDS, "image": sg.InputKind.IMAGE, "count": sg.InputKind.COLUMNS,
                     "features": sg.InputKind.COLUMNS, "city": sg.InputKind.TEXT, "text": sg.InputKind.TEXT,
                     "inputs": sg.InputKind.JSON}
    wide = sg.TensorSpec("w", "DT_FLOAT", (-1, 1000))
    assert sg.input_kind(wide) == sg.InputKind.JSON and sg.columns_of(SIGS[MULTI].inputs["features"]) == [
        "features[0]", "features[1]"]


def test_the_example_built_from_a_signature_passes_its_own_check() -> None:
    for name in (IMAGE, TEXT, MULTI, "serving_default"):
        signature = SIGS[name]
        inputs = sg.example_inputs(signature, rows=2)
        rows = sg.check_inputs(signature, inputs, rows=True)
        assert rows == (2 if name != "serving_default" else None)
    assert sg.example_inputs(SIGS[MULTI]) == {"city": ["example"], "count": [0], "features": [[0.0, 0.0]]}


@pytest.mark.parametrize(("inputs", "message"), [
    ({"count": [1], "features": [[1.0, 2.0]]}, "missing input(s) city"),
    ({"count": [1], "features": [[1.0, 2.0]], "city": ["a"], "zip": [1]}, "unknown input(s) zip"),
    ({"count": [1.5], "features": [[1.0, 2.0]], "city": ["a"]},
     "Input 'count', row 1: 1.5 is not a whole number"),
    ({"count": [1, 2], "features": [[1.0, 2.0], [1.0]], "city": ["a", "b"]},
     "Input 'features', row 2: expected shape [2] (float32 [-1, 2]), got [1]"),
    ({"count": [1], "features": [["a", 2.0]], "city": ["a"]}, "Input 'features', row 1: 'a' is not a number"),
    ({"count": [1], "features": [[1.0, 2.0]], "city": [3]}, "Input 'city', row 1: 3 is not a string"),
    ({"count": [1, 2], "features": [[1.0, 2.0]], "city": ["a", "b"]}, "'count' has 2, 'features' has 1"),
    ({"count": [2**70], "features": [[1.0, 2.0]], "city": ["a"]}, "outside int64's range"),
])
def test_bad_input_is_named_with_its_row_and_what_was_expected(inputs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")):
        sg.check_inputs(SIGS[MULTI], inputs, rows=True)


def test_bodies_in_both_formats_and_back() -> None:
    inputs = {"count": [2, 9], "features": [[1.0, 2.0], [3.0, 0.0]], "city": ["paris", "rome"]}
    row = sg.rest_body(inputs, "row", MULTI)
    assert row == {"signature_name": MULTI, "instances": [
        {"count": 2, "features": [1.0, 2.0], "city": "paris"},
        {"count": 9, "features": [3.0, 0.0], "city": "rome"}]}
    columnar = sg.rest_body(inputs, "columnar", "serving_default")
    assert columnar == {"inputs": inputs}
    assert sg.inputs_of_body(row, SIGS[MULTI]) == (inputs, "row")
    assert sg.inputs_of_body(columnar, SIGS[MULTI]) == (inputs, "columnar")
    assert sg.rest_body({"text": ["hi"]}, "row") == {"instances": ["hi"]}
    assert sg.inputs_of_body({"instances": ["hi"]}, SIGS[TEXT]) == ({"text": ["hi"]}, "row")
    with pytest.raises(ValueError, match="row format needs one value per example"):
        sg.rest_body({"a": 1.0, "b": [1.0]}, "row")


def test_answers_are_read_by_output_name_also_when_predictions_carry_none() -> None:
    one = sg.Signature("s", "predict", {}, {"output_0": sg.TensorSpec("output_0", "DT_FLOAT", (-1, 3))})
    assert sg.read_outputs({"predictions": [[0.1, 0.2, 0.7]]}, one) == {"output_0": [[0.1, 0.2, 0.7]]}
    assert sg.read_outputs({"outputs": [[0.1, 0.2, 0.7]]}, one) == {"output_0": [[0.1, 0.2, 0.7]]}
    two = SIGS[MULTI]
    answer = {"predictions": [{"score": 2.0, "tier": "low"}, {"score": 10.5, "tier": "high"}]}
    assert sg.read_outputs(answer, two) == {"score": [2.0, 10.5], "tier": ["low", "high"]}
    assert sg.read_outputs({"outputs": {"score": [2.0], "tier": ["low"]}}, two) == {"score": [2.0],
                                                                                   "tier": ["low"]}
    classify = {"results": [[["a", 0.4], ["b", 0.6]]]}
    assert sg.read_outputs(classify, SIGS[TF1]) == {"classes": [["a", "b"]], "scores": [[0.4, 0.6]]}
    assert sg.read_outputs({"results": [4.0]}, None) == {"outputs": [4.0]}
    with pytest.raises(ValueError, match="no predictions, outputs or results"):
        sg.read_outputs({"error": "x"}, two)


def test_typed_arrays_for_grpc() -> None:
    spec = SIGS[MULTI].inputs
    assert sg.typed_array(spec["count"], [2, 9]).dtype.name == "int64"
    assert sg.typed_array(spec["features"], [[1.0, 2.0]]).dtype.name == "float32"
    assert sg.typed_array(spec["city"], ["paris", {"b64": "cm9tZQ=="}]).tolist() == [b"paris", b"rome"]
    with pytest.raises(ValueError, match="cannot be sent over gRPC"):
        sg.typed_array(sg.TensorSpec("c", "DT_COMPLEX64", (-1,)), [1.0])


def test_only_the_tutorials_signature_is_tutorial_like() -> None:
    tutorial = sg.Signature("serving_default", "predict",
                            {"inputs": sg.TensorSpec("inputs", "DT_FLOAT", (-1, 2))},
                            {"output_0": sg.TensorSpec("output_0", "DT_FLOAT", (-1, 1))})
    assert sg.tutorial_like(tutorial)
    assert not any(sg.tutorial_like(s) for s in SIGS.values())
