"""Every export route of a version answers like its SavedModel: LiteRT in Python, TF.js in Node.

Versions are built with TensorFlow in a temporary folder (the tutorial's Keras linear model, a
deeper Keras model with common activations, and a tf.Module using an op TF.js export refuses),
exported with `pipeline.formats`, and run by the real runtimes: `ai-edge-litert` and
`@tensorflow/tfjs` from npm (`clients/node/predict.mjs`). Agreement means within 1e-5 relative
(with a 1e-5 absolute floor for answers near zero).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipeline.formats import FormatError, export_all
from pipeline.formats.__main__ import main as formats_cli
from pipeline.formats.tflite import LiteRTModel
from pipeline.tf_env import keras, tensorflow

REPO = Path(__file__).resolve().parents[2]
NODE_SCRIPT = REPO / "clients" / "node" / "predict.mjs"
TFJS_PACKAGE = REPO / "node_modules" / "@tensorflow" / "tfjs" / "package.json"
TUTORIAL_ROWS = np.array([[1.0, 2.0], [5.0, 7.0]], dtype=np.float32)
RANDOM_ROWS = np.random.default_rng(12).uniform(-10, 10, size=(100, 2)).astype(np.float32)

pytestmark = pytest.mark.slow


def assert_agree(actual: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


def linear_version(path: Path) -> Path:
    """The tutorial's model as training leaves it: Dense(1), learned w and b, `Model.export`."""
    k = keras()
    inputs = k.Input(shape=(2,), name="inputs")
    model = k.Model(inputs, k.layers.Dense(1)(inputs))
    model.layers[-1].set_weights([np.array([[1.987], [-1.013]], "float32"), np.array([2.93], "float32")])
    model.export(str(path), verbose=False)
    return path


def deep_version(path: Path) -> Path:
    """Dense layers with the activations TF.js export supports, to check more than one op."""
    k = keras()
    k.utils.set_random_seed(3)
    inputs = k.Input(shape=(2,), name="inputs")
    hidden = inputs
    for units, activation in [(8, "relu"), (8, "tanh"), (8, "sigmoid"), (4, "elu"), (4, "softplus")]:
        hidden = k.layers.Dense(units, activation=activation)(hidden)
    k.Model(inputs, k.layers.Dense(1)(hidden)).export(str(path), verbose=False)
    return path


def sin_version(path: Path) -> Path:
    """A model TF.js export cannot convert: `sin(x @ w)`."""
    tf = tensorflow()

    class SinModel(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable([[2.0], [-1.0]])

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="inputs")])
        def serve(self, inputs):
            return {"output_0": tf.math.sin(tf.matmul(inputs, self.w))}

    module = SinModel()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def saved_model_answer(version: Path, rows: np.ndarray) -> np.ndarray:
    function = tensorflow().saved_model.load(str(version)).signatures["serving_default"]
    return function(inputs=tensorflow().constant(rows))["output_0"].numpy()


def savedmodel_fingerprint(version: Path) -> dict[str, str]:
    """Hash of every SavedModel file, to prove an export never touched them."""
    files = [version / "saved_model.pb", *sorted((version / "variables").iterdir())]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def node_predict(tfjs_dir: Path, rows: np.ndarray) -> np.ndarray:
    """Predictions of the TF.js model from `@tensorflow/tfjs` in Node."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the TF.js route is checked in Node (CI installs nodejs)")
    assert TFJS_PACKAGE.is_file(), "node_modules/@tensorflow/tfjs is missing: run `make tfjs` (npm ci)"
    done = subprocess.run(["node", str(NODE_SCRIPT), str(tfjs_dir), "-"], input=json.dumps(rows.tolist()),
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return np.array(json.loads(done.stdout)["predictions"], dtype=np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    """The linear and deep versions, each with its SavedModel fingerprint taken before export."""
    base = tmp_path_factory.mktemp("models")
    versions = {"linear": linear_version(base / "linear_model" / "1"),
                "deep": deep_version(base / "deep_model" / "1")}
    for name, version in versions.items():
        before = savedmodel_fingerprint(version)
        results = export_all(version)
        assert results == {"tflite": version / "model.tflite", "tfjs": version / "tfjs"}, name
        assert savedmodel_fingerprint(version) == before, f"{name}: export changed the SavedModel"
    return versions


@pytest.mark.parametrize("name", ["linear", "deep"])
@pytest.mark.parametrize("rows", [TUTORIAL_ROWS, RANDOM_ROWS], ids=["tutorial", "random100"])
def test_litert_agrees_with_the_savedmodel(exported, name, rows):
    version = exported[name]
    model = LiteRTModel(version / "model.tflite")
    assert model.input_names == ["inputs"] and model.output_names == ["output_0"]
    answer = model.predict(rows)
    assert answer.shape == (len(rows), 1)
    assert_agree(answer, saved_model_answer(version, rows))


@pytest.mark.parametrize("name", ["linear", "deep"])
@pytest.mark.parametrize("rows", [TUTORIAL_ROWS, RANDOM_ROWS], ids=["tutorial", "random100"])
def test_tfjs_in_node_agrees_with_the_savedmodel(exported, name, rows):
    version = exported[name]
    answer = node_predict(version / "tfjs", rows)
    assert answer.shape == (len(rows), 1)
    assert_agree(answer, saved_model_answer(version, rows))


def test_tutorial_rows_answer_about_three_and_six_in_every_route(exported):
    version = exported["linear"]
    expected = np.array([[1.987 * 1 - 1.013 * 2 + 2.93], [1.987 * 5 - 1.013 * 7 + 2.93]], np.float32)
    assert_agree(LiteRTModel(version / "model.tflite").predict(TUTORIAL_ROWS), expected)
    assert_agree(node_predict(version / "tfjs", TUTORIAL_ROWS), expected)


def test_a_run_with_true_weights_of_10_000_exports_and_converts_in_the_datas_units(tmp_path):
    """Training fits standardized data; the version it exports keeps the tutorial's signature and
    answers in the data's units in every route (SavedModel, LiteRT, TF.js)."""
    from pipeline import model_dir
    from pipeline.store import versions as registry
    from pipeline.store.run_record import RunRecord
    from pipeline.training.fit import TrainConfig, train

    result = train(TrainConfig(true_w=(10_000.0, -10_000.0), true_b=-10_000.0))
    assert result.quality.level == "ok", result.quality.reasons
    version = registry.export_version(result.model, tmp_path / "linear_model",
                                      result.record_into(RunRecord(id="large-weights"))).path
    signature = model_dir.read_signature(version)
    assert signature.inputs["inputs"].dtype == "DT_FLOAT" and signature.inputs["inputs"].shape == (-1, 2)
    assert list(signature.outputs) == ["output_0"] and signature.outputs["output_0"].shape == (-1, 1)
    assert export_all(version) == {"tflite": version / "model.tflite", "tfjs": version / "tfjs"}
    expected = RANDOM_ROWS.astype(np.float64) @ np.array(result.w)[:, None] + result.b
    routes = {"savedmodel": saved_model_answer(version, RANDOM_ROWS),
              "litert": LiteRTModel(version / "model.tflite").predict(RANDOM_ROWS),
              "tfjs": node_predict(version / "tfjs", RANDOM_ROWS)}
    for route, answer in routes.items():  # answers up to 3e5: float32 keeps ~0.02 of them
        np.testing.assert_allclose(answer, expected, rtol=1e-5, atol=0.05, err_msg=route)
    truth = saved_model_answer(version, TUTORIAL_ROWS)[:, 0]
    np.testing.assert_allclose(truth, [-20_000.0, -30_000.0], rtol=1e-4)


def test_unsupported_op_names_the_op_and_leaves_no_tfjs_files(tmp_path):
    version = sin_version(tmp_path / "sin_model" / "1")
    before = savedmodel_fingerprint(version)
    results = export_all(version)
    error = results["tfjs"]
    assert isinstance(error, FormatError)
    assert "TF.js export does not support op 'Sin' (node '" in str(error)
    assert results["tflite"] == version / "model.tflite"  # the other format still gets written
    assert sorted(p.name for p in version.iterdir()) == [
        "assets", "fingerprint.pb", "model.tflite", "saved_model.pb", "variables"]
    assert savedmodel_fingerprint(version) == before


def test_corrupt_tflite_is_refused_with_a_readable_error(exported, tmp_path):
    good = (exported["linear"] / "model.tflite").read_bytes()
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(FormatError, match=r"truncated.tflite is a damaged TensorFlow Lite model"):
        LiteRTModel(truncated)
    text = tmp_path / "notes.tflite"
    text.write_text("not a model at all")
    with pytest.raises(FormatError, match=r"notes.tflite is not a TensorFlow Lite model"):
        LiteRTModel(text)


def test_cli_converts_every_existing_version(exported, tmp_path, capsys):
    base = tmp_path / "linear_model"
    for version in ("1", "2"):
        shutil.copytree(exported["linear"], base / version,
                        ignore=shutil.ignore_patterns("model.tflite", "tfjs"))
    assert formats_cli(["--model-base-path", str(base), "--all"]) == 0
    out = capsys.readouterr().out
    for version in ("1", "2"):
        assert (base / version / "model.tflite").is_file()
        assert (base / version / "tfjs" / "model.json").is_file()
        assert f"version {version}: tfjs" in out and f"version {version}: tflite" in out
    with pytest.raises(SystemExit) as exit_info:
        formats_cli(["--model-base-path", str(base), "--version", "9"])
    assert exit_info.value.code == 2
    assert "no version 9" in capsys.readouterr().err


def test_cli_reports_a_failed_format_and_exits_1(tmp_path, capsys):
    base = tmp_path / "sin_model"
    sin_version(base / "1")
    assert formats_cli(["--model-base-path", str(base), "--format", "tfjs"]) == 1
    assert "FAILED: TF.js export does not support op 'Sin'" in capsys.readouterr().err
