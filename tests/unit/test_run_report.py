"""Run records as table rows, the data sample of the 3-D view, and exporting a run later."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline import model_dir
from pipeline.runs.export import export_run
from pipeline.runs.report import (
    EtaClock,
    data_sample,
    eta_seconds,
    progress_text,
    run_row,
    short_time,
    weights_rows,
)
from pipeline.store import records as runs
from pipeline.store import versions as registry
from pipeline.store.run_record import RunRecord, RunStatus, Weights
from pipeline.training.data import make_data
from pipeline.training.fit import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
RECORD_JSON = {
    "id": "20260102T030405-abcdef", "status": "succeeded", "started": "2026-01-02T03:04:05+00:00",
    "config": TrainConfig(samples=300, epochs=4, seed=5).to_dict(),
    "learned": {"w": [1.9, -0.8], "b": 2.5}, "true": {"w": [2.0, -1.0], "b": 3.0},
    "ols": {"w": [1.95, -0.9], "b": 2.75}, "errors": {"vs_true": 0.5, "vs_ols": 0.25},
    "history": [{"epoch": e, "loss": 1.0, "mae": 1.0, "w": [0, 0], "b": 0} for e in (1, 2, 3, 4)],
    "timings": {"fit_s": 1.25}, "version": 7,
}
RECORD = RunRecord.from_json(RECORD_JSON)


def record(**changes) -> RunRecord:
    """A run record: RECORD_JSON with ``changes``, read the way records on disk are read."""
    return RunRecord.from_json({**RECORD_JSON, **changes})


def test_weights_rows_give_learned_true_ols_and_the_differences():
    rows = weights_rows(RECORD)
    assert [r["parameter"] for r in rows] == ["w1", "w2", "b"]  # the names of x1, x2 on every page
    assert rows[2] == {"parameter": "b", "learned": 2.5, "true": 3.0, "OLS": 2.75,
                       "learned − true": -0.5, "learned − OLS": -0.25}
    assert weights_rows(RunRecord("x", RunStatus.FAILED, error="x")) == []


def test_run_rows_tell_how_each_run_ended():
    row = run_row(RECORD, on_disk={7})
    assert row["status"] == "succeeded" and row["started"] == "2 Jan 2026, 03:04:05 UTC"
    assert row["epochs"] == "4/4" and row["samples"] == 300 and row["version"] == 7
    assert row["version note"] == "on disk"
    failed = run_row(RunRecord("x", RunStatus.FAILED, config={"epochs": 50}, error="ValueError: bad"))
    assert failed["status"] == "failed" and failed["error"] == "ValueError: bad"
    assert failed["epochs"] == "0/50"
    assert failed["max |learned − true|"] is None and failed["version"] is None
    assert short_time(None) == ""


def test_run_rows_mark_deleted_versions_and_runs_held_by_the_quality_gate():
    assert run_row(RECORD, on_disk={1, 2})["version note"] == "deleted"
    held = run_row(record(version=None, export_held="not exported automatically: ...",
                          quality={"level": "warning", "reasons": ["far"], "numbers": {}}))
    assert held["version note"] == "held: quality warning" and held["quality"] == "warning"
    anyway = run_row(record(exported_anyway=True), on_disk={7})
    assert anyway["version note"] == "exported anyway (quality warning)"


def test_a_cancelled_run_has_no_quality_verdict_in_the_history():
    cancelled = run_row(record(status="cancelled", version=None,
                               quality={"level": "ok", "reasons": [], "numbers": {}}))
    assert cancelled["status"] == "cancelled" and cancelled["quality"] is None  # shown as "–", not "ok"
    assert run_row(record(quality={"level": "ok", "reasons": [], "numbers": {}}))["quality"] == "ok"


def _reports(setup_s: float, fit_s: float, warmup_s: float = 2.0, every_s: float = 0.5):
    """Progress reports ``(elapsed, fraction)`` of a run measured on this machine (3,000,000 rows):
    the first report comes after ``setup_s`` (data, OLS, model, tracing the first batch), the next
    ``warmup_s`` go at half pace, then a steady pace finishes the fit in ``fit_s``."""
    pace = 1.0 / (fit_s - warmup_s / 2)
    reports, t = [], setup_s
    while (f := pace * (min(t - setup_s, warmup_s) / 2 + max(0.0, t - setup_s - warmup_s))) < 1.0:
        reports.append((t, f))
        t += every_s
    return reports, setup_s + fit_s


def test_the_eta_is_right_from_the_first_time_it_is_shown_and_does_not_jump():
    """An 8-minute fit that starts 11 s after the click: the ETA is held back until the pace is
    known, then stays within 20% of the truth (elapsed / fraction said 'about 16 min' at first)."""
    reports, end = _reports(setup_s=11.0, fit_s=480.0)
    clock = EtaClock()
    shown = [(t, eta) for t, f in reports if (eta := clock.update(t, f)) is not None]
    assert shown[0][0] < 11.0 + 0.1 * 480  # shown early in the run
    for t, eta in shown[:-1]:
        assert abs(eta - (end - t)) <= 0.2 * (end - t) + 1.0, (t, eta, end - t)
    progress = {"epoch": 3, "epochs": 100, "loss": 4.0, "elapsed_s": 60.0, "fraction": 0.1, "eta_s": 125.0}
    assert eta_seconds(progress) == 125.0 and progress_text(progress).endswith("about 2 min 5 s left")
    assert eta_seconds({**progress, "eta_s": None}) is None  # too early to tell: no guess
    assert eta_seconds({"elapsed_s": 10.0, "fraction": 0.5}) == 10.0  # a record written before eta_s


def test_times_are_shown_in_local_time_without_iso_separators(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        assert short_time("2026-01-02T03:04:05+00:00") == "2 Jan 2026, 04:04:05 CET"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_data_sample_is_exactly_the_first_training_rows():
    x, y = data_sample(RECORD, max_points=50)
    full_x, full_y = make_data(TrainConfig.from_dict(RECORD.config).data_spec())
    assert x.shape == (50, 2) and y.shape == (50, 1)
    assert np.array_equal(x, full_x[:50]) and np.array_equal(y, full_y[:50])
    x_all, _ = data_sample(RECORD, max_points=10_000)
    assert len(x_all) == 300


def test_the_dashboard_modules_do_not_import_tensorflow():
    modules = ", ".join(["pipeline.runs.report", "pipeline.runs.export", "pipeline.demo",
                         "pipeline.runs.process", "dashboard.charts", "dashboard.session",
                         "dashboard.clients", "dashboard.messages", "dashboard.tutorial",
                         "dashboard.tutorial_run"])
    code = (f"import sys; import {modules}; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TensorFlow imported'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


@pytest.fixture(scope="module")
def unexported_run(tmp_path_factory) -> tuple[Path, RunRecord]:
    from pipeline.runs.job import run_training

    base = tmp_path_factory.mktemp("export") / "linear_model"
    return base, run_training(TrainConfig(samples=200, epochs=40, batch_size=16), base, export=False)


def test_export_run_serves_exactly_the_learned_weights_and_updates_the_record(unexported_run):
    import tensorflow as tf

    base, record = unexported_run
    assert registry.list_versions(base) == []
    info = export_run(base, record.id)
    assert info.version == 1 and (info.path / "saved_model.pb").is_file()
    sig = model_dir.read_signature(info.path)
    assert list(sig.inputs) == ["inputs"] and sig.inputs["inputs"].shape == (-1, 2)
    served = tf.saved_model.load(str(info.path)).signatures["serving_default"]
    out = next(iter(served(inputs=tf.constant([[1.0, 2.0]])).values())).numpy()
    w, b = record.learned.w, record.learned.b
    assert out[0, 0] == pytest.approx(w[0] + 2 * w[1] + b, abs=1e-5)
    stored = runs.load_run(base, record.id)
    assert stored.version == 1 and stored.version_path == str(info.path)
    assert info.run_record.id == record.id and info.run_record.exported_after_run is True
    with pytest.raises(ValueError, match="already exported as version 1"):
        export_run(base, record.id)


def test_export_run_refuses_runs_that_did_not_finish(tmp_path):
    runs.save_run(tmp_path, RunRecord("r-cancelled", RunStatus.CANCELLED, learned=Weights((1.0,), 0.0)))
    runs.save_run(tmp_path, RunRecord("r-failed", RunStatus.FAILED, error="boom"))
    with pytest.raises(ValueError, match="r-cancelled cancelled; only a run that finished training"):
        export_run(tmp_path, "r-cancelled")
    with pytest.raises(ValueError, match="r-failed failed"):
        export_run(tmp_path, "r-failed")
    with pytest.raises(ValueError, match="there is no run 'nope'"):
        export_run(tmp_path, "nope")
    assert registry.list_versions(tmp_path) == []


def test_a_run_the_quality_gate_warned_about_is_exported_only_anyway(tmp_path):
    from pipeline.runs.job import run_training

    base = tmp_path / "linear_model"
    record = run_training(TrainConfig(epochs=1), base)  # one epoch: ends ~1.1 from OLS
    assert record.status == "succeeded" and record.quality_level == "warning"
    assert record.version is None and "quality gate warned" in record.export_held
    assert registry.list_versions(base) == []
    with pytest.raises(ValueError, match="did not pass the quality gate"):
        export_run(base, record.id)
    info = export_run(base, record.id, anyway=True)
    stored = runs.load_run(base, record.id)
    assert info.version == 1 and stored.exported_anyway and stored.export_held is None
    assert "export_held" not in (base / "runs" / f"{record.id}.json").read_text()
