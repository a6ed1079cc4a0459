"""Batch page under AppTest with the real child process and Spark on `local[2]`: counts, a sample
with residuals against the version's true weights, downloads and rejects; and a failing job's
reason. The dashboard's process never imports Spark or TensorFlow for it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import batch_job
from pipeline.state import ProcessRecord, read_record, write_record
from tests.dashboard.test_deploy_page import build_versions
from tests.support.net import wait_for

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "dashboard" / "views" / "batch.py")
LEARNED_W, LEARNED_B = (1.987, -1.013), 2.93
"""What the linear version built by `build_versions` answers with."""

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java 17+ (`java`)")


@pytest.fixture(scope="module")
def linear(tmp_path_factory) -> Path:
    return build_versions(tmp_path_factory.mktemp("batch-built"))["linear"]


@pytest.fixture
def models(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, linear: Path) -> Path:
    """Version 1 of linear_model (with a run record saying the truth is w0 = [2, -1], b0 = 3)."""
    models = tmp_path / "models"
    version = models / "linear_model" / "1"
    shutil.copytree(linear, version)
    (version / "assets.extra").mkdir(exist_ok=True)
    (version / "assets.extra" / "run.json").write_text(json.dumps({"true": {"w": [2.0, -1.0], "b": 3.0}}))
    monkeypatch.setenv("MODELS_DIR", str(models))
    monkeypatch.delenv("MODEL_BASE_PATH", raising=False)
    monkeypatch.setenv("SERVING_RUN_DIR", str(tmp_path / "run"))
    return models


def run_until_done(at: AppTest, timeout_s: float = 300.0) -> AppTest:
    """Rerun the page (as its polling fragment would) until the job is no longer shown as running."""
    def finished() -> bool:
        at.run()
        return not any(h.value == "Scoring…" for h in at.subheader)

    finished.__name__ = "the batch job finished"
    wait_for(finished, timeout_s, interval=1.0)
    return at


def start(at: AppTest, path: Path) -> AppTest:
    at.radio(key="batch_source").set_value("A file on this machine").run()
    at.text_input(key="batch_path").input(str(path)).run()
    at.text_input(key="batch_master").input("local[2]").run()
    at.button(key="batch_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_without_versions_the_page_says_to_train_first(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    monkeypatch.setenv("MODELS_DIR", str(tmp_path))
    monkeypatch.delenv("MODEL_BASE_PATH", raising=False)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert any("No versions" in i.value for i in at.info)


@needs_java
def test_a_csv_is_scored_on_spark_with_counts_residuals_and_rejects(models: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    x = np.round(rng.uniform(-10, 10, size=(300, 2)), 4)
    lines = ["x1,x2,y", *(f"{a},{b},{2 * a - b + 3}" for a, b in x), "oops,1,2"]
    csv = tmp_path / "rows.csv"
    csv.write_text("\n".join(lines) + "\n")

    at = start(AppTest.from_file(PAGE, default_timeout=60).run(), csv)
    assert any(h.value == "Scoring…" for h in at.subheader)  # a progress bar, not a frozen page
    run_until_done(at)
    assert not at.exception and not at.error, [e.value for e in at.error]
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Rows in"], metrics["Scored"], metrics["Rejected"]) == ("301", "300", "1")

    sample = next(df.value for df in at.dataframe if "prediction" in df.value.columns)
    assert len(sample) == 300
    expected = sample["x1"] * LEARNED_W[0] + sample["x2"] * LEARNED_W[1] + LEARNED_B
    np.testing.assert_allclose(sample["prediction"], expected, rtol=1e-5, atol=1e-5)
    truth = 2 * sample["x1"] - sample["x2"] + 3
    np.testing.assert_allclose(sample["residual"], expected - truth, atol=1e-4)
    np.testing.assert_allclose(sample["residual vs y"], expected - sample["y"], atol=1e-4)
    assert any("version 1's run record" in c.value for c in at.caption)

    rejects = next(df.value for df in at.dataframe if "reason" in df.value.columns)
    assert rejects["x1"].tolist() == ["oops"] and rejects["reason"].str.contains("x1").all()
    labels = [b.label for b in at.get("download_button")]
    assert "Download predictions (.parquet)" in labels and "Download rejects (.parquet, 1 row)" in labels
    assert at.text_input(key="batch_path").value == str(csv)  # the file is still chosen: score it again
    assert not at.button(key="batch_run").disabled
    scatter = next(c for c in at.get("plotly_chart") if "perfect model (y = x)" in c.proto.spec)
    assert '"300 scored rows"' in scatter.proto.spec


@needs_java
def test_a_job_that_cannot_run_says_why(models: Path, tmp_path: Path) -> None:
    rows = tmp_path / "rows.txt"
    rows.write_text("x1,x2\n1,2\n")
    at = run_until_done(start(AppTest.from_file(PAGE, default_timeout=60).run(), rows))
    assert any("The batch job failed" in e.value and "must end in .csv or .parquet" in e.value
               for e in at.error), [e.value for e in at.error]


@needs_java
def test_an_upload_is_saved_inside_the_job_folder_under_a_safe_name(tmp_path: Path) -> None:
    folder = batch_job.start_job(tmp_path, base_path=tmp_path / "no-model", version=None,
                                 upload=("../../etc/rows .csv", b"x1,x2\n1,2\n"))
    spec = json.loads((folder / batch_job.SPEC).read_text())
    assert Path(spec["input"]).parent == folder and Path(spec["input"]).name == "rows_.csv"
    state = wait_for(lambda: (s := batch_job.read_state(folder)) and not s.running and s, 120, interval=0.5)
    assert state.error and "no-model" in state.error  # the missing model is named, not a traceback
    pid = read_record(folder / batch_job.PROCESS).pid
    wait_for(lambda: not_a_zombie(pid), 30, interval=0.2)  # reaped, though the page never asked again


def not_a_zombie(pid: int) -> bool:
    """True once ``pid`` is gone or runs (not left as a zombie by its parent, this process)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


@needs_java
def test_the_chosen_file_stays_chosen_while_a_job_runs_and_after_cancel(models: Path, tmp_path: Path) -> None:
    csv = tmp_path / "rows.csv"
    csv.write_text("x1,x2\n" + "\n".join(f"{i},{i}" for i in range(50)) + "\n")
    at = start(AppTest.from_file(PAGE, default_timeout=60).run(), csv)
    assert any(h.value == "Scoring…" for h in at.subheader)
    assert at.text_input(key="batch_path").disabled and at.button(key="batch_run").disabled
    at.button(key="batch_cancel").click().run()
    run_until_done(at)
    assert any("cancelled" in i.value for i in at.info)
    assert at.text_input(key="batch_path").value == str(csv) and not at.button(key="batch_run").disabled


def test_cancel_stops_the_job_and_a_new_session_finds_a_running_one(tmp_path: Path) -> None:
    folder = tmp_path / "20260101T000000-abcdef"
    folder.mkdir()
    (folder / batch_job.SPEC).write_text("{}")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    write_record(folder / batch_job.PROCESS, ProcessRecord.of(child.pid))
    assert batch_job.read_state(folder).running
    assert batch_job.latest_running(tmp_path) == folder
    batch_job.cancel(folder)
    assert child.wait(30) != 0
    state = batch_job.read_state(folder)
    assert not state.running and state.error == "cancelled"
    assert batch_job.latest_running(tmp_path) is None
    batch_job.prune(tmp_path, keep=0)
    assert not folder.exists()


def test_without_pyspark_the_page_says_so_with_the_command_before_any_form(models: Path, monkeypatch) -> None:
    """A plain `make run` does not install PySpark: the page says so first, instead of taking an
    upload and failing after "Score on Spark"."""
    monkeypatch.setitem(sys.modules, "pyspark", None)  # as if it were not installed
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert "not set up on this machine" in at.warning[0].value
    assert any("PySpark is not installed" in m.value for m in at.markdown)
    command = at.code[0].value
    assert command.endswith("-m pip install -r requirements-batch.txt") and str(ROOT) in command
    assert not at.get("file_uploader") and "batch_run" not in [b.key for b in at.button]


def test_without_java_the_page_says_how_to_install_it(models: Path, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-java-here"))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert any("needs Java 17" in m.value for m in at.markdown)
    assert "openjdk-17-jre-headless" in at.code[-1].value
    assert "batch_run" not in [b.key for b in at.button]
