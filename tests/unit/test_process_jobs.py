"""Training, exporting and seeding in child processes: results, cancel, and deaths recorded."""

from __future__ import annotations

import os
import signal
import time

import pytest

from pipeline import registry, runs
from pipeline.process_jobs import TrainingProcess, export_run_in_process, seed_demo_in_process
from pipeline.training import TrainConfig

LONG_RUN = TrainConfig(samples=2_000, epochs=300, batch_size=8)
"""About a minute of training: time to cancel or kill it mid-run."""


@pytest.fixture
def started(tmp_path):
    """Start training processes; any still running when the test ends is killed."""
    jobs: list[TrainingProcess] = []

    def start(cfg: TrainConfig) -> TrainingProcess:
        jobs.append(TrainingProcess(cfg, tmp_path / "linear_model").start())
        return jobs[-1]

    yield start
    for job in jobs:
        if job.running:
            os.kill(job.pid, signal.SIGKILL)
            job.join(30)


def wait_for(predicate, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def test_a_run_in_a_child_process_records_its_result_and_exports(tmp_path, started):
    base = tmp_path / "linear_model"
    job = started(TrainConfig(samples=200, epochs=20, batch_size=8))
    job.join(120)
    record = job.record()
    assert record["status"] == "succeeded" and record["version"] == 1
    assert record["errors"]["vs_ols"] < 0.01
    assert [v.version for v in registry.list_versions(base)] == [1]


def test_cancel_ends_the_run_cancelled_without_a_version(tmp_path, started):
    base = tmp_path / "linear_model"
    job = started(LONG_RUN)
    wait_for(lambda: ((job.record() or {}).get("history") or []) != [])
    job.cancel()
    job.join(60)
    record = job.record()
    assert record["status"] == "cancelled" and 1 <= len(record["history"]) < 300
    assert record["learned"]["w"] and registry.list_versions(base) == []


def test_a_killed_training_process_is_recorded_as_failed(tmp_path, started):
    base = tmp_path / "linear_model"
    job = started(LONG_RUN)
    wait_for(lambda: job.record() is not None)
    os.kill(job.pid, signal.SIGKILL)
    job.join(30)
    record = job.record()
    assert record["status"] == "failed"
    assert "the training process ended unexpectedly (exit code -9)" in record["error"]
    assert runs.load_run(base, job.run_id)["status"] == "failed"  # saved, not only returned


def test_bad_settings_are_refused_before_a_process_starts(tmp_path):
    with pytest.raises(ValueError, match="epochs must be a whole number"):
        TrainingProcess(TrainConfig(epochs=0), tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_exporting_an_unknown_run_reports_why(tmp_path):
    with pytest.raises(ValueError, match="^there is no run 'nope' under"):
        export_run_in_process(tmp_path / "linear_model", "nope")


def test_seeding_with_a_bad_count_reports_why(tmp_path):
    with pytest.raises(ValueError, match="^--versions must be from 1 to 10, got 0$"):
        seed_demo_in_process(tmp_path / "linear_model", 0)
