"""Models of every kind a tester may point the dashboard at, built at test time into a folder.

- ``image_classifier``: Keras, input ``image`` float32 ``[-1, 8, 8, 3]`` (0-1), output ``output_0``
  ``[-1, 3]`` softmax over red/green/blue: the dominant colour of the picture wins.
- ``text_model``: TF2 module, input ``text`` string ``[-1]``, words looked up with Keras'
  ``StringLookup`` (good/great/love vs bad/awful/hate), output ``probabilities`` ``[-1, 2]``
  (negative, positive) and ``words`` int64 ``[-1]`` (words in the vocabulary).
- ``multi_io``: three inputs (``count`` int64 ``[-1]``, ``features`` float32 ``[-1, 2]``, ``city``
  string ``[-1]``) and two outputs (``score`` float32 ``[-1]`` = 2·f0 − f1 + 0.5·count + 1 if the
  city is ``paris``; ``tier`` string ``[-1]``, ``high`` when the score is above 5); its version
  carries a warm-up file with one predict request (count 2, features [1, 2], city paris).
- ``image_mixed``: a picture and a table row per example: ``image`` float32 ``[-1, 4, 4, 3]``
  (0-1), ``gain`` float32 ``[-1]`` and ``tag`` string ``[-1]``; outputs ``brightness`` float32
  ``[-1]`` = gain · mean(image) + 1 if the tag is ``plus``, and ``probabilities`` ``[-1, 3]``
  (softmax over 10 · each channel's mean: the dominant colour wins); its version carries a warm-up
  file with one predict request (a red picture, gain 3, tag plus: brightness 2).
- ``tf1_classifier``: a TF1 graph whose ``serving_default`` is a **classify** signature on
  serialized ``tf.Example``s (features ``x`` float, ``color`` string): classes ``[a, b, c]`` and
  softmax scores; plus ``regress`` (y = 2x + 1) and a warm-up file with one classify request
  (x = 1.5, color red).
- ``linear_model``: the tutorial's signature (``inputs`` float32 ``[-1, 2]`` → ``output_0``
  ``[-1, 1]``) with the tutorial's true weights w0 = [2, -1], b0 = 3.
- ``half_plus_two``: TF Serving's own test model, copied from ``../shared/tfserving-testdata``
  when it is there, else the project's copy (``tests/support/upstream_models.py``).

``python -m tests.support.explore_models ROOT [NAME ...]`` builds them all (or the NAMEs) as
``ROOT/<name>/1/`` (TensorFlow stays out of the calling process; a few seconds) and prints ROOT.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from tests.support import upstream_models

SHARED_TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "tfserving-testdata"
"""``../shared/tfserving-testdata`` beside the checkout (``TFSERVING_TESTDATA`` names another)."""
NAMES = ("image_classifier", "text_model", "multi_io", "image_mixed", "tf1_classifier", "linear_model",
         "half_plus_two")
COLORS = ("red", "green", "blue")
VOCABULARY = ("good", "great", "love", "bad", "awful", "hate")


def _tf():
    from pipeline.tf_env import tensorflow

    return tensorflow()


def image_classifier(path: Path) -> Path:
    """The dominant colour of an 8x8 RGB picture, as class probabilities (Keras export)."""
    from pipeline.tf_env import keras

    k = keras()
    image = k.Input(shape=(8, 8, 3), name="image")
    mean = k.layers.GlobalAveragePooling2D()(image)
    logits = k.layers.Dense(3, kernel_initializer=k.initializers.Constant(0.0),
                            bias_initializer=k.initializers.Zeros())
    model = k.Model(image, k.layers.Softmax()(logits(mean)))
    logits.kernel.assign(10.0 * _tf().eye(3))
    model.export(str(path), verbose=False)
    return path


def text_model(path: Path) -> Path:
    """A bag-of-words sentiment model over a StringLookup vocabulary."""
    from pipeline.tf_env import keras

    tf, k = _tf(), keras()

    class Sentiment(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lookup = k.layers.StringLookup(vocabulary=list(VOCABULARY), num_oov_indices=1)
            # index 0 is out of vocabulary; then good, great, love (+1) and bad, awful, hate (-1)
            self.weights = tf.constant([0.0, 1.0, 1.0, 1.0, -1.0, -1.0, -1.0])

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text):
            words = tf.strings.split(tf.strings.lower(text))
            ids = tf.ragged.map_flat_values(self.lookup, words)
            score = tf.reduce_sum(tf.gather(self.weights, ids), axis=1)
            known = tf.reduce_sum(tf.cast(ids > 0, tf.int64), axis=1)
            probabilities = tf.nn.softmax(tf.stack([-score, score], axis=1))
            return {"probabilities": probabilities, "words": known}

    module = Sentiment()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def multi_io(path: Path) -> Path:
    """Three typed inputs, two outputs (a number and a string); a warm-up request in its version."""
    tf = _tf()

    class MultiIO(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="count"),
                                      tf.TensorSpec([None, 2], tf.float32, name="features"),
                                      tf.TensorSpec([None], tf.string, name="city")])
        def serve(self, count, features, city):
            score = (2.0 * features[:, 0] - features[:, 1] + 0.5 * tf.cast(count, tf.float32)
                     + tf.cast(tf.equal(city, "paris"), tf.float32))
            return {"score": score, "tier": tf.where(score > 5.0, "high", "low")}

    module = MultiIO()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    from tensorflow_serving.apis import prediction_log_pb2

    record = prediction_log_pb2.PredictionLog()
    request = record.predict_log.request
    request.model_spec.signature_name = "serving_default"
    request.inputs["count"].CopyFrom(tf.make_tensor_proto([2], dtype=tf.int64))
    request.inputs["features"].CopyFrom(tf.make_tensor_proto([[1.0, 2.0]], dtype=tf.float32))
    request.inputs["city"].CopyFrom(tf.make_tensor_proto([b"paris"], dtype=tf.string))
    upstream_models.write_warmup(path, [record.SerializeToString()])
    return path


def image_mixed(path: Path) -> Path:
    """A picture with a number and a text per example; a warm-up request in its version."""
    tf = _tf()

    class ImageMixed(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4, 4, 3], tf.float32, name="image"),
                                      tf.TensorSpec([None], tf.float32, name="gain"),
                                      tf.TensorSpec([None], tf.string, name="tag")])
        def serve(self, image, gain, tag):
            channels = tf.reduce_mean(image, axis=[1, 2])
            brightness = gain * tf.reduce_mean(channels, axis=1) + tf.cast(tf.equal(tag, "plus"), tf.float32)
            return {"brightness": brightness, "probabilities": tf.nn.softmax(10.0 * channels)}

    module = ImageMixed()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    from tensorflow_serving.apis import prediction_log_pb2

    record = prediction_log_pb2.PredictionLog()
    request = record.predict_log.request
    request.model_spec.signature_name = "serving_default"
    red = [[[[1.0, 0.0, 0.0]] * 4] * 4]
    request.inputs["image"].CopyFrom(tf.make_tensor_proto(red, dtype=tf.float32))
    request.inputs["gain"].CopyFrom(tf.make_tensor_proto([3.0], dtype=tf.float32))
    request.inputs["tag"].CopyFrom(tf.make_tensor_proto([b"plus"], dtype=tf.string))
    upstream_models.write_warmup(path, [record.SerializeToString()])
    return path


def tf1_classifier(path: Path) -> Path:
    """A TF1 Estimator-style export: serving_default is a classify signature on tf.Examples."""
    v1 = upstream_models._v1()
    graph = v1.Graph()
    with graph.as_default():
        serialized = v1.placeholder(v1.string, shape=[None], name="input_example_tensor")
        parsed = v1.parse_example(serialized, {
            "x": v1.FixedLenFeature([1], v1.float32),
            "color": v1.FixedLenFeature([1], v1.string, default_value=[""])})
        x = parsed["x"]
        red = v1.cast(v1.equal(parsed["color"], "red"), v1.float32)
        scores = v1.nn.softmax(v1.concat([x, -x, 2.0 * red], axis=1), name="scores")
        classes = v1.tile(v1.constant([["a", "b", "c"]]), [v1.shape(x)[0], 1], name="classes")
        y = v1.identity(2.0 * x + 1.0, name="y")
        session = v1.Session(graph=graph)
    upstream_models._save(path, graph, session, lambda: {
        "serving_default": upstream_models._signature({"inputs": serialized},
                                                      {"classes": classes, "scores": scores},
                                                      upstream_models.CLASSIFY),
        "regress": upstream_models._signature({"inputs": serialized}, {"outputs": y},
                                              upstream_models.REGRESS),
    })
    from tensorflow_serving.apis import prediction_log_pb2

    record = prediction_log_pb2.PredictionLog()
    request = record.classify_log.request
    request.model_spec.signature_name = "serving_default"
    example = request.input.example_list.examples.add()
    example.features.feature["x"].float_list.value.append(1.5)
    example.features.feature["color"].bytes_list.value.append(b"red")
    upstream_models.write_warmup(path, [record.SerializeToString()])
    return path


def linear_model(path: Path) -> Path:
    """The tutorial's signature with its true weights (a Keras export, as the Train page makes)."""
    from pipeline.tf_env import keras

    k = keras()
    inputs = k.Input(shape=(2,), name="inputs")
    layer = k.layers.Dense(1, kernel_initializer=k.initializers.Constant([[2.0], [-1.0]]),
                           bias_initializer=k.initializers.Constant(3.0))
    k.Model(inputs, layer(inputs)).export(str(path), verbose=False)
    return path


def half_plus_two(path: Path) -> Path:
    """TF Serving's own half_plus_two (shared testdata), else the project's identical copy."""
    testdata = upstream_models.testdata_root() or SHARED_TESTDATA
    shared = testdata / "saved_model_half_plus_two_cpu" / "00000123"
    if shared.is_dir():
        shutil.copytree(shared, path)
        return path
    return upstream_models.half_plus_two(path)


BUILDERS = {"image_classifier": image_classifier, "text_model": text_model, "multi_io": multi_io,
            "image_mixed": image_mixed, "tf1_classifier": tf1_classifier, "linear_model": linear_model,
            "half_plus_two": half_plus_two}


def build_all(root: Path, names: tuple[str, ...] = NAMES) -> Path:
    """Every model of ``names`` (all by default) as ``root/<name>/1/``; returns ``root``."""
    for name in names:
        BUILDERS[name](root / name / "1")
    return root


def models_config(root: Path, names: tuple[str, ...] = NAMES) -> str:
    """A ModelServerConfig serving ``names`` from ``root`` (as a TF Serving would be started)."""
    entries = "".join(f'  config {{ name: "{n}" base_path: "{root / n}" model_platform: "tensorflow" }}\n'
                      for n in names)
    return "model_config_list {\n" + entries + "}\n"


if __name__ == "__main__":
    print(build_all(Path(sys.argv[1]), tuple(sys.argv[2:]) or NAMES))
