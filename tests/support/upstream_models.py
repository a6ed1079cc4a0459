"""The project's own copies of TensorFlow Serving's test models, built into a folder at test time.

They mirror `tensorflow_serving/servables/tensorflow/testdata/` (see upstream's
`saved_model_half_plus_two.py`) with the same folder names, version `00000123`, graphs, tensor names
and signatures, so the ported upstream tests in `tests/upstream/` run unchanged on either set:

- `saved_model_half_plus_two_cpu`: TF1 graph, variables a=0.5 b=2 c=3, placeholder `tf_example`
  parsed by ParseExample into `x` ([-1, 1]); signatures `serving_default` (x -> y = a x + b),
  `regress_x_to_y`, `regress_x_to_y2`, `regress_x2_to_y3`, `classify_x_to_y` (serialized examples in).
- `saved_model_half_plus_two_2_versions`: that model again as versions 00000123 and 00000124.
- `saved_model_half_plus_three`: TF1 graph, y = 0.5 x + 3; `serving_default` and a ParseExample
  `tensorflow/serving/regress` signature.
- `saved_model_counter`: reference (`float_ref`) variable `counter`; `get_counter`, `incr_counter`,
  `incr_counter_by` (input `delta`), `reset_counter`, all predict signatures with output `output`.
- `saved_model_half_plus_two_tf2_cpu`: a TF2 `tf.Module` with several signatures, whose
  classify/regress signatures carry the predict method name (as upstream's TF2 model does).
- `saved_model_half_plus_two_tflite` and `..._tflite_with_sigdef`: `model.tflite` converted from the
  TF1 graph, the latter with the SignatureDef stored in the file's `signature_defs_metadata`.
- `keras3_linear`: a Keras 3 `Model.export` (not in upstream's folder; TF Serving serves it too).

`build_all(root)` writes them all (a few seconds); `testdata_root()` is upstream's folder when
`TFSERVING_TESTDATA` names one, else None.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

VERSION = "00000123"
TESTDATA_ENV = "TFSERVING_TESTDATA"


def testdata_root() -> Path | None:
    """Upstream's testdata folder if the environment names one, else None."""
    value = os.environ.get(TESTDATA_ENV, "")
    return Path(value) if value else None


def build_all(root: Path) -> Path:
    """Write every model into `root/<upstream folder name>/00000123/`; return `root`."""
    half_plus_two(root / "saved_model_half_plus_two_cpu" / VERSION)
    for version in (VERSION, "00000124"):  # http_rest_api_handler_test.cc's two versions of one model
        shutil.copytree(root / "saved_model_half_plus_two_cpu" / VERSION,
                        root / "saved_model_half_plus_two_2_versions" / version)
    half_plus_three(root / "saved_model_half_plus_three" / VERSION)
    counter(root / "saved_model_counter" / VERSION)
    half_plus_two_tf2(root / "saved_model_half_plus_two_tf2_cpu" / VERSION)
    half_plus_two_tflite(root / "saved_model_half_plus_two_tflite" / VERSION, with_sigdef=False)
    half_plus_two_tflite(root / "saved_model_half_plus_two_tflite_with_sigdef" / VERSION, with_sigdef=True)
    keras3_linear(root / "keras3_linear" / VERSION)
    return root


def _v1():
    from pipeline.tf_env import tensorflow

    return tensorflow().compat.v1


def _half_plus_two_graph(tflite: str = ""):
    """Upstream's graph; returns (graph, session, tensors by name). `tflite` is "" or the name of the
    fixed-shape input the TFLite converter needs ("x" or "tflite_input")."""
    tf = _v1()
    graph = tf.Graph()
    with graph.as_default():
        a = tf.Variable(0.5, name="a")
        b = tf.Variable(2.0, name="b")
        c = tf.Variable(3.0, name="c")
        serialized = tf.placeholder(tf.string, name="tf_example")  # unknown rank, as in the testdata
        parsed = tf.parse_example(tf.reshape(serialized, [-1]), {
            "x": tf.FixedLenFeature([1], dtype=tf.float32),
            "x2": tf.FixedLenFeature([1], dtype=tf.float32, default_value=[0.0])})
        x = (tf.ensure_shape(parsed["x"], (1, 1), name=tflite) if tflite
             else tf.identity(parsed["x"], name="x"))
        y = tf.identity(tf.add(tf.multiply(a, x), b), name="y")
        y2 = tf.identity(tf.add(tf.multiply(a, x), c), name="y2")
        x2 = tf.identity(parsed["x2"], name="x2")
        a2 = tf.Variable(0.5, name="a2")
        c2 = tf.Variable(3.0, name="c2")
        y3 = tf.identity(tf.add(tf.multiply(a2, x2), c2), name="y3")
        session = tf.Session(graph=graph)
        session.run(tf.global_variables_initializer())
    return graph, session, {"tf_example": serialized, "x": x, "y": y, "y2": y2, "x2": x2, "y3": y3}


def _signature(inputs: dict, outputs: dict, method: str):
    tf = _v1()
    return tf.saved_model.signature_def_utils.build_signature_def(
        {k: tf.saved_model.utils.build_tensor_info(v) for k, v in inputs.items()},
        {k: tf.saved_model.utils.build_tensor_info(v) for k, v in outputs.items()}, method)


PREDICT, CLASSIFY, REGRESS = ("tensorflow/serving/predict", "tensorflow/serving/classify",
                              "tensorflow/serving/regress")


def _save(path: Path, graph, session, signatures: Callable[[], dict]) -> Path:
    """Save the session's graph with the SignatureDefs `signatures()` builds (in the graph)."""
    tf = _v1()
    with graph.as_default():
        signatures = signatures()
        builder = tf.saved_model.builder.SavedModelBuilder(str(path))
        builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map=signatures)
        builder.save()
    session.close()
    return path


def half_plus_two(path: Path) -> Path:
    """Upstream's `saved_model_half_plus_two_cpu` version folder."""
    graph, session, t = _half_plus_two_graph()
    return _save(path, graph, session, lambda: {
        "regress_x_to_y": _signature({"inputs": t["tf_example"]}, {"outputs": t["y"]}, REGRESS),
        "regress_x_to_y2": _signature({"inputs": t["tf_example"]}, {"outputs": t["y2"]}, REGRESS),
        "regress_x2_to_y3": _signature({"inputs": t["x2"]}, {"outputs": t["y3"]}, REGRESS),
        "classify_x_to_y": _signature({"inputs": t["tf_example"]}, {"scores": t["y"]}, CLASSIFY),
        "serving_default": _signature({"x": t["x"]}, {"y": t["y"]}, PREDICT),
    })


def half_plus_three(path: Path) -> Path:
    """y = 0.5 x + 3 with a ParseExample regress signature keyed by its method name, as upstream."""
    tf = _v1()
    graph = tf.Graph()
    with graph.as_default():
        a = tf.Variable(0.5, name="a")
        b = tf.Variable(3.0, name="b")
        serialized = tf.placeholder(tf.string, name="tf_example")
        parsed = tf.parse_example(tf.reshape(serialized, [-1]), {"x": tf.FixedLenFeature([1], tf.float32)})
        regressed = tf.identity(tf.add(tf.multiply(a, parsed["x"]), b))
        x = tf.placeholder(tf.float32, name="x")
        y = tf.identity(tf.add(tf.multiply(a, x), b), name="y")
        session = tf.Session(graph=graph)
        session.run(tf.global_variables_initializer())
    return _save(path, graph, session, lambda: {
        "serving_default": _signature({"x": x}, {"y": y}, PREDICT),
        REGRESS: _signature({"inputs": serialized}, {"outputs": regressed}, REGRESS),
    })


def counter(path: Path) -> Path:
    """Upstream's `saved_model_counter`: state in a reference variable that persists across calls."""
    tf = _v1()
    graph = tf.Graph()
    with graph.as_default():
        value = tf.Variable(0.0, name="counter", use_resource=False)
        delta = tf.placeholder(tf.float32, name="delta")
        incr = tf.assign_add(value, 1.0, name="incr_counter_op")
        incr_by = tf.assign_add(value, delta, name="incr_counter_by_op")
        reset = tf.assign(value, 0.0, name="reset_counter_op")
        session = tf.Session(graph=graph)
        session.run(tf.global_variables_initializer())
    return _save(path, graph, session, lambda: {
        "get_counter": _signature({}, {"output": value}, PREDICT),
        "incr_counter": _signature({}, {"output": incr}, PREDICT),
        "incr_counter_by": _signature({"delta": delta}, {"output": incr_by}, PREDICT),
        "reset_counter": _signature({}, {"output": reset}, PREDICT),
    })


def half_plus_two_tf2(path: Path) -> Path:
    """A TF2 module with several signatures; classify/regress keep the predict method name."""
    from pipeline.tf_env import tensorflow

    tf = tensorflow()

    class HalfPlusTwo(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.c = tf.Variable(0.5), tf.Variable(2.0), tf.Variable(3.0)

        def _x(self, serialized):
            return tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([1], tf.float32)})["x"]

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def predict(self, x):
            return {"y": self.a * x + self.b}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def classify(self, inputs):
            return {"scores": self.a * self._x(inputs) + self.b}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def regress(self, inputs):
            return {"outputs": self.a * self._x(inputs) + self.b}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def regress2(self, inputs):
            return {"outputs": self.a * self._x(inputs) + self.c}

    module = HalfPlusTwo()
    tf.saved_model.save(module, str(path), signatures={
        "serving_default": module.predict, "classify_x_to_y": module.classify,
        "regress_x_to_y": module.regress, "regress_x_to_y2": module.regress2})
    return path


def half_plus_two_tflite(path: Path, with_sigdef: bool) -> Path:
    """`model.tflite` from the TF1 graph; `with_sigdef` names the input `tflite_input` and stores the
    predict SignatureDef (x -> y) in the file's metadata, as upstream's testdata does."""
    tf = _v1()
    graph, session, t = _half_plus_two_graph(tflite="tflite_input" if with_sigdef else "x")
    with graph.as_default():
        data = tf.lite.TFLiteConverter.from_session(session, [t["x"]], [t["y"]]).convert()
        signature = _signature({"x": t["x"]}, {"y": t["y"]}, PREDICT)
    session.close()
    if with_sigdef:
        data = _with_signature_defs(data, {"serving_default": signature.SerializeToString()})
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.tflite").write_bytes(data)
    return path


def _with_signature_defs(data: bytes, signature_defs: dict[str, bytes]) -> bytes:
    """The flatbuffer with a `signature_defs_metadata` entry: a FlexBuffer map of key -> SignatureDef."""
    from ai_edge_litert import schema_py_generated as schema
    from flatbuffers import flexbuffers
    from tensorflow.lite.tools import flatbuffer_utils

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    buffer = schema.BufferT()
    buffer.data = list(flexbuffers.Dumps(signature_defs))
    model.buffers.append(buffer)
    metadata = schema.MetadataT()
    metadata.name = "signature_defs_metadata"
    metadata.buffer = len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), metadata]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def keras3_linear(path: Path) -> Path:
    """A Keras 3 `Model.export`: input `x` of shape [-1, 1], y = 2 x + 1 (output `output_0`)."""
    from pipeline.tf_env import keras

    k = keras()
    inputs = k.Input(shape=(1,), name="x")
    layer = k.layers.Dense(1, kernel_initializer=k.initializers.Constant(2.0),
                           bias_initializer=k.initializers.Constant(1.0))
    model = k.Model(inputs, layer(inputs))
    model.export(str(path), verbose=False)
    return path


def predict_log(signature: str, **inputs: float) -> bytes:
    """A serialized PredictionLog holding a predict request for `signature` of float scalars."""
    from tensorflow_serving.apis import prediction_log_pb2

    from pipeline.tf_env import tensorflow

    tf = tensorflow()
    record = prediction_log_pb2.PredictionLog()
    request = record.predict_log.request
    request.model_spec.signature_name = signature
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value, dtype=tf.float32))
    return record.SerializeToString()


def regress_log(signature: str, x: float) -> bytes:
    """A serialized PredictionLog holding a regress request of one example with feature x."""
    from tensorflow_serving.apis import prediction_log_pb2

    record = prediction_log_pb2.PredictionLog()
    request = record.regress_log.request
    request.model_spec.signature_name = signature
    example = request.input.example_list.examples.add()
    example.features.feature["x"].float_list.value.append(x)
    return record.SerializeToString()


def write_warmup(version_dir: Path, records: list[bytes]) -> Path:
    """Write `assets.extra/tf_serving_warmup_requests` (a TFRecord file) into a version folder."""
    from pipeline.tf_env import tensorflow

    path = version_dir / "assets.extra" / "tf_serving_warmup_requests"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tensorflow().io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return path


_HALF_PLUS_TWO_SIGNATURES = {
    # key: (method, {input key: (dtype, dims or None for unknown rank, tensor)}, {output key: ...})
    "serving_default": (PREDICT, {"x": ("DT_FLOAT", [-1, 1], "x:0")}, {"y": ("DT_FLOAT", [-1, 1], "y:0")}),
    "classify_x_to_y": (CLASSIFY, {"inputs": ("DT_STRING", None, "tf_example:0")},
                        {"scores": ("DT_FLOAT", [-1, 1], "y:0")}),
    "regress_x_to_y": (REGRESS, {"inputs": ("DT_STRING", None, "tf_example:0")},
                       {"outputs": ("DT_FLOAT", [-1, 1], "y:0")}),
    "regress_x_to_y2": (REGRESS, {"inputs": ("DT_STRING", None, "tf_example:0")},
                        {"outputs": ("DT_FLOAT", [-1, 1], "y2:0")}),
    "regress_x2_to_y3": (REGRESS, {"inputs": ("DT_FLOAT", [-1, 1], "x2:0")},
                         {"outputs": ("DT_FLOAT", [-1, 1], "y3:0")}),
}


def half_plus_two_metadata(model_name: str = "default", version: str = "123") -> dict:
    """The GetModelMetadata JSON TF Serving answers for half_plus_two (upstream's
    `half_plus_two_model_metadata.json`), from the table of its signatures above."""

    def info(dtype: str, dims: list[int] | None, name: str) -> dict:
        shape = ({"dim": [], "unknown_rank": True} if dims is None else
                 {"dim": [{"size": str(d), "name": ""} for d in dims], "unknown_rank": False})
        return {"dtype": dtype, "tensor_shape": shape, "name": name}

    signatures = {key: {"inputs": {k: info(*v) for k, v in inputs.items()},
                        "outputs": {k: info(*v) for k, v in outputs.items()},
                        "method_name": method, "defaults": {}}
                  for key, (method, inputs, outputs) in _HALF_PLUS_TWO_SIGNATURES.items()}
    return {"model_spec": {"name": model_name, "signature_name": "", "version": version},
            "metadata": {"signature_def": {"signature_def": signatures}}}
