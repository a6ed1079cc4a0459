"""TensorFlow's and TF Serving's protos without importing TensorFlow (`pipeline.tf_protos`), and
TensorFlow still works after; the fenced fallback; response tensors read as TensorFlow reads them.

The contract is about a process's `sys.modules`, so those tests run in fresh processes watched by an
audit hook (`tests/support/no_tensorflow.py`); the gRPC calls against a real server are in
tests/server/test_grpc_api.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline import tf_protos
from pipeline.client.grpc import _tensor_values
from tests.support.no_tensorflow import SEEN, run_watched


def test_messages_are_built_without_tensorflow_and_tensorflow_imports_normally_afterwards():
    done = run_watched(f"""
import json
from pipeline import tf_protos
from pipeline.client.grpc import _tensor_values
request = tf_protos.message_class("tensorflow.serving.PredictRequest")()
request.model_spec.name = "m"
request.inputs["x"].dtype = tf_protos.enum("tensorflow.DataType").DT_FLOAT
request.inputs["x"].tensor_shape.dim.add().size = 2
request.inputs["x"].float_val.extend([3.0, 6.5])
log = tf_protos.message_class("tensorflow.serving.PredictionLog")()
log.predict_log.request.CopyFrom(request)
saved_model = tf_protos.message_class("tensorflow.SavedModel")()
saved_model.meta_graphs.add().meta_info_def.tags.append("serve")
before = {{"read": _tensor_values(request.inputs["x"]), "seen": list({SEEN}),
          "source": tf_protos.source()}}

import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
official = prediction_log_pb2.PredictionLog.FromString(log.SerializeToString())
proto = tf.make_tensor_proto([[1.0, 2.0]])
mine = tf_protos.message_class("tensorflow.TensorProto").FromString(proto.SerializeToString())
print(json.dumps({{**before,
    "official": tf.make_ndarray(official.predict_log.request.inputs["x"]).tolist(),
    "name": official.predict_log.request.model_spec.name,
    "tf's own classes": type(predict_pb2.PredictRequest().inputs["x"]) is type(proto),
    "private class": type(request) is predict_pb2.PredictRequest,
    "back": _tensor_values(mine), "tf works": float(tf.reduce_sum(tf.constant([1.0, 2.0])))}}))
""")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["seen"] == []  # nothing imported tensorflow or put it in sys.modules
    assert report["source"] == tf_protos.PRIVATE_POOL
    assert report["read"] == report["official"] == [3.0, 6.5] and report["name"] == "m"
    assert report["tf's own classes"] and not report["private class"]
    assert report["back"] == [[1.0, 2.0]] and report["tf works"] == 3.0


def test_a_failed_reading_of_the_generated_code_falls_back_to_the_modules_and_says_so_once():
    done = run_watched("""
import logging
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
from pipeline import tf_protos
data_type = tf_protos.enum("tensorflow.DataType")  # read from the generated code: fine
def broken(path):
    raise SyntaxError("a new protoc")
tf_protos._serialized_file = broken
request = tf_protos.message_class("tensorflow.serving.PredictRequest")()
request.inputs["x"].float_val.append(1.0)
from tensorflow_serving.apis import predict_pb2
print(tf_protos.source() == tf_protos.GENERATED_MODULES, type(request) is predict_pb2.PredictRequest,
      tf_protos.enum("tensorflow.DataType").Name(1), data_type.DT_HALF,
      tf_protos.message_class("tensorflow.SavedModel").__module__)
""")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["True", "True", "DT_FLOAT", "19",
                                   "tensorflow.core.protobuf.saved_model_pb2"]
    warnings = [line for line in done.stderr.splitlines() if line.startswith("WARNING pipeline.tf_protos")]
    assert len(warnings) == 1, done.stderr[-3000:]
    assert "reading the generated code failed (SyntaxError: a new protoc)" in warnings[0]


def test_an_unknown_name_is_a_key_error():
    with pytest.raises(KeyError, match="no TensorFlow or TF Serving proto defines 'tensorflow.Nope'"):
        tf_protos.message_class("tensorflow.Nope")


def test_the_same_name_gives_the_same_class_and_services_name_their_messages():
    tensor = tf_protos.message_class("tensorflow.TensorProto")
    assert tf_protos.message_class("tensorflow.TensorProto") is tensor
    predict = tf_protos.service("tensorflow.serving.PredictionService").methods_by_name["Predict"]
    assert (predict.input_type.full_name, predict.output_type.full_name) == (
        "tensorflow.serving.PredictRequest", "tensorflow.serving.PredictResponse")
    status = tf_protos.service("tensorflow.serving.ModelService").methods_by_name["GetModelStatus"]
    assert status.output_type.full_name == "tensorflow.serving.GetModelStatusResponse"


@pytest.mark.parametrize("array", [
    np.array([[3.0], [6.5]], np.float32),
    np.array([1.0, 1 / 3], np.float64),
    np.array([[1, -2], [3, 4]], np.int32),
    np.array([2**40, -1], np.int64),
    np.array([0, 255], np.uint8),
    np.array([True, False]),
    np.array([0.5, 1.5], np.float16),
    np.array([b"a", b"\xff"], object),
    np.array(7.0, np.float32),
    np.zeros((2, 0), np.float32),
])
def test_response_tensors_read_as_tensorflow_reads_them(array):
    from pipeline.tf_env import tensorflow

    tf = tensorflow()
    tensor_class = tf_protos.message_class("tensorflow.TensorProto")
    for proto in (tf.make_tensor_proto(array), _val_form(tf, array)):
        mine = tensor_class.FromString(proto.SerializeToString())  # what the client receives
        assert _tensor_values(mine) == _tensor_values(proto) == tf.make_ndarray(proto).tolist()


def test_compact_tensors_repeat_their_last_value():
    from pipeline.tf_env import tensorflow

    tf = tensorflow()
    proto = tf_protos.message_class("tensorflow.TensorProto")()
    proto.dtype = tf_protos.enum("tensorflow.DataType").DT_FLOAT
    proto.tensor_shape.dim.add().size = 2
    proto.tensor_shape.dim.add().size = 3
    proto.float_val.extend([1.0, 2.0])  # TF's compact form: the rest are 2.0
    official = tf.make_tensor_proto(np.zeros((2, 3), np.float32))
    official.ParseFromString(proto.SerializeToString())
    assert _tensor_values(proto) == tf.make_ndarray(official).tolist() == [[1.0, 2.0, 2.0], [2.0, 2.0, 2.0]]
    proto.ClearField("float_val")
    assert _tensor_values(proto) == [[0.0] * 3] * 2


def _val_form(tf, array: np.ndarray):
    """`array` as a TensorProto with typed values instead of tensor_content (what TF Serving's gRPC
    answers hold unless `--enable_serialization_as_tensor_content`)."""
    proto = tf.make_tensor_proto(array)
    if not proto.tensor_content:
        return proto
    proto.ClearField("tensor_content")
    field = {"float32": "float_val", "float64": "double_val", "int32": "int_val", "int64": "int64_val",
             "uint8": "int_val", "bool": "bool_val"}.get(array.dtype.name)
    if array.dtype == np.float16:
        proto.half_val.extend(array.ravel().view(np.uint16).tolist())
    else:
        getattr(proto, field).extend(array.ravel().tolist())
    return proto
