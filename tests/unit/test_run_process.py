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

from pipeline.pids import process_matches
from pipeline.runs.process import (
    TrainingProcess,
    export_run_in_process,
    pid_path,
    read_pid_file,
    seed_demo_in_process,
)
from pipeline.store import records as runs
from pipeline.store import versions as registry
from pipeline.training.fit import TrainConfig
from tests.support.net import wait_for

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
    assert record["status"] == "succeeded" and record["version"] == 1
    assert record["errors"]["vs_ols"] < 0.01
    assert [v.version for v in registry.list_versions(base)] == [1]


def test_cancel_ends_the_run_cancelled_without_a_version(tmp_path, started):
    base = tmp_path / "linear_model"
    job = started(LONG_RUN)
    wait_for(lambda: ((job.record() or {}).get("history") or []) != [], WAIT_S)
    job.cancel()
    job.join(60)
    record = job.record()
    assert record["status"] == "cancelled" and 1 <= len(record["history"]) < 300
    assert record["learned"]["w"] and registry.list_versions(base) == []


def test_a_killed_training_process_is_recorded_as_failed(tmp_path, started):
    base = tmp_path / "linear_model"
    job = started(LONG_RUN)
    wait_for(lambda: job.record() is not None, WAIT_S)
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


def test_the_childs_pid_and_command_are_recorded(tmp_path, started):
    base = tmp_path / "linear_model"
    job = started(LONG_RUN)
    pid, command = read_pid_file(base, job.run_id)
    assert pid == job.pid
    assert command[1:4] == ["-m", "pipeline.runs.process", "--base-path"]
    # between fork and exec the child still shows our command line; then exactly the recorded one
    wait_for(lambda: process_matches(pid, command), 30)
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1] == [c.encode() for c in command]


def test_after_a_dashboard_restart_a_running_run_can_still_be_cancelled(tmp_path, started):
    """A new dashboard process knows nothing in memory; the pid file finds the run again."""
    base = tmp_path / "linear_model"
    job = started(LONG_RUN)
    wait_for(lambda: ((job.record() or {}).get("history") or []) != [], WAIT_S)
    found = TrainingProcess.attach(base, job.run_id)
    assert found is not None and found.running and found.pid == job.pid
    found.cancel()
    job.join(60)
    assert job.record()["status"] == "cancelled"
    assert TrainingProcess.attach(base, job.run_id) is None  # over: nothing left to cancel
    assert registry.list_versions(base) == []


def test_a_reused_pid_is_never_signalled(tmp_path):
    base = tmp_path / "linear_model"
    runs.save_run(base, {"id": "r1", "status": "running", "config": {}})
    # this test process holds the recorded pid now, running another command
    pid_path(base, "r1").write_text(json.dumps({"pid": os.getpid(), "command": ["python", "-m", "x"]}))
    assert TrainingProcess.attach(base, "r1") is None


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
        wait_for(lambda: ((runs.load_run(base, run_id) or {}).get("history") or []) != [], WAIT_S)
        dashboard.kill()  # SIGKILL: no atexit, no chance to stop its child
        dashboard.wait(30)
        wait_for(lambda: (runs.load_run(base, run_id) or {}).get("status") != "running", WAIT_S)
        record = runs.load_run(base, run_id)
        assert record["status"] == "cancelled" and len(record["history"]) < 300
        assert registry.list_versions(base) == []
    finally:
        dashboard.kill()
        found = read_pid_file(base, run_id)
        if found is not None and TrainingProcess.attach(base, run_id) is not None:
            os.kill(found[0], signal.SIGKILL)
