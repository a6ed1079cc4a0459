"""Every run leaves a record on disk: succeeded, cancelled or failed (pipeline.runs.job)."""

import threading

import pytest

from pipeline.runs import job as jobs
from pipeline.store import records as runs
from pipeline.store import versions as registry
from pipeline.training.fit import TrainConfig


def test_successful_run_is_recorded_and_exported(tmp_path):
    record = jobs.run_training(TrainConfig(samples=200, epochs=40, batch_size=16), tmp_path)
    assert record.status == "succeeded" and record.version == 1
    assert record.quality_level == "ok" and record.timings["end_to_end_s"] > 0
    assert runs.load_run(tmp_path, record.id).version == 1
    assert registry.list_versions(tmp_path)[0].run_record.id == record.id
    assert len(record.history) == 40 and record.errors.vs_ols >= 0


def test_failed_run_is_recorded_with_its_error(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("out of memory")

    monkeypatch.setattr("pipeline.training.fit.train", boom)
    record = jobs.run_training(TrainConfig(samples=200, epochs=2), tmp_path)
    assert record.status == "failed" and "out of memory" in record.error
    assert runs.list_runs(tmp_path)[0].status == "failed"
    assert registry.list_versions(tmp_path) == []


def test_cancelled_run_is_recorded_and_not_exported(tmp_path):
    cancel = threading.Event()

    def stop_after_first_epoch(p) -> None:
        if p.epoch_end:
            cancel.set()

    record = jobs.run_training(TrainConfig(samples=2_000, epochs=200, batch_size=32), tmp_path,
                               on_progress=stop_after_first_epoch, cancel=cancel)
    assert record.status == "cancelled" and 1 <= len(record.history) < 200
    assert runs.load_run(tmp_path, record.id).status == "cancelled"
    assert registry.list_versions(tmp_path) == []


def test_bad_config_is_refused_before_a_record_exists(tmp_path):
    with pytest.raises(ValueError, match="epochs"):
        jobs.run_training(TrainConfig(epochs=0), tmp_path)
    assert not (tmp_path / "runs").exists()


def test_a_diverged_run_fails_and_is_never_exported(tmp_path):
    """sgd at learning rate 10 for 5 epochs: the loss is NaN within the first epoch."""
    record = jobs.run_training(TrainConfig(optimizer="sgd", learning_rate=10.0, epochs=5), tmp_path)
    assert record.status == "failed" and record.quality_level == "failed"
    assert "diverged" in record.error and record.version is None
    assert registry.list_versions(tmp_path) == []
    assert runs.load_run(tmp_path, record.id).status == "failed"


def test_a_run_far_from_the_optimum_is_recorded_but_not_exported_unless_asked(tmp_path):
    """One epoch of the defaults: about 1.1 from least squares, where the tolerance is 0.15."""
    cfg = TrainConfig(epochs=1)
    held = jobs.run_training(cfg, tmp_path)
    assert held.status == "succeeded" and held.quality_level == "warning"
    assert held.version is None and "quality gate warned" in held.export_held
    assert registry.list_versions(tmp_path) == []
    forced = jobs.run_training(cfg, tmp_path, export_anyway=True)
    assert forced.version == 1 and forced.export_anyway and forced.exported_anyway


def test_one_run_at_a_time_per_model_folder(tmp_path):
    """A second run on a folder whose lock names a live trainer is refused before any record."""
    import subprocess
    import sys

    from pipeline.runs import lock

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        from pipeline.state import ProcessRecord

        lock.record(tmp_path, "20260101T000000-busy01", ProcessRecord.of(sleeper.pid))
        with pytest.raises(lock.TrainingBusy, match="run 20260101T000000-busy01 is training"):
            jobs.run_training(TrainConfig(samples=200, epochs=1), tmp_path)
        assert runs.list_runs(tmp_path) == []
    finally:
        sleeper.kill()
        sleeper.wait(10)
    assert lock.holder(tmp_path) is None  # a dead holder frees the folder by itself
    done = jobs.run_training(TrainConfig(samples=200, epochs=1), tmp_path, export=False)
    assert done.status == "succeeded"
    assert lock.holder(tmp_path) is None  # released when the run ends
