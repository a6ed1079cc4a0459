"""The servable core runs models the way TF Serving does (issue 10, part A), checked in-process on
the project's copies of upstream's test models: tensors fed by name with no shape check of ours,
TF1 graphs with ParseExample and reference variables, TF2 modules, Keras 3, LiteRT, and warm-up
replayed from `assets.extra`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.serving.errors import ServingError
from pipeline.serving.servable import Servable, ServableOptions
from tests.support import upstream_models as um

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return um.build_all(tmp_path_factory.mktemp("upstream_models"))


def load(root: Path, folder: str, **options) -> Servable:
    return Servable.load("default", 123, root / folder / um.VERSION, ServableOptions(**options))


def example(**features: float) -> bytes:
    import tensorflow as tf

    return tf.train.Example(features=tf.train.Features(feature={
        key: tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
        for key, value in features.items()})).SerializeToString()


def predict(servable: Servable, inputs: dict, signature: str = "serving_default") -> dict:
    return servable.run(servable.predict_signature(signature),
                        {k: np.asarray(v, np.float32) for k, v in inputs.items()})


@pytest.mark.parametrize(("x", "y"), [
    ([1.0, 2.0, 5.0], [2.5, 3.0, 4.5]),                       # the Docker smoke test: rank 1 into [-1, 1]
    ([[1.0, 2.0], [3.0, 4.0]], [[2.5, 3.0], [3.5, 4.0]]),     # 2 columns into [-1, 1]
    (2.0, 3.0),                                               # a scalar
    (np.zeros((0, 1)), np.zeros((0, 1))),                     # an empty batch
])
def test_any_shape_reaches_the_graph_as_tf_serving_feeds_it(root: Path, x, y) -> None:
    outputs = predict(load(root, "saved_model_half_plus_two_cpu"), {"x": x})
    np.testing.assert_array_equal(outputs["y"], np.asarray(y, np.float32))


def test_the_graph_refuses_what_it_cannot_compute_as_invalid_argument(root: Path) -> None:
    servable = load(root, "saved_model_half_plus_two_cpu")
    with pytest.raises(ServingError) as error:
        servable.run(servable.predict_signature("serving_default"), {"x": np.array([b"a"], dtype=object)})
    assert error.value.code == "INVALID_ARGUMENT" and "string" in error.value.message


def test_tf1_parse_example_classify_and_regress(root: Path) -> None:
    servable = load(root, "saved_model_half_plus_two_cpu")
    classes, scores = servable.classify("classify_x_to_y", [example(x=2.0), example(x=4.0)])
    assert classes is None
    np.testing.assert_array_equal(scores, [[3.0], [4.0]])
    np.testing.assert_array_equal(servable.regress("regress_x_to_y", [example(x=2.0)]), [3.0])
    np.testing.assert_array_equal(servable.regress("regress_x_to_y2", [example(x=2.0)]), [4.0])


def test_half_plus_three_loads_and_regresses_by_its_method_named_signature(root: Path) -> None:
    servable = load(root, "saved_model_half_plus_three")
    np.testing.assert_array_equal(predict(servable, {"x": [2.0]})["y"], [4.0])
    np.testing.assert_array_equal(servable.regress("tensorflow/serving/regress", [example(x=2.0)]), [4.0])


def test_reference_variable_state_persists_across_calls(root: Path) -> None:
    servable = load(root, "saved_model_counter")
    assert predict(servable, {"delta": 3.0}, "incr_counter_by")["output"] == 3.0
    assert predict(servable, {"delta": 3.0}, "incr_counter_by")["output"] == 6.0
    assert predict(servable, {}, "get_counter")["output"] == 6.0
    assert predict(servable, {}, "incr_counter")["output"] == 7.0
    assert predict(servable, {}, "reset_counter")["output"] == 0.0


def test_method_names_are_checked_only_when_asked(root: Path) -> None:
    """TF2 exports carry the predict method name on every signature; TF Serving classifies with them
    unless --enable_signature_method_name_check."""
    servable = load(root, "saved_model_half_plus_two_tf2_cpu")
    np.testing.assert_array_equal(servable.classify("classify_x_to_y", [example(x=2.0)])[1], [[3.0]])
    np.testing.assert_array_equal(servable.regress("regress_x_to_y", [example(x=2.0)]), [3.0])
    strict = load(root, "saved_model_half_plus_two_tf2_cpu", enable_signature_method_name_check=True)
    with pytest.raises(ServingError, match="Expected classification signature method_name to be "
                                           "tensorflow/serving/classify. Was: tensorflow/serving/predict"):
        strict.classify("classify_x_to_y", [example(x=2.0)])


def test_keras3_export_answers(root: Path) -> None:
    outputs = predict(load(root, "keras3_linear"), {"x": [[2.0], [3.0]]})
    np.testing.assert_allclose(outputs["output_0"], [[5.0], [7.0]])


def test_a_keras3_model_saved_inside_a_tf_module_reads_its_restored_variables(tmp_path: Path) -> None:
    """tf.saved_model.save of a tf.Module holding a Keras 3 model writes two handles per variable (the
    one its functions read, the one the saver restores); both must hold the saved value."""
    import tensorflow as tf

    from pipeline.tf_env import keras

    k = keras()
    model = k.Sequential([k.Input(shape=(1,), name="x"),
                          k.layers.Dense(1, kernel_initializer="ones", bias_initializer="zeros")])
    module = tf.Module()
    module.model = model
    module.serve = tf.function(lambda x: {"y": model(x)},
                               input_signature=[tf.TensorSpec([None, 1], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "1"), signatures={"serving_default": module.serve})
    servable = Servable.load("keras", 1, tmp_path / "1")
    np.testing.assert_array_equal(predict(servable, {"x": [[2.0], [3.0]]})["y"], [[2.0], [3.0]])


@pytest.mark.parametrize("folder", ["saved_model_half_plus_two_tflite",
                                    "saved_model_half_plus_two_tflite_with_sigdef"])
def test_prefer_tflite_model_serves_model_tflite_with_litert(root: Path, folder: str) -> None:
    servable = load(root, folder, prefer_tflite_model=True, num_tflite_interpreters_per_pool=2)
    assert servable.runtime == "tflite"
    signature = servable.predict_signature("serving_default")
    assert dict(signature.input_dtypes) == {"x": "DT_FLOAT"} and signature.output_names == ("y",)
    np.testing.assert_array_equal(predict(servable, {"x": [[2.0]]})["y"], [[3.0]])
    np.testing.assert_array_equal(predict(servable, {"x": [[2.0], [4.0]]})["y"], [[3.0], [4.0]])


def test_without_the_flag_a_version_with_both_files_runs_the_saved_model(root: Path, tmp_path: Path) -> None:
    import shutil

    version = shutil.copytree(root / "saved_model_half_plus_two_cpu" / um.VERSION, tmp_path / "1")
    shutil.copy(root / "saved_model_half_plus_two_tflite" / um.VERSION / "model.tflite", version)
    assert Servable.load("m", 1, version).runtime == "tensorflow"
    assert Servable.load("m", 1, version, ServableOptions(prefer_tflite_model=True)).runtime == "tflite"


def test_concurrent_calls_share_pooled_interpreters_and_get_their_own_answers(root: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    servable = load(root, "saved_model_half_plus_two_tflite", prefer_tflite_model=True,
                    num_tflite_interpreters_per_pool=2)
    values = [float(i) for i in range(64)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda v: predict(servable, {"x": [[v]]})["y"][0][0], values))
    assert answers == [0.5 * v + 2.0 for v in values]
