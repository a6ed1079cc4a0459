"""The Predict page's "Write warm-up file" (`pipeline/client/warmup.py`) without TensorFlow: a
SavedModel's signatures read and `PredictionLog`s written as TFRecords in the calling process.

The SavedModel here is hand-made with `pipeline.tf_protos` (only its signatures matter);
tests/integration/test_warmup_export.py checks a real export against TensorFlow's own protos.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline import tf_protos
from pipeline.client.grpc import _tensor_values
from pipeline.client.warmup import export_warmup, warmup_path
from pipeline.formats import tfrecord
from tests.support.no_tensorflow import SEEN, run_watched


def version_with_signatures(path: Path, inputs: dict[str, list[str]]) -> Path:
    """A version folder whose saved_model.pb has a `serve` MetaGraph with these signatures
    (name -> input keys, each a float [-1, 2] input)."""
    saved_model = tf_protos.message_class("tensorflow.SavedModel")()
    meta_graph = saved_model.meta_graphs.add()
    meta_graph.meta_info_def.tags.append("serve")
    for name, keys in inputs.items():
        signature = meta_graph.signature_def[name]
        signature.method_name = "tensorflow/serving/predict"
        for key in keys:
            signature.inputs[key].name = f"{name}_{key}:0"
            signature.inputs[key].dtype = tf_protos.enum("tensorflow.DataType").DT_FLOAT
            for size in (-1, 2):
                signature.inputs[key].tensor_shape.dim.add().size = size
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(saved_model.SerializeToString())
    return path


def read_logs(path: Path) -> list:
    log_class = tf_protos.message_class("tensorflow.serving.PredictionLog")
    report = tfrecord.ReadReport()
    logs = [log_class.FromString(record) for record in tfrecord.iter_records(path, report)]
    assert not report.damaged
    return logs


def test_each_request_becomes_a_prediction_log(tmp_path: Path) -> None:
    version = version_with_signatures(tmp_path / "m" / "1", {"serving_default": ["inputs"], "other": ["x"]})
    bodies = [{"instances": [[1.0, 2.0], [5.0, 7.0]]}, {"signature_name": "other", "inputs": [[0.5, -0.5]]}]
    written = export_warmup(bodies, version, "m")
    assert written == warmup_path(version) == version / "assets.extra" / "tf_serving_warmup_requests"
    first, second = (log.predict_log.request for log in read_logs(written))
    assert (first.model_spec.name, first.model_spec.signature_name) == ("m", "serving_default")
    assert _tensor_values(first.inputs["inputs"]) == [[1.0, 2.0], [5.0, 7.0]]
    assert second.model_spec.signature_name == "other" and _tensor_values(second.inputs["x"]) == [[0.5, -0.5]]
    assert sorted(p.name for p in written.parent.iterdir()) == ["tf_serving_warmup_requests"]


@pytest.mark.parametrize(("bodies", "message"), [
    ([{"signature_name": "nope", "instances": [[1.0, 2.0]]}], "the version has no signature 'nope'"),
    ([{"signature_name": "two", "instances": [[1.0, 2.0]]}],
     "request 1: The request does not match signature 'two': missing input\\(s\\) a, b"),
    ([{"instances": [["a", "b"]]}], "request 1: Input 'inputs': 'a' is not a number"),
    ([{"instances": []}], "no input rows kept"),
])
def test_a_request_that_cannot_be_written_is_refused_and_the_old_file_kept(tmp_path: Path, bodies: list,
                                                                          message: str) -> None:
    signatures = {"serving_default": ["inputs"], "two": ["a", "b"]}
    version = version_with_signatures(tmp_path / "m" / "1", signatures)
    export_warmup([{"instances": [[1.0, 2.0]]}], version, "m")
    before = warmup_path(version).read_bytes()
    with pytest.raises(ValueError, match=message):
        export_warmup(bodies, version, "m")
    assert warmup_path(version).read_bytes() == before


def test_a_folder_without_a_savedmodel_is_a_readable_error(tmp_path: Path) -> None:
    (tmp_path / "m" / "1").mkdir(parents=True)
    with pytest.raises(ValueError, match="Could not write the warm-up file: Could not find SavedModel"):
        export_warmup([{"instances": [[1.0, 2.0]]}], tmp_path / "m" / "1", "m")


def test_writing_one_needs_no_tensorflow(tmp_path: Path) -> None:
    version = version_with_signatures(tmp_path / "m" / "1", {"serving_default": ["inputs"]})
    done = run_watched(f"""
import json
from pipeline.client.warmup import export_warmup
path = export_warmup([{{"instances": [[1.0, 2.0]]}}], {str(version)!r}, "m")
print(json.dumps({{"seen": {SEEN}, "size": path.stat().st_size}}))
""")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["seen"] == [] and report["size"] > 0


def version_with_typed_signatures(path: Path) -> Path:
    """A version with a three-input predict signature (string [-1], int64 [-1], float [-1, 2]) and
    a classify signature, as the Predict page's history may hold requests for."""
    saved_model = tf_protos.message_class("tensorflow.SavedModel")()
    meta_graph = saved_model.meta_graphs.add()
    meta_graph.meta_info_def.tags.append("serve")
    dtypes = tf_protos.enum("tensorflow.DataType")
    predict = meta_graph.signature_def["serving_default"]
    predict.method_name = "tensorflow/serving/predict"
    for key, dtype, shape in (("city", dtypes.DT_STRING, (-1,)), ("count", dtypes.DT_INT64, (-1,)),
                              ("xy", dtypes.DT_FLOAT, (-1, 2))):
        predict.inputs[key].name = f"{key}:0"
        predict.inputs[key].dtype = dtype
        for size in shape:
            predict.inputs[key].tensor_shape.dim.add().size = size
    classify = meta_graph.signature_def["classify"]
    classify.method_name = "tensorflow/serving/classify"
    classify.inputs["inputs"].name = "examples:0"
    classify.inputs["inputs"].dtype = dtypes.DT_STRING
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(saved_model.SerializeToString())
    return path


def test_any_signature_and_classify_examples_become_typed_prediction_logs(tmp_path: Path) -> None:
    from pipeline.client.warmup import request_of_entry
    from pipeline.client.warmup_records import read_warmup_requests

    version = version_with_typed_signatures(tmp_path / "m" / "1")
    rows = {"instances": [{"city": "paris", "count": 2, "xy": [1.0, 2.0]},
                          {"city": "oslo", "count": 7, "xy": [0.5, 0.0]}]}
    grpc = {"model_spec": {"name": "m", "signature_name": "serving_default"},
            "inputs": {"city": ["rome"], "count": [1], "xy": [[3.0, 4.0]]}}
    examples = {"signature_name": "classify", "context": {"lang": "en"},
                "examples": [{"x": 1.5, "n": 3, "tag": {"b64": "AAE="}}]}
    written = export_warmup([request_of_entry(rows), request_of_entry(grpc, transport="gRPC"),
                             request_of_entry(examples, "classify")], version, "m")
    log_class = tf_protos.message_class("tensorflow.serving.PredictionLog")
    first, second, third = (log_class.FromString(r) for r in tfrecord.iter_records(written))
    request = first.predict_log.request
    dtypes = tf_protos.enum("tensorflow.DataType")
    assert {k: dtypes.Name(v.dtype) for k, v in request.inputs.items()} == {
        "city": "DT_STRING", "count": "DT_INT64", "xy": "DT_FLOAT"}
    assert _tensor_values(request.inputs["count"]) == [2, 7]
    assert _tensor_values(second.predict_log.request.inputs["xy"]) == [[3.0, 4.0]]
    classified = third.classify_log.request
    assert classified.model_spec.signature_name == "classify"
    (example,) = classified.input.example_list.examples  # the context merged in: both servers replay it
    features = example.features.feature
    assert (list(features["x"].float_list.value), list(features["n"].int64_list.value),
            list(features["tag"].bytes_list.value), list(features["lang"].bytes_list.value)) == (
        [1.5], [3], [b"\x00\x01"], [b"en"])
    # the Predict page reads them back as its examples
    found = read_warmup_requests(version)
    assert [(r.kind, r.signature) for r in found] == [("predict", "serving_default")] * 2 + [
        ("classify", "classify")]
    assert found[0].inputs == {"city": ["paris", "oslo"], "count": [2, 7], "xy": [[1.0, 2.0], [0.5, 0.0]]}


@pytest.mark.parametrize(("item", "message"), [
    ({"instances": [{"city": "paris", "count": 2}]}, r"missing input\(s\) xy"),
    ({"instances": [{"city": "paris", "count": 2.5, "xy": [1.0, 2.0]}]}, "2.5 is not a whole number"),
    ({"instances": [{"city": "paris", "count": 2, "xy": [1.0]}]}, r"expected shape \[-1, 2\]"),
    ({"verb": "regress", "signature_name": "classify", "body": {"examples": [{"x": 1.0}]}},
     "sends regress examples to signature 'classify', whose method is tensorflow/serving/classify"),
    ({"verb": "classify", "signature_name": "classify", "body": {"examples": [{"x": [1.0, "a"]}]}},
     "feature 'x' mixes numbers and strings"),
])
def test_a_request_that_does_not_fit_its_signature_is_refused(tmp_path: Path, item: dict,
                                                               message: str) -> None:
    version = version_with_typed_signatures(tmp_path / "m" / "1")
    with pytest.raises(ValueError, match=message):
        export_warmup([item], version, "m")
    assert not warmup_path(version).exists()
