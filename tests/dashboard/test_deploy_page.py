"""Deploy page under AppTest: real version folders (built once in a child process), the real
conversion child process and LiteRT; the model server mocked at its boundary (`ServingClient.predict`
answers `x @ w + b` with the version's own weights, as the SavedModel would).

The browser route cannot run under AppTest (no browser): its component is checked for what the page
says while it waits, and when TF.js is not installed; tests/e2e/test_deploy_story.py runs it in
Chromium.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import deploy_routes
from dashboard.components import tfjs_predict
from pipeline.client.grpc import GrpcClient, GrpcPredictResult
from pipeline.client.rest import PredictResult, ServingClient
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "dashboard" / "views" / "deploy.py")
W, B = np.array([[1.987], [-1.013]], "float32"), np.array([2.93], "float32")
REST_CALLS: list[list[list[float]]] = []

BUILD = r"""
import sys
import numpy as np
from pipeline.tf_env import tensorflow
tf = tensorflow()
k = tf.keras
linear, sin = sys.argv[1], sys.argv[2]
inputs = k.Input(shape=(2,), name="inputs")
model = k.Model(inputs, k.layers.Dense(1)(inputs))
model.layers[-1].set_weights([np.array([[1.987], [-1.013]], "float32"), np.array([2.93], "float32")])
model.export(linear, verbose=False)

class SinModel(tf.Module):
    def __init__(self):
        super().__init__()
        self.w = tf.Variable([[2.0], [-1.0]])

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="inputs")])
    def serve(self, inputs):
        return {"output_0": tf.math.sin(tf.matmul(inputs, self.w))}

module = SinModel()
tf.saved_model.save(module, sin, signatures={"serving_default": module.serve})
"""


def build_versions(folder: Path) -> dict[str, Path]:
    """A linear Keras version (w = W, b = B) and a `sin` version (which TF.js export refuses),
    SavedModel only, exported in a child process."""
    paths = {"linear": folder / "linear", "sin": folder / "sin"}
    done = subprocess.run([sys.executable, "-c", BUILD, str(paths["linear"]), str(paths["sin"])], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    return paths


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    return build_versions(tmp_path_factory.mktemp("deploy-built"))


def install(source: Path, models_dir: Path, version: int = 1) -> Path:
    target = models_dir / "linear_model" / str(version)
    shutil.copytree(source, target)
    return target


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Models in a temporary folder; the server answers with the linear version's weights."""
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("MODELS_DIR", str(models))
    monkeypatch.delenv("MODEL_BASE_PATH", raising=False)
    monkeypatch.setenv("SERVING_URL", "http://127.0.0.1:9")

    def predict(client: ServingClient, model: str, *, instances=None, version=None,
                **_: object) -> PredictResult:
        values = (np.asarray(instances, "float32") @ W + B).tolist()
        REST_CALLS.append(instances)
        url = f"http://127.0.0.1:9/v1/models/{model}/versions/{version}:predict"
        return PredictResult(url=url, request={"instances": instances}, response={"predictions": values},
                             status_code=200, latency_s=0.004)

    monkeypatch.setattr(ServingClient, "predict", predict)

    def grpc_predict(client: GrpcClient, model: str, rows, version=None, **_: object) -> GrpcPredictResult:
        values = (np.asarray(rows, "float32") @ W + B).tolist()
        return GrpcPredictResult(model=model, version=version, signature="serving_default",
                                 outputs={"output_0": values}, latency_s=0.002)

    monkeypatch.setattr(deploy_routes, "grpc_listening", lambda target: True)
    monkeypatch.setattr(GrpcClient, "predict", grpc_predict)
    monkeypatch.setattr(deploy_routes, "java_available", lambda: False)
    monkeypatch.setattr(tfjs_predict, "PUBLISHED", tmp_path / "published")  # never into the checkout
    return models


def summary(at: AppTest) -> dict[str, dict]:
    frame = next(df.value for df in at.dataframe if "route" in df.value.columns)
    return {row["route"]: row for row in frame.to_dict("records")}


def test_without_versions_the_page_says_to_train_first(env: Path) -> None:
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert any("No versions" in i.value and "Train page" in i.value for i in at.info)


def test_convert_then_every_route_agrees_with_the_savedmodel(env: Path, built: dict[str, Path]) -> None:
    version = install(built["linear"], env)
    at = AppTest.from_file(PAGE, default_timeout=240).run()
    assert any("no tflite and no tfjs export yet" in w.value for w in at.warning)
    at.button(key="deploy_convert").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert (version / "model.tflite").is_file() and (version / "tfjs" / "model.json").is_file()
    assert any("tflite" in s.value for s in at.success) and any("tfjs" in s.value for s in at.success)
    assert not at.warning  # nothing missing any more
    labels = [b.label for b in at.get("download_button")]
    assert "Download model.tflite" in labels and "Download the TF.js model (zip)" in labels

    routes = summary(at)  # the routes answer by themselves once the files are there
    assert routes["REST"]["status"] == "answered"
    litert = routes[deploy_routes.LITERT]
    assert litert["status"] == "answered" and litert["agrees within 1e-05"] == "yes"
    assert litert["max relative Δ"] <= 1e-5
    grpc = routes[deploy_routes.GRPC]
    assert grpc["status"] == "answered" and grpc["agrees within 1e-05"] == "yes"
    java = routes[deploy_routes.JAVA]
    assert java["status"] == "not run" and "openjdk" in java["timed"]
    assert routes[deploy_routes.TFJS]["status"] == "not run"  # no browser under AppTest
    document = json.loads(at.get("code")[0].value)
    rows = np.asarray(document["rows"], "float32")
    assert document["rows"][:2] == [[1.0, 2.0], [5.0, 7.0]] and len(rows) == 7
    np.testing.assert_allclose(document["predictions"][deploy_routes.LITERT], (rows @ W + B)[:, 0], rtol=1e-5)

    asked = len(REST_CALLS)
    at.run()
    assert len(REST_CALLS) == asked  # a rerun (e.g. the browser reporting back) asks no route again
    at.button(key="deploy_run").click().run()
    assert len(REST_CALLS) == asked + 1
    at.number_input(key="deploy_random_count").set_value(20).run()
    assert len(REST_CALLS) == asked + 2 and len(REST_CALLS[-1]) == 22  # new rows: asked by themselves


@pytest.mark.skipif(not tfjs_predict.TFJS_MIN.is_file(), reason="tf.min.js missing: run `make tfjs`")
def test_the_browser_copy_is_published_and_stale_copies_are_pruned(env: Path, built: dict[str, Path],
                                                                  tmp_path: Path) -> None:
    published = tmp_path / "published"  # the env fixture's PUBLISHED: never the checkout's static folder
    stale = published / "0ld1ay0ut" / "models" / "linear_model" / "1"  # a copy of a version long gone
    stale.mkdir(parents=True)
    version = install(built["linear"], env)
    at = AppTest.from_file(PAGE, default_timeout=240).run()
    at.button(key="deploy_convert").click().run()
    assert not at.exception
    assert summary(at)[deploy_routes.TFJS]["timed"].startswith("waiting for your browser")
    key = tfjs_predict.published_key(version)
    assert [p.name for p in published.iterdir()] == [key]
    assert (published / key / "model.json").read_bytes() == (version / "tfjs" / "model.json").read_bytes()
    assert not (tfjs_predict.STATIC_DIR / "models" / key).exists()


def test_a_failed_conversion_is_readable_and_leaves_the_savedmodel_alone(env: Path,
                                                                         built: dict[str, Path]) -> None:
    version = install(built["sin"], env)
    before = (version / "saved_model.pb").read_bytes()
    at = AppTest.from_file(PAGE, default_timeout=240).run()
    at.button(key="deploy_convert").click().run()
    errors = [e.value for e in at.error]
    assert any("Conversion failed" in e and "'Sin'" in e and "unchanged" in e for e in errors), errors
    assert (version / "saved_model.pb").read_bytes() == before
    assert (version / "model.tflite").is_file()  # the other format was still written
    assert not (version / "tfjs").exists() and not any(p.name.startswith(".tfjs") for p in version.iterdir())


def test_a_corrupt_tflite_is_refused_readably(env: Path, built: dict[str, Path]) -> None:
    version = install(built["linear"], env)
    (version / "model.tflite").write_bytes(b"not a flatbuffer at all")
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert summary(at)[deploy_routes.LITERT]["status"] == "failed"
    assert any("is not a TensorFlow Lite model" in e.value for e in at.error)


def test_without_tfjs_installed_the_page_says_what_to_run(env: Path, built: dict[str, Path],
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    install(built["linear"], env)
    monkeypatch.setattr(tfjs_predict, "TFJS_MIN", tmp_path / "static" / "tfjs" / "tf.min.js")
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert any("make tfjs" in i.value and "npm" in i.value for i in at.info)
    assert summary(at)[deploy_routes.TFJS]["status"] == "not run"


def test_no_grpc_server_is_said_without_loading_tensorflow() -> None:
    answer = deploy_routes.grpc_route(f"127.0.0.1:{free_port()}", "linear_model", 1, [[1.0, 2.0]])
    assert answer.predictions is None and "nothing answers gRPC" in answer.error and "--port" in answer.error


def test_with_the_server_down_the_local_routes_answer_and_nothing_reads_none(
        env: Path, built: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.client.errors import ClientError

    install(built["linear"], env)
    at = AppTest.from_file(PAGE, default_timeout=240).run()
    at.button(key="deploy_convert").click().run()

    def down(*args, **kwargs):
        raise ClientError("No model server answers at http://127.0.0.1:9 (connection refused)", url="u")

    monkeypatch.setattr(ServingClient, "predict", down)
    monkeypatch.setattr(GrpcClient, "predict", down)
    at.button(key="deploy_run").click().run()
    assert not at.exception
    routes = summary(at)
    assert routes["REST"]["status"] == "failed" and routes[deploy_routes.GRPC]["status"] == "failed"
    litert = routes[deploy_routes.LITERT]
    assert litert["status"] == "answered" and litert["latency ms"] > 0
    assert litert["agrees within 1e-05"] == "no SavedModel answer"
    assert np.isnan(litert["max |Δ| vs SavedModel"]) and np.isnan(routes["REST"]["latency ms"])
    assert not any(value is None or value == "None" for row in routes.values() for value in row.values())
    table = next(df for df in at.dataframe if "route" in df.value.columns)
    assert table.proto.placeholder == "–"  # a missing number is drawn as "–"
    assert any("no SavedModel answer to compare" in c.value for c in at.caption)
