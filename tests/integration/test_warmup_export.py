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
