"""The Train page, driven like a user: fill the form, watch the run, read the result, export.

Runs real (small) trainings in the page's background thread against a temporary model
folder; the page is polled with ``at.run()`` until the run ends, as the browser's fragment
timer would.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pipeline.store import records as runs
from pipeline.store import versions as registry
from pipeline.store.run_record import RunRecord, RunStatus
from tests.support.kept_charts import kept_figures
from tests.support.net import wait_for

PAGE = str(Path(__file__).resolve().parents[2] / "dashboard" / "views" / "train.py")


@pytest.fixture
def base(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "linear_model"
    monkeypatch.setenv("MODEL_BASE_PATH", str(path))
    return path


def open_page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    return at


def fill(at: AppTest, samples=200, epochs=20, batch="8", export=True, lr=None) -> AppTest:
    at.text_input(key="train_samples").set_value(f"{samples:,}")
    at.number_input(key="train_epochs").set_value(epochs)
    at.text_input(key="train_batch").set_value(batch)
    if lr is not None:
        at.number_input(key="train_lr").set_value(lr)
    at.toggle(key="train_export").set_value(export)
    return at


def run_until(at: AppTest, done, timeout_s: float = 90.0) -> AppTest:
    """Rerun the page (as the fragment timer does) until ``done(at)`` holds."""

    def reached() -> bool:
        at.run()
        assert not at.exception, at.exception
        return bool(done(at))

    reached.__name__ = "the page reaching the expected state"
    wait_for(reached, timeout_s, interval=0.2)
    return at


def finished(at: AppTest) -> bool:
    return bool(at.success or at.warning or at.error)


def weights_table(at: AppTest):
    return next(df.value for df in at.dataframe if "learned − OLS" in df.value.columns)


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


RESULT_CHARTS = {"result_bars", "result_loss", "result_trajectory", "result_planes"}
"""A finished run's charts, kept mounted (``dashboard/kept_chart.py``): opening another run redraws
them in place."""


def trace(figure: dict, name: str) -> dict:
    """The figure's trace called ``name`` (as its legend shows it)."""
    return next(t for t in figure["data"] if t.get("name") == name)


def test_a_run_trains_shows_learned_vs_true_vs_ols_and_exports_a_version(base):
    at = fill(open_page())
    at.button(key="train_submit").click().run()
    run_until(at, finished)

    banner = at.success[0].value
    assert "trained 20/20 epochs" in banner and "exported as version 1" in banner
    assert " end to end" in banner and "passed the quality gate: max |learned − OLS|" in banner
    table = weights_table(at)
    assert list(table.index) == ["w1", "w2", "b"]
    assert (table["learned − OLS"].abs() < 0.01).all()  # converged to the best fit of this sample
    assert (table["learned − true"].abs() < 0.3).all()  # which is near the truth at 200 noisy rows
    assert list(table["true"]) == [2.0, -1.0, 3.0]
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["max |learned − OLS|"]) < 0.01 and metrics["Batch size"] == "8"
    # bars, loss curve, weight trajectories, 3-D data view: all kept charts, none rebuilt per figure
    kept = kept_figures(at)
    assert set(kept) == RESULT_CHARTS and not at.get("plotly_chart")
    [record] = runs.list_runs(base)
    losses = [h["loss"] for h in record.history]
    assert len(losses) == 20 and trace(kept["result_loss"], "loss (MSE)")["y"] == pytest.approx(losses)
    assert trace(kept["result_trajectory"], "w1")["y"] == pytest.approx([h["w"][0] for h in record.history])
    assert trace(kept["result_bars"], "learned")["y"] == pytest.approx(list(table["learned"]))
    assert kept["result_planes"]["layout"]["scene"]["xaxis"]["title"]["text"]

    versions = registry.list_versions(base)
    assert [v.version for v in versions] == [1] and (versions[0].path / "saved_model.pb").is_file()
    run_id = versions[0].run_record.id
    assert at.query_params["run"] == run_id
    recent = next(df.value for df in at.dataframe if "status" in df.value.columns)
    assert recent.loc[run_id, "status"] == "succeeded" and recent.loc[run_id, "version"] == 1

    # a refresh (a new session with the run in the URL) shows the same result
    again = AppTest.from_file(PAGE, default_timeout=60)
    again.query_params["run"] = run_id
    again.run()
    assert "exported as version 1" in again.success[0].value
    assert weights_table(again).equals(table)


def test_large_true_weights_typed_on_the_page_are_learned_and_shown_in_the_datas_units(base):
    """The issue's case: a presenter types w0 = [100, -50] and keeps every other default; the run
    passes the gate (green, exported) and every number on the page is in the data's units."""
    at = fill(open_page(), samples=800, epochs=100, batch="auto")
    at.number_input(key="train_w0").set_value(100.0)
    at.number_input(key="train_w1").set_value(-50.0)
    at.button(key="train_submit").click().run()
    run_until(at, finished)
    assert not at.warning and "passed the quality gate" in at.success[0].value
    assert "exported as version 1" in at.success[0].value
    table = weights_table(at)
    assert list(table["true"]) == [100.0, -50.0, 3.0]
    assert (table["learned − OLS"].abs() < 0.05).all() and (table["learned − true"].abs() < 0.5).all()
    [record] = runs.list_runs(base)
    assert record.history[-1]["w"] == pytest.approx([100.0, -50.0], abs=0.5)  # the live trajectory
    assert record.history[-1]["loss"] == pytest.approx(4.0, rel=0.25)  # noise², in y's units


def test_a_run_without_auto_export_is_exported_with_one_click(base):
    at = fill(open_page(), export=False)
    at.button(key="train_submit").click().run()
    run_until(at, finished)
    assert "exported" not in at.success[0].value
    assert registry.list_versions(base) == []

    export = at.button(key="train_export_now")
    assert export.label == "Export as version 1"
    learned = list(weights_table(at)["learned"])
    export.click().run()
    assert "as version 1" in at.success[0].value
    [version] = registry.list_versions(base)
    assert version.run_record.learned.flat == learned
    assert "train_export_now" not in [b.key for b in at.button]


def test_live_progress_and_cancel_stop_the_run_and_record_it(base):
    # long enough to cancel by hand (~1 min), short enough that a failed test leaves no long orphan
    at = fill(open_page(), samples=2_000, epochs=300, batch="8")
    at.button(key="train_submit").click().run()
    run_until(at, lambda at: any(m.label == "w1" for m in at.metric) and len(kept_figures(at)) == 2
              and "left" in at.get("progress")[0].proto.text)
    # the live charts are kept charts (redrawn in place at every update, not rebuilt), holding the
    # epochs trained so far: the run's history up to now
    live = kept_figures(at)
    assert set(live) == {"live_loss", "live_weights"} and not at.get("plotly_chart")
    shown = trace(live["live_loss"], "loss (MSE)")
    history = runs.list_runs(base)[0].history  # read after the page: it may have grown since
    assert shown["x"] == [h["epoch"] for h in history[:len(shown["x"])]]
    assert shown["y"] == pytest.approx([h["loss"] for h in history[:len(shown["y"])]])
    b_shown = trace(live["live_weights"], "b")["y"]
    assert len(b_shown) == len(shown["y"])
    assert b_shown == pytest.approx([h["b"] for h in history[:len(b_shown)]])

    def grown(at: AppTest) -> bool:  # the next update redraws the same chart with more epochs
        figure = kept_figures(at).get("live_loss")
        return figure is not None and len(trace(figure, "loss (MSE)")["y"]) > len(shown["y"])

    run_until(at, grown)
    progress_text = at.get("progress")[0].proto.text
    assert progress_text.startswith("Epoch ") and "/300 · loss" in progress_text
    assert "elapsed · about" in progress_text and progress_text.endswith(" left")  # an ETA
    w0 = next(m for m in at.metric if m.label == "w1")
    assert "from true 2" in w0.proto.delta
    assert at.button(key="train_submit").disabled  # one run at a time per model folder

    # a second tab (a new session, no run in its URL) sees the same run and its settings
    other = AppTest.from_file(PAGE, default_timeout=60).run()
    assert other.button(key="train_submit").disabled
    assert other.text_input(key="train_samples").value == "2,000"  # with its thousands separator
    assert other.text_input(key="train_batch").value == "8"
    assert other.get("progress") and other.query_params["run"] == at.query_params["run"]

    at.button(key="train_cancel").click().run()
    run_until(at, finished, timeout_s=30)
    assert "was cancelled after" in at.warning[0].value
    [record] = runs.list_runs(base)
    assert record.status == "cancelled" and len(record.history) < 300
    assert registry.list_versions(base) == []
    assert not at.button(key="train_submit").disabled
    assert "train_export_now" not in [b.key for b in at.button]
    recent = next(df.value for df in at.dataframe if "status" in df.value.columns)
    assert list(recent["status"]) == ["cancelled"] and recent["quality"].isna().all()  # "–", not "ok"


def test_a_failed_run_is_shown_as_an_error_and_kept_in_the_history(base):
    record = RunRecord("20260101T000000-fa11ed", RunStatus.FAILED, started="2026-01-01T00:00:00+00:00",
                       config={"samples": 800, "epochs": 100, "noise": 2.0},
                       error="RuntimeError: out of disk space while loading data",
                       traceback="Traceback (most recent call last):\n  File ...")
    runs.save_run(base, record)
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["run"] = record.id
    at.run()
    assert "failed: RuntimeError: out of disk space while loading data" in at.error[0].value
    assert "Traceback" not in texts(at.error) + texts(at.markdown)
    recent = next(df.value for df in at.dataframe if "status" in df.value.columns)
    assert list(recent["status"]) == ["failed"]
    assert "train_export_now" not in [b.key for b in at.button]


@pytest.mark.parametrize("batch", ["abc", "0", "2,000,000", "-5", "1.5"])
def test_a_bad_batch_size_is_refused_with_an_error_and_nothing_starts(base, batch):
    at = fill(open_page(), batch=batch)
    at.button(key="train_submit").click().run()
    assert "Batch size must be 'auto' or a whole number from 1 to 1,000,000" in at.error[0].value
    assert runs.list_runs(base) == [] and not at.get("progress")


def test_a_model_folder_that_cannot_be_written_is_an_error_not_a_crash(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the model folder should be")
    monkeypatch.setenv("MODEL_BASE_PATH", str(blocker))
    at = fill(open_page())
    at.button(key="train_submit").click().run()
    assert "Cannot start this run" in at.error[0].value and "is a file, not a directory" in at.error[0].value


def test_an_unknown_run_in_the_url_is_explained(base):
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["run"] = "20990101T000000-ffffff"
    at.run()
    assert "is not recorded under this model folder" in at.info[0].value


def test_a_run_started_before_a_dashboard_restart_can_still_be_cancelled(base):
    """The run's process was started by an earlier dashboard process (here: directly, so this
    page's in-memory registry has never seen it); its pid file lets the page cancel it."""
    from pipeline.runs.process import TrainingProcess
    from pipeline.training.fit import TrainConfig

    job = TrainingProcess(TrainConfig(samples=2_000, epochs=300, batch_size=8), base).start()
    try:
        wait_for(lambda: (runs.load_run(base, job.run_id) or RunRecord("")).history != [], 120)
        at = AppTest.from_file(PAGE, default_timeout=60)
        at.query_params["run"] = job.run_id
        at.run()
        assert not at.exception, at.exception
        at.button(key="train_cancel").click().run()
        run_until(at, finished, timeout_s=60)
        assert "was cancelled after" in at.warning[0].value
        assert runs.load_run(base, job.run_id).status == "cancelled"
        assert registry.list_versions(base) == []
    finally:
        if job.running:
            job.cancel()
            job.join(60)


def test_a_diverged_run_is_a_red_failure_and_is_not_exported(base):
    """sgd at learning rate 10 for 5 epochs (the issue's case): NaN, never a green banner."""
    at = fill(open_page(), samples=800, epochs=5, batch="auto", lr=10.0)
    at.selectbox(key="train_optimizer").set_value("sgd")
    at.button(key="train_submit").click().run()
    run_until(at, finished)
    assert not at.success
    assert "failed: Training diverged" in at.error[0].value and "Nothing was exported" in at.error[0].value
    assert registry.list_versions(base) == []
    assert not {"train_export_now", "train_export_anyway"} & {b.key for b in at.button}
    assert runs.list_runs(base)[0].status == "failed"
    # its view reads: NaN loss, weights in short numbers, charts kept on the truth's scale
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Final loss (MSE)"] == "NaN" and "e" in metrics["max |learned − true|"]
    assert len(metrics["max |learned − true|"]) < 12  # 5.46e22, not -54559172937753790000000
    assert '"%.4g"' in next(df for df in at.dataframe if "learned" in df.value.columns).proto.columns
    specs = [json.dumps(figure) for figure in kept_figures(at).values()]
    assert any("Learned vs true vs OLS" in spec and "learned off the scale" in spec for spec in specs)
    assert any("the learned plane is off the scale" in spec for spec in specs)


def test_a_run_far_from_the_optimum_is_amber_and_exported_only_when_asked(base):
    """One epoch of the defaults: about 1.1 from least squares, which is not exported by itself."""
    at = fill(open_page(), samples=800, epochs=1, batch="auto")
    at.button(key="train_submit").click().run()
    run_until(at, finished)
    assert not at.success and not at.error
    warning = at.warning[0].value
    assert "the quality gate warns: Far from the least-squares optimum" in warning
    assert "max |learned − OLS| = 1." in warning and "It was not exported" in warning
    assert registry.list_versions(base) == []
    assert "train_export_now" not in [b.key for b in at.button]
    export = at.button(key="train_export_anyway")
    assert export.label == "Export anyway as version 1"
    export.click().run()
    assert at.success[0].value.endswith("as version 1.")
    assert [v.version for v in registry.list_versions(base)] == [1]
    assert "exported anyway as version 1" in at.warning[0].value


def test_samples_1_says_why_nothing_starts(base):
    at = fill(open_page(), samples=1)
    at.button(key="train_submit").click().run()
    assert "samples must be between 2 and 10,000,000, got 1" in at.error[0].value
    assert runs.list_runs(base) == [] and not at.get("progress")


def test_number_fields_show_the_exact_value_they_use(base):
    at = open_page()
    for key in ("train_noise", "train_lr", "train_w0", "train_w1", "train_b"):
        assert at.number_input(key=key).proto.format == "%g", key  # 0.004 shows 0.004, not 0.00
    at = fill(at, samples=300, epochs=2)
    at.number_input(key="train_noise").set_value(0.004)
    at.button(key="train_submit").click().run()
    run_until(at, finished)
    assert runs.list_runs(base)[0].config["noise"] == 0.004


def test_a_version_number_is_never_reused_after_a_delete(base):
    at = fill(open_page())
    at.button(key="train_submit").click().run()
    run_until(at, finished)
    registry.delete_version(base, 1)
    at.button(key="train_submit").click().run()
    run_until(at, lambda at: finished(at) and "version 2" in at.success[0].value)
    assert [v.version for v in registry.list_versions(base)] == [2]
    recent = next(df.value for df in at.dataframe if "version note" in df.value.columns)
    assert sorted(recent["version note"]) == ["deleted", "on disk"]


def test_training_another_model_name_adds_it_to_the_embedded_servers_config(tmp_path, monkeypatch):
    """The model name belongs to the session: a run for another name makes the shared embedded
    server serve that model too (it re-reads models.config), without a restart or a change for
    the sessions that use the first name."""
    from pipeline.store import serving_config

    models, run_dir = tmp_path / "models", tmp_path / "run"
    monkeypatch.setenv("MODELS_DIR", str(models))
    monkeypatch.delenv("MODEL_BASE_PATH", raising=False)
    monkeypatch.setenv("SERVING_RUN_DIR", str(run_dir))
    config = run_dir / "models.config"
    serving_config.write_for_server(config, "linear_model", models / "linear_model")
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["model_name"] = "other"
    at.run()
    fill(at, samples=200, epochs=2, export=False).button(key="train_submit").click().run()
    run_until(at, finished)
    assert [m.name for m in serving_config.read(config)] == ["linear_model", "other"]
    assert runs.list_runs(models / "other")[0].status == "succeeded"
