"""The gRPC client's protos load without TensorFlow's runtime, and TensorFlow still works after.

`pipeline.client.serving_protos` imports `tensorflow.core` proto modules under a stand-in for the
`tensorflow` package; these tests hold it to its contract in fresh processes (sys.modules state is
the point), and check the client's TensorProto reader against `tf.make_ndarray`.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from pipeline.client.grpc import _tensor_values
from pipeline.settings import PROJECT_ROOT


def run_python(script: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=240)


def test_protos_load_without_the_runtime_and_tensorflow_imports_normally_afterwards():
    done = run_python(
        "import sys, time\n"
        "from pipeline.client import serving_protos\n"
        "print(serving_protos.load())\n"
        "from tensorflow_serving.apis import predict_pb2\n"
        "from pipeline.client.grpc import _tensor_values\n"
        "answer = predict_pb2.PredictResponse()\n"
        "answer.outputs['y'].dtype = 1\n"  # DT_FLOAT [2, 1], the way a server answers
        "answer.outputs['y'].tensor_shape.dim.add().size = 2\n"
        "answer.outputs['y'].tensor_shape.dim.add().size = 1\n"
        "answer.outputs['y'].float_val.extend([3.0, 6.5])\n"
        "print(_tensor_values(answer.outputs['y']))\n"
        "print('tensorflow.python' in sys.modules, 'tensorflow' in sys.modules)\n"
        "import tensorflow as tf\n"
        "proto = tf.make_tensor_proto([[1.0, 2.0]])\n"
        "request = predict_pb2.PredictRequest()\n"
        "request.inputs['x'].CopyFrom(proto)\n"  # TF's TensorProto is the protos' TensorProto
        "print(type(proto) is type(request.inputs['x']), float(tf.reduce_sum(tf.constant([1.0, 2.0]))))\n")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["without the TensorFlow runtime", "[[3.0], [6.5]]", "False False",
                                        "True 3.0"]


def test_a_failed_runtime_free_import_falls_back_to_the_ordinary_one_and_says_so():
    done = run_python(
        "import logging, sys\n"
        "logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s')\n"
        "from pipeline.client import serving_protos\n"
        "real = serving_protos._import_with_stand_in\n"
        "def broken():\n"  # fails after importing protos under the stand-in: they are dropped
        "    real()\n"
        "    raise ImportError('layout changed')\n"
        "serving_protos._import_with_stand_in = broken\n"
        "print(serving_protos.load())\n"
        "from tensorflow_serving.apis import predict_pb2\n"
        "print('tensorflow.python' in sys.modules, predict_pb2.PredictRequest().model_spec.name == '')\n")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["with the TensorFlow runtime", "True True"]
    assert "runtime-free import failed (ImportError: layout changed)" in done.stderr


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
    for proto in (tf.make_tensor_proto(array), _val_form(tf, array)):
        assert _tensor_values(proto) == tf.make_ndarray(proto).tolist()


def test_compact_tensors_repeat_their_last_value():
    from pipeline.tf_env import tensorflow

    tf = tensorflow()
    proto = tf.make_tensor_proto(np.zeros((2, 3), np.float32))
    proto.ClearField("tensor_content")
    proto.float_val.extend([1.0, 2.0])  # TF's compact form: the rest are 2.0
    assert _tensor_values(proto) == tf.make_ndarray(proto).tolist() == [[1.0, 2.0, 2.0], [2.0, 2.0, 2.0]]
    proto.ClearField("float_val")
    assert _tensor_values(proto) == [[0.0] * 3] * 2


def _val_form(tf, array: np.ndarray):
    """`array` as a TensorProto with typed values instead of tensor_content (what TF Serving's
    `--rest_api_...`-free gRPC answers hold unless `--use_tf_tensor_content`)."""
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
