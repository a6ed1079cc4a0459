"""Spark batch scoring end to end on `local[2]`: every prediction equals the SavedModel's own.

One SparkSession serves the whole module (Spark and TensorFlow start-up dominate the runtime).
The models are tf.Module SavedModels exported into tmp_path as version folders `1/` and `2/`, with
the same `serving_default` signature as the project's exports (float32 `inputs` [-1, 2] ->
`output_0` [-1, 1]) and different weights, so a wrong version shows in every prediction.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.batch import BatchError, score_file, spark_session
from pipeline.batch.rows import pick_features

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas")]

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = {1: ([2.0, -1.0], 3.0), 2: ([0.5, 4.0], -1.0)}
ROWS = 100_000


def export_linear_version(path: Path, w: list[float], b: float) -> None:
    """A SavedModel with the project's serving signature computing `x @ w + b`."""
    import tensorflow as tf

    class Linear(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(np.array(w, np.float32).reshape(2, 1))
            self.b = tf.Variable(np.float32(b))

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="inputs")])
        def serve(self, inputs):
            return {"output_0": tf.matmul(inputs, self.w) + self.b}

    module = Linear()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


def savedmodel_answer(version_path: Path, x: np.ndarray) -> np.ndarray:
    """What the SavedModel itself returns for `x`, in one call (the reference for every row)."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(version_path))
    out = loaded.signatures["serving_default"](inputs=tf.constant(x.astype(np.float32)))
    return out["output_0"].numpy()[:, 0]


@pytest.fixture(scope="module")
def base_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("models") / "linear_model"
    for version, (w, b) in WEIGHTS.items():
        export_linear_version(base / str(version), w, b)
    return base


@pytest.fixture(scope="module")
def spark():
    session = spark_session("local[2]", app_name="test_batch_scoring")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def rows_parquet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    rng = np.random.default_rng(7)
    x = rng.uniform(-10, 10, size=(ROWS, 2))
    frame = pd.DataFrame({"id": np.arange(ROWS), "x1": x[:, 0], "x2": x[:, 1],
                          "y": x @ np.array([2.0, -1.0]) + 3.0 + rng.normal(0, 2, ROWS)})
    path = tmp_path_factory.mktemp("data") / "rows.parquet"
    frame.to_parquet(path, index=False)
    return path, frame


def read_output(path: Path, sort_by: str = "id") -> pd.DataFrame:
    return pd.read_parquet(path).sort_values(sort_by).reset_index(drop=True)


def worker_load_counts(spark) -> dict[int, int]:
    """{pid: how many models it has loaded so far} of the live Python workers (asked through a tiny
    Spark job). Workers are reused across the module's jobs, so a test compares two of these."""
    from pyspark import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])

    def report(batches):
        from pipeline.batch import model

        for _ in batches:
            yield pd.DataFrame({"pid": [os.getpid()], "loads": [model.load_count]})

    frame = spark.range(0, 64, numPartitions=8).mapInPandas(report, "pid long, loads long")
    return {int(pid): int(loads) for pid, loads in frame.toPandas().groupby("pid")["loads"].max().items()}


def test_every_prediction_of_100k_parquet_rows_matches_the_savedmodel(spark, base_path, rows_parquet,
                                                                      tmp_path):
    source, frame = rows_parquet
    events = []
    loads_before = worker_load_counts(spark)  # earlier tests of the module may have loaded models
    report = score_file(source, tmp_path / "predictions.parquet", model_base_path=base_path,
                        spark=spark, progress=events.append)

    assert (report.rows_in, report.scored, report.rejected) == (ROWS, ROWS, 0)
    assert report.version == 2 and report.runtime == "savedmodel"
    assert report.features == ("x1", "x2")
    out = read_output(tmp_path / "predictions.parquet")
    assert list(out.columns) == ["id", "x1", "x2", "y", "prediction", "version"]
    pd.testing.assert_frame_equal(out[["id", "x1", "x2", "y"]], frame)
    expected = savedmodel_answer(base_path / "2", frame[["x1", "x2"]].to_numpy())
    np.testing.assert_allclose(out["prediction"].to_numpy(), expected, rtol=1e-5)
    assert set(out["version"]) == {2}

    fractions = [event.fraction for event in events]
    assert fractions == sorted(fractions) and events[-1].phase == "done" and fractions[-1] == 1.0
    assert "scored: 100,000" in events[-1].message
    loaded = {pid: loads - loads_before.get(pid, 0) for pid, loads in worker_load_counts(spark).items()}
    assert max(loaded.values()) <= 1, loaded  # loaded at most once per worker, not once per batch


def test_version_selects_the_model_and_is_recorded_per_row(spark, base_path, rows_parquet, tmp_path):
    source, frame = rows_parquet
    report = score_file(source, tmp_path / "v1.parquet", model_base_path=base_path, version=1,
                        spark=spark)

    out = read_output(tmp_path / "v1.parquet")
    assert report.version == 1 and set(out["version"]) == {1}
    expected = savedmodel_answer(base_path / "1", frame[["x1", "x2"]].to_numpy())
    np.testing.assert_allclose(out["prediction"].to_numpy(), expected, rtol=1e-5)
    # version 1 is the tutorial's truth: the predictions sit within the noise of y
    assert np.abs(out["prediction"] - out["y"]).mean() < 2.0


def test_csv_bad_rows_go_to_rejects_with_a_reason_and_nothing_is_lost(spark, base_path, tmp_path):
    good = pd.DataFrame({"x1": np.linspace(-5, 5, 2000), "x2": np.linspace(3, -3, 2000)})
    good["y"] = good["x1"] * 2 - good["x2"] + 3
    source = tmp_path / "rows.csv"
    good.to_csv(source, index=False)
    bad_lines = {
        "abc,1,2": "non-numeric value in x1: 'abc'",
        "1,2": "wrong column count: expected 3, got 2: '1,2'",
        "1,2,3,4": "wrong column count: expected 3, got 4: '1,2,3,4'",
        ",1,2": "missing value in x1",
        "1,,2": "missing value in x2",
        "1,NaN,2": "non-finite value in x2: NaN",
        "1,Infinity,2": "non-finite value in x2: Infinity",
    }
    with source.open("a") as handle:
        handle.write("\n".join(bad_lines) + "\n")

    report = score_file(source, tmp_path / "p.parquet", model_base_path=base_path, version=1,
                        rejects_path=tmp_path / "bad.parquet", spark=spark)

    assert (report.rows_in, report.scored, report.rejected) == (2007, 2000, 7)
    rejects = pd.read_parquet(tmp_path / "bad.parquet")
    assert list(rejects.columns) == ["x1", "x2", "y", "reason"]
    assert sorted(rejects["reason"]) == sorted(bad_lines.values())
    out = pd.read_parquet(tmp_path / "p.parquet").sort_values("x1").reset_index(drop=True)
    assert out["y"].dtype == np.float64  # a CSV label column that parses comes out as numbers
    expected = savedmodel_answer(base_path / "1", out[["x1", "x2"]].to_numpy())
    np.testing.assert_allclose(out["prediction"].to_numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(out["prediction"], out["y"], rtol=1e-4, atol=1e-4)


def test_litert_model_tflite_is_used_when_present_and_agrees(spark, base_path, rows_parquet,
                                                            tmp_path):
    pytest.importorskip("ai_edge_litert")
    import tensorflow as tf

    lite_base = tmp_path / "lite_model"
    shutil.copytree(base_path / "2", lite_base / "2")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(lite_base / "2"))
    (lite_base / "2" / "model.tflite").write_bytes(converter.convert())
    source, frame = rows_parquet

    report = score_file(source, tmp_path / "lite.parquet", model_base_path=lite_base, spark=spark)

    assert report.runtime == "litert" and report.scored == ROWS
    out = read_output(tmp_path / "lite.parquet")
    expected = savedmodel_answer(base_path / "2", frame[["x1", "x2"]].to_numpy())
    # XNNPACK adds the float32 terms in another order: near-zero sums differ by a few float32 ulps
    # of the terms (|x @ w| <= 45, eps 1.2e-7), hence the absolute floor beside rtol 1e-5.
    np.testing.assert_allclose(out["prediction"].to_numpy(), expected, rtol=1e-5, atol=2e-5)


def test_missing_model_or_version_is_one_clear_error(base_path, rows_parquet, tmp_path):
    source, _ = rows_parquet
    with pytest.raises(BatchError, match="does not exist or is not a folder"):
        score_file(source, tmp_path / "o.parquet", model_base_path=tmp_path / "nowhere")
    with pytest.raises(BatchError, match=r"version 9 not found .*available: 1, 2"):
        score_file(source, tmp_path / "o.parquet", model_base_path=base_path, version=9)
    empty = tmp_path / "empty_model"
    empty.mkdir()
    with pytest.raises(BatchError, match="no versions under"):
        score_file(source, tmp_path / "o.parquet", model_base_path=empty)


def test_feature_columns_are_checked_before_scoring():
    assert pick_features(["id", "x1", "x2", "y"], "x2,x1", 2) == ("x2", "x1")
    assert pick_features(["a", "y", "b"], "auto", 2) == ("a", "b")
    assert pick_features(["id", "x1", "customer_id", "x2", "label"], "auto", 2) == ("x1", "x2")
    with pytest.raises(BatchError, match="not in the input: x3"):
        pick_features(["x1", "x2"], "x1,x3", 2)
    with pytest.raises(BatchError, match="takes 2 features"):
        pick_features(["x1", "x2", "x3"], "x1", 2)
    with pytest.raises(BatchError, match="only 1 usable"):
        pick_features(["x1", "y"], "auto", 2)
    with pytest.raises(BatchError, match="already has column"):
        pick_features(["x1", "x2", "prediction"], "auto", 2)


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "pipeline.batch", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=240)


def test_cli_usage_errors_exit_2_with_one_message(tmp_path):
    missing_model = run_cli("--input", "rows.csv", "--output", "p.parquet",
                            "--model-base-path", "no/such/model", cwd=tmp_path)
    assert missing_model.returncode == 2
    assert missing_model.stderr.strip().splitlines() == [
        "python -m pipeline.batch: error: model base path 'no/such/model' does not exist or is not "
        "a folder (it should hold version folders 1/, 2/, ...; train and export one first)"]
    no_input = run_cli("--output", "p.parquet", cwd=tmp_path)
    assert no_input.returncode == 2 and "--input" in no_input.stderr
    bad_version = run_cli("--input", "a.csv", "--output", "p.parquet", "--version", "v1", cwd=tmp_path)
    assert bad_version.returncode == 2 and "must be a version number" in bad_version.stderr


def test_cli_scores_a_csv_and_prints_the_counts(base_path, tmp_path):
    source = tmp_path / "rows.csv"
    source.write_text("x1,x2\n1,2\n5,7\nseven,1\n")
    done = run_cli("--input", str(source), "--output", str(tmp_path / "p.parquet"), "--master",
                   "local[1]", "--model-base-path", str(base_path), "--version", "1", cwd=tmp_path)

    assert done.returncode == 0, done.stderr[-2000:]
    assert "rows in: 3  scored: 2  rejected: 1  (version 1" in done.stdout
    out = pd.read_parquet(tmp_path / "p.parquet").sort_values("x1")
    np.testing.assert_allclose(out["prediction"], [3.0, 6.0], rtol=1e-5)  # the tutorial's [1,2], [5,7]
    assert pd.read_parquet(tmp_path / "p.rejects.parquet")["reason"].tolist() == [
        "non-numeric value in x1: 'seven'"]


def test_bench_table_states_each_rate_against_the_in_process_floor():
    from bench.batch_bench import BatchBench

    result = BatchBench(rows=1_000_000, version=2, in_process_rows_per_s=2e8, spark_rows_per_s=2e5,
                        spark_cold_rows_per_s=4e4, spark_master="local[2]", rest_rows_per_s=None,
                        rest_request_rows=10_000)
    table = result.table()
    assert "| Spark `local[2]`, warm session (Parquet in, Parquet out) | 200,000 | 1,000x |" in table
    assert "REST" not in table  # not measured: no row rather than a made-up one
    assert table.endswith("1,000,000 rows, version 2.")
