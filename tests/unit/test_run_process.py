"""Training, exporting and seeding in child processes (pipeline.runs.process): results, cancel,
deaths recorded, and no orphans (a restarted dashboard can cancel, a dead dashboard's run stops)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import state
from pipeline.runs import lock
from pipeline.runs.process import (
    LOGS_KEPT,
    TrainingProcess,
    export_run_in_process,
    seed_demo_in_process,
)
from pipeline.store import records as runs
from pipeline.store import versions as registry
from pipeline.store.run_record import RunRecord, RunStatus
from pipeline.training.fit import TrainConfig
from tests.support.net import stop_process, wait_for

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 120.0

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


def test_a_run_in_a_child_process_records_its_result_and_exports(tmp_path, started):
    base = tmp_path / "linear_model"
    job = started(TrainConfig(samples=200, epochs=20, batch_size=8))
    job.join(120)
    record = job.record()
    assert record.status == "succeeded" and record.version == 1
    assert record.errors.vs_ols < 0.01
    assert [v.version for v in registry.list_versions(base)] == [1]


def test_cancel_ends_the_run_cancelled_without_a_version(tmp_path, started):
    base = tmp_path / "linear_model"
    job = started(LONG_RUN)
    wait_for(lambda: (job.record() or RunRecord("")).history != [], WAIT_S)
    job.cancel()
    job.join(60)
    record = job.record()
    assert record.status == "cancelled" and 1 <= len(record.history) < 300
    assert record.learned.w and registry.list_versions(base) == []


def test_a_killed_training_process_is_recorded_as_failed(tmp_path, started):
    base = tmp_path / "linear_model"
    job = started(LONG_RUN)
    wait_for(lambda: job.record() is not None, WAIT_S)
    os.kill(job.pid, signal.SIGKILL)
    job.join(30)
    record = job.record()
    assert record.status == "failed"
    assert "the training process ended unexpectedly (exit code -9)" in record.error
    assert runs.load_run(base, job.run_id).status == "failed"  # saved, not only returned


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


def test_the_childs_process_record_is_the_folders_training_lock(tmp_path, started):
    base = tmp_path / "linear_model"
    job = started(LONG_RUN)
    holder = lock.holder(base)
    assert holder.run_id == job.run_id and holder.pid == job.pid and holder.process.matches()
    assert holder.process.command[1:4] == ("-m", "pipeline.runs.process", "--base-path")
    assert holder.process.start_time == state.start_time(job.pid)


def test_a_finished_run_leaves_no_process_record_and_old_logs_are_pruned(tmp_path):
    """No pid file per run: the only record is the folder's training lock, gone when the run
    ends; logs of the newest LOGS_KEPT runs stay."""
    base = tmp_path / "linear_model"
    runs_dir = runs.runs_dir(base)
    runs_dir.mkdir(parents=True)
    old_logs = [runs_dir / f".20200101T0000{n:02d}-old{n:03d}.log" for n in range(LOGS_KEPT + 5)]
    for log in old_logs:
        log.write_text("old run\n")
    (runs_dir / ".20200101T000000-old000.pid").write_text('{"pid": 1, "command": []}')  # older versions' file
    job = TrainingProcess(TrainConfig(samples=200, epochs=2, batch_size=8), base, export=False).start()
    job.join(120)
    assert job.record().status == "succeeded"
    left = sorted(p.name for p in base.rglob("*") if p.suffix == ".pid" or p.name == lock.LOCK_NAME)
    assert left == []
    logs = sorted(p.name for p in runs_dir.glob(".*.log"))
    assert len(logs) == LOGS_KEPT and f".{job.run_id}.log" in logs
    assert logs[:-1] == [p.name for p in old_logs[-(LOGS_KEPT - 1):]]  # the oldest went


def test_after_a_dashboard_restart_a_running_run_can_still_be_cancelled(tmp_path, started):
    """A new dashboard process knows nothing in memory; the pid file finds the run again."""
    base = tmp_path / "linear_model"
    job = started(LONG_RUN)
    wait_for(lambda: (job.record() or RunRecord("")).history != [], WAIT_S)
    found = TrainingProcess.attach(base, job.run_id)
    assert found is not None and found.running and found.pid == job.pid
    found.cancel()
    job.join(60)
    assert job.record().status == "cancelled"
    assert TrainingProcess.attach(base, job.run_id) is None  # over: nothing left to cancel
    assert registry.list_versions(base) == []


@pytest.mark.parametrize("same_command", [True, False], ids=["same-command-other-start", "other-command"])
def test_a_reused_pid_is_never_attached_nor_signalled(tmp_path, same_command):
    """The run's process is gone and its pid belongs to another process now (even one running the
    trainer's very command line: only the start time tells them apart)."""
    base = tmp_path / "linear_model"
    runs.save_run(base, RunRecord("r1", RunStatus.RUNNING))
    newcomer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        live = state.ProcessRecord.of(newcomer.pid)
        command = live.command if same_command else ("python", "-m", "pipeline.runs.process")
        (base / lock.LOCK_NAME).write_text(json.dumps({
            "run_id": "r1", "pid": newcomer.pid, "start_time": live.start_time - same_command,
            "command": list(command)}))
        assert lock.holder(base) is None  # the folder is free
        assert TrainingProcess.attach(base, "r1") is None  # nothing to cancel
        assert newcomer.poll() is None
    finally:
        stop_process(newcomer)


DASHBOARD = """
import sys
from pipeline.runs.process import TrainingProcess
from pipeline.training.fit import TrainConfig
job = TrainingProcess(TrainConfig(samples=2_000, epochs=300, batch_size=8), sys.argv[1]).start()
print(job.run_id, flush=True)
sys.stdin.readline()
"""


def test_a_run_whose_dashboard_dies_cancels_itself_and_exports_nothing(tmp_path):
    base = tmp_path / "linear_model"
    dashboard = subprocess.Popen([sys.executable, "-c", DASHBOARD, str(base)], cwd=ROOT, text=True,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    run_id = dashboard.stdout.readline().strip()
    try:
        wait_for(lambda: (runs.load_run(base, run_id) or RunRecord("")).history != [], WAIT_S)
        dashboard.kill()  # SIGKILL: no atexit, no chance to stop its child
        dashboard.wait(30)
        wait_for(lambda: (runs.load_run(base, run_id) or RunRecord("")).status != "running", WAIT_S)
        record = runs.load_run(base, run_id)
        assert record.status == "cancelled" and len(record.history) < 300
        assert registry.list_versions(base) == []
    finally:
        dashboard.kill()
        found = lock.holder(base)
        if found is not None:
            found.process.signal(signal.SIGKILL)
