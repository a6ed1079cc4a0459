"""Requests from the history become a version's TF Serving warm-up file (pipeline/client/warmup.py):
a TFRecord of PredictionLog protos that TF Serving replays when it loads the version."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.client.warmup import export_warmup, warmup_path
from pipeline.tf_env import keras, tensorflow

pytestmark = pytest.mark.slow


def linear_version(path: Path) -> Path:
    k = keras()
    inputs = k.Input(shape=(2,), name="inputs")
    model = k.Model(inputs, k.layers.Dense(1)(inputs))
    model.export(str(path), verbose=False)
    return path


def test_chosen_requests_are_written_as_prediction_logs(tmp_path: Path) -> None:
    version = linear_version(tmp_path / "linear_model" / "1")
    bodies = [{"instances": [[1.0, 2.0], [5.0, 7.0]]}, {"inputs": [[0.5, -0.5]]}]
    written = export_warmup(bodies, version, "linear_model")
    assert written == warmup_path(version) == version / "assets.extra" / "tf_serving_warmup_requests"

    tf = tensorflow()
    from tensorflow_serving.apis import prediction_log_pb2

    logs = []
    for raw in tf.data.TFRecordDataset(str(written)):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(raw.numpy())
        logs.append(log)
    assert len(logs) == 2
    first = logs[0].predict_log.request
    assert first.model_spec.name == "linear_model" and first.model_spec.signature_name == "serving_default"
    np.testing.assert_array_equal(tf.make_ndarray(first.inputs["inputs"]), [[1.0, 2.0], [5.0, 7.0]])
    second = logs[1].predict_log.request
    np.testing.assert_array_equal(tf.make_ndarray(second.inputs["inputs"]), [[0.5, -0.5]])
    assert not list(version.glob("assets.extra/.*.tmp*"))  # no hidden temporary left

    # the bytes TensorFlow's own protos and TFRecordWriter write for the same requests
    from tensorflow_serving.apis import model_pb2, predict_pb2

    expected = tmp_path / "expected"
    with tf.io.TFRecordWriter(str(expected)) as writer:
        for rows in ([[1.0, 2.0], [5.0, 7.0]], [[0.5, -0.5]]):
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name="linear_model", signature_name="serving_default"))
            request.inputs["inputs"].CopyFrom(tf.make_tensor_proto(np.asarray(rows, dtype=np.float32)))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    assert written.read_bytes() == expected.read_bytes()


def test_an_unknown_signature_is_refused_and_nothing_written(tmp_path: Path) -> None:
    version = linear_version(tmp_path / "m" / "1")
    with pytest.raises(ValueError, match="no signature 'nope'"):
        export_warmup([{"signature_name": "nope", "instances": [[1.0, 2.0]]}], version, "m")
    assert not warmup_path(version).exists()
    with pytest.raises(ValueError, match="no input rows kept"):
        export_warmup([{"instances": []}], version, "m")


def test_any_signature_and_classify_regress_requests_are_replayed_when_the_version_loads(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Warm-up files for a three-input model (int64, float32, string) and a TF1 classify/regress
    model, written from the Predict page's kinds of requests without TensorFlow, are replayed by the
    model server when it loads the version (a record that does not fit would fail the load)."""
    from pipeline.client.warmup import request_of_entry
    from pipeline.serving.servable import Servable
    from tests.support import explore_models

    multi = explore_models.multi_io(tmp_path / "multi_io" / "1")
    rows = {"instances": [{"count": 2, "features": [1.0, 2.0], "city": "paris"},
                          {"count": 9, "features": [0.0, 0.0], "city": "oslo"}]}
    grpc = {"model_spec": {"name": "multi_io"}, "inputs": {"count": [1], "features": [[3.0, 4.0]],
                                                           "city": ["rome"]}}
    export_warmup([request_of_entry(rows), request_of_entry(grpc, transport="gRPC")], multi, "multi_io")
    tf = tensorflow()
    from tensorflow_serving.apis import prediction_log_pb2

    first = prediction_log_pb2.PredictionLog.FromString(next(iter(tf.data.TFRecordDataset(
        str(warmup_path(multi))))).numpy()).predict_log.request
    assert tf.make_ndarray(first.inputs["count"]).tolist() == [2, 9]
    assert tf.make_ndarray(first.inputs["city"]).tolist() == [b"paris", b"oslo"]
    with caplog.at_level("INFO", logger="pipeline.serving.warmup"):
        Servable.load("multi_io", 1, multi)  # replays both; a record that fails raises
    assert "Number of warmup records read: 2." in caplog.text
    caplog.clear()

    classifier = explore_models.tf1_classifier(tmp_path / "tf1_classifier" / "1")
    classify = {"context": {"color": "red"}, "examples": [{"x": 1.5}, {"x": -1.0, "color": "blue"}]}
    regress = {"signature_name": "regress", "examples": [{"x": 2.0, "color": "green"}]}
    export_warmup([request_of_entry(classify, "classify"), request_of_entry(regress, "regress")],
                  classifier, "tf1_classifier")
    with caplog.at_level("INFO", logger="pipeline.serving.warmup"):
        Servable.load("tf1_classifier", 1, classifier)
    assert "Number of warmup records read: 2." in caplog.text
