"""SavedModels for the server tests, built with TensorFlow the way users export them.

- `half_plus_two`: like TF Serving's testdata model. `serving_default` x -> y = a*x + b (any shape),
  `classify_x_to_y` / `regress_x_to_y` take serialized tf.Examples (`inputs`, float feature `x`) and
  carry the classify/regress method names, `classify_two_classes` returns classes and scores.
- `identity`: one signature per dtype case of the spec's JSON mapping (P1-P19), each returning its
  inputs under the names the case needs, plus `slow` (sleeps for `micros`) and `gated` (runs until
  the file named by its `gate` input exists) for timeouts.
- `linear_keras`: the tutorial's Keras 3 model exported with `Model.export`.
- `minus_batch_mean` (answers depend on the whole batch) and `spin` (a graph loop as long as asked,
  for timeouts).
- `slow_rows`: y = 2x after sleeping a fixed time per model call (x is [batch, 1], so calls merge);
  with `count_calls`, also `calls`: how many model calls the version ran so far, this one included,
  so a test can see from answers alone whether work it expected to be skipped ran (and a batch
  with no positive x skips the sleep, so such a call answers at once).
- `gated_rows`: y = 2x, but a call with a positive x runs until a file (the gate) exists: the test
  decides when the model's work ends, so "while a call runs" needs no clock.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.core.protobuf import saved_model_pb2  # noqa: E402
from tensorflow.python.data.experimental.ops.testing import sleep as sleep_dataset  # noqa: E402

CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"
ANY = None  # TensorSpec shape None: any rank, so one signature serves [n] and [n, m] requests


def _spec(dtype: tf.DType, name: str) -> tf.TensorSpec:
    return tf.TensorSpec(ANY, dtype, name=name)


def set_method_names(path: Path, methods: dict[str, str]) -> None:
    """TF2 exports every signature as predict; TF Serving needs classify/regress method names."""
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((path / "saved_model.pb").read_bytes())
    for meta_graph in saved_model.meta_graphs:
        for key, method in methods.items():
            meta_graph.signature_def[key].method_name = method
    (path / "saved_model.pb").write_bytes(saved_model.SerializeToString())


class HalfPlusTwo(tf.Module):
    def __init__(self, a: float, b: float) -> None:
        super().__init__()
        self.a = tf.Variable(a, dtype=tf.float32)
        self.b = tf.Variable(b, dtype=tf.float32)

    def _from_examples(self, serialized: tf.Tensor) -> tf.Tensor:
        features = tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([1], tf.float32)})
        return self.a * features["x"] + self.b

    @tf.function(input_signature=[_spec(tf.float32, "x")])
    def predict(self, x):
        return {"y": self.a * x + self.b}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, inputs):
        return {"scores": self._from_examples(inputs)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify_two(self, inputs):
        y = self._from_examples(inputs)
        classes = tf.tile(tf.constant([["low", "high"]]), [tf.shape(y)[0], 1])
        return {"classes": classes, "scores": tf.concat([-y, y], axis=1)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress(self, inputs):
        return {"outputs": self._from_examples(inputs)}


def export_half_plus_two(path: Path, a: float = 0.5, b: float = 2.0) -> Path:
    module = HalfPlusTwo(a, b)
    tf.saved_model.save(module, str(path), signatures={
        "serving_default": module.predict,
        "classify_x_to_y": module.classify,
        "classify_two_classes": module.classify_two,
        "regress_x_to_y": module.regress,
    })
    set_method_names(path, {"classify_x_to_y": CLASSIFY, "classify_two_classes": CLASSIFY,
                            "regress_x_to_y": REGRESS})
    return path


def _identity(inputs: dict[str, tf.DType], outputs: dict[str, str] | None = None):
    """A tf.function returning each input under outputs[name] (default: the same name)."""
    outputs = outputs or {name: name for name in inputs}
    names = list(inputs)
    specs = [_spec(inputs[name], name) for name in names]

    @tf.function(input_signature=specs)
    def function(*args):
        return {outputs[name]: tf.identity(arg) for name, arg in zip(names, args, strict=True)}

    return function


GATE_POLL_MICROS = 10_000
GATE_MAX_POLLS = 60_000  # ten minutes: a test that never opens its gate still ends


def _until_file_exists(path):
    """Graph code: poll every 10 ms until the file at `path` (a string tensor) exists, at most ten
    minutes (a test that never opens its gate still ends); the number of polls."""

    def closed(polls):
        return tf.logical_and(tf.equal(tf.size(tf.io.matching_files(path)), 0), polls < GATE_MAX_POLLS)

    def nap(polls):
        nothing = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64))
        slept = nothing.apply(sleep_dataset(GATE_POLL_MICROS)).reduce(tf.constant(0, tf.int64), tf.add)
        return [polls + 1 + slept]

    return tf.while_loop(closed, nap, [tf.constant(0, tf.int64)])[0]


class Identity(tf.Module):
    pass


def export_identity(path: Path) -> Path:
    """Identity signatures named after the JSON mapping cases they serve."""
    module = Identity()
    i32, f32, f64, s = tf.int32, tf.float32, tf.float64, tf.string
    signatures = {
        "serving_default": _identity({"x": i32}, {"x": "y"}),
        "predict_images": _identity({"x": i32}, {"x": "y"}),
        "int_tensor": _identity({"int_tensor": i32}),
        "float": _identity({"x": f32}, {"x": "y"}),
        "double": _identity({"x": f64}, {"x": "y"}),
        "int64": _identity({"x": tf.int64}, {"x": "y"}),
        "bool": _identity({"x": tf.bool}, {"x": "y"}),
        "string": _identity({"x": s}, {"x": "y"}),
        "bytes": _identity({"x": s}, {"x": "str_tensor_bytes"}),
        "pair": _identity({"int_tensor": i32, "str_tensor": s}),
        "multi": _identity({"int_tensor": i32, "str_tensor": s, "float_tensor": f32, "dbl_tensor": f64}),
        "multi_out": _identity({"int_tensor": i32, "str_tensor": s, "float_tensor": f32,
                                "double_scalar_tensor": f64, "str_tensor_bytes": s}),
        "half": _identity({"x": tf.float16}, {"x": "y"}),
    }

    @tf.function(input_signature=[tf.TensorSpec([], tf.int64, name="micros")])
    def slow(micros):
        dataset = tf.data.Dataset.from_tensors(micros).apply(sleep_dataset(micros))
        return {"slept": dataset.reduce(tf.constant(0, tf.int64), lambda total, item: total + item)}

    @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="gate")])
    def gated(gate):
        return {"polls": _until_file_exists(gate)}

    signatures["slow"] = slow
    signatures["gated"] = gated  # runs until the file named in the request exists
    for key, function in signatures.items():
        setattr(module, f"f_{key}", function)
    tf.saved_model.save(module, str(path), signatures=signatures)
    return path


def export_linear_keras(path: Path) -> Path:
    """The tutorial model: Dense(1) with w = [2, -1], b = 3, exported by Keras 3 `Model.export`."""
    import keras

    inp = keras.Input(shape=(2,), name="inputs")
    out = keras.layers.Dense(1, name="outputs")(inp)
    model = keras.Model(inp, out)
    model.layers[-1].set_weights([np.array([[2.0], [-1.0]], "float32"), np.array([3.0], "float32")])
    model.export(str(path), verbose=False)
    return path


def export_slow_rows(path: Path, micros: int, count_calls: bool = False) -> Path:
    """y = 2x, after sleeping `micros` per call: x is [batch, 1] float, so calls can be merged.
    With `count_calls`, the output `calls` ([batch] int64) is the number of calls run so far, and
    a batch with no positive x does not sleep. The count is added to atomically but read after:
    calls running at the same time may read the same number, a call run alone reads its own."""

    class Slow(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.count = tf.Variable(0, dtype=tf.int64)

        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def predict(self, x):
            def sleep():
                dataset = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).apply(sleep_dataset(micros))
                return dataset.reduce(tf.constant(0, tf.int64), lambda total, item: total + item)

            if count_calls:  # a batch without a positive x answers at once
                slept = tf.cond(tf.reduce_any(x > 0), sleep, lambda: tf.constant(0, tf.int64))
            else:
                slept = sleep()
            outputs = {"y": 2.0 * x + tf.cast(slept, tf.float32)}
            if count_calls:
                outputs["calls"] = tf.fill([tf.shape(x)[0]], self.count.assign_add(1))
            return outputs

    module = Slow()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.predict})
    return path


def export_gated_rows(path: Path, gate: Path, count_calls: bool = False) -> Path:
    """y = 2x (x is [batch, 1] float, so calls can be merged); a call with a positive x polls every
    10 ms until the file `gate` exists, i.e. it runs until the test opens the gate (`gate.touch()`).
    A call without a positive x answers at once. With `count_calls`, the output `calls` ([batch]
    int64) is the number of calls run so far, this one included (as `export_slow_rows`)."""

    class Gated(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.count = tf.Variable(0, dtype=tf.int64)

        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def predict(self, x):
            def wait():
                return _until_file_exists(tf.constant(str(gate)))

            polls = tf.cond(tf.reduce_any(x > 0), wait, lambda: tf.constant(0, tf.int64))
            outputs = {"y": 2.0 * x + 0.0 * tf.cast(polls, tf.float32)}
            if count_calls:
                outputs["calls"] = tf.fill([tf.shape(x)[0]], self.count.assign_add(1))
            return outputs

    module = Gated()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.predict})
    return path


def export_needs_two_rows(path: Path) -> Path:
    """y = x + 1 for a batch of at least two rows; one row fails in the graph (INVALID_ARGUMENT),
    so the one-row warm-up (and the fast-call probe) fail while real two-row requests work."""

    class NeedsTwoRows(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def predict(self, x):
            check = tf.debugging.assert_greater(tf.shape(x)[0], 1, message="needs at least two rows")
            with tf.control_dependencies([check]):
                return {"y": x + 1.0}

    module = NeedsTwoRows()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.predict})
    return path


def export_minus_batch_mean(path: Path, micros: int) -> Path:
    """y = x - mean(x over the batch), after sleeping `micros` per call: a model whose answer
    depends on the whole batch, so merging requests changes every merged request's answer."""

    class MinusMean(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def predict(self, x):
            dataset = tf.data.Dataset.from_tensors(tf.constant(0.0)).apply(sleep_dataset(micros))
            slept = dataset.reduce(tf.constant(0.0), lambda total, item: total + item)
            return {"y": x - tf.reduce_mean(x, axis=0, keepdims=True) + slept}

    module = MinusMean()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.predict})
    return path


def export_spin(path: Path) -> Path:
    """y = 2x after a graph loop of x[0, 0] empty steps (about a microsecond each): x = 0 answers at
    once, x = 1e12 runs for days unless the session's `RunOptions.timeout_in_ms` stops it."""

    class Spin(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def predict(self, x):
            steps = tf.cast(x[0, 0], tf.int64)
            done = tf.while_loop(lambda i: i < steps, lambda i: i + 1, [tf.constant(0, tf.int64)])
            return {"y": 2.0 * x + 0.0 * tf.cast(done, tf.float32)}

    module = Spin()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.predict})
    return path
