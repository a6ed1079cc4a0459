"""Every run leaves a record on disk: succeeded, cancelled or failed."""

import pytest

from pipeline import jobs, registry, runs
from pipeline.training import TrainConfig


def test_successful_run_is_recorded_and_exported(tmp_path):
    record = jobs.run_training(TrainConfig(samples=200, epochs=10), tmp_path)
    assert record["status"] == "succeeded" and record["version"] == 1
    assert runs.load_run(tmp_path, record["id"])["version"] == 1
    assert registry.list_versions(tmp_path)[0].run_record["id"] == record["id"]
    assert len(record["history"]) == 10 and record["errors"]["vs_ols"] >= 0


def test_failed_run_is_recorded_with_its_error(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("out of memory")

    monkeypatch.setattr("pipeline.training.train", boom)
    record = jobs.run_training(TrainConfig(samples=200, epochs=2), tmp_path)
    assert record["status"] == "failed" and "out of memory" in record["error"]
    assert runs.list_runs(tmp_path)[0]["status"] == "failed"
    assert registry.list_versions(tmp_path) == []


def test_cancelled_job_is_recorded_and_not_exported(tmp_path):
    job = jobs.TrainingJob(TrainConfig(samples=50_000, epochs=200, batch_size=32), tmp_path).start()
    job.cancel()
    job.join(60)
    assert not job.running
    assert job.record()["status"] == "cancelled"
    assert runs.load_run(tmp_path, job.run_id)["status"] == "cancelled"
    assert registry.list_versions(tmp_path) == []


def test_bad_config_is_refused_before_a_record_exists(tmp_path):
    with pytest.raises(ValueError, match="epochs"):
        jobs.TrainingJob(TrainConfig(epochs=0), tmp_path)
    assert not (tmp_path / "runs").exists()
