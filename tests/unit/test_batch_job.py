"""dashboard/batch_job.py's process control, without Spark: a job runs while its process record
names a live process, and a job whose pid now belongs to another process reads as ended (never as
running forever) and is never signalled."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dashboard import batch_job
from pipeline.state import ProcessRecord, write_record
from tests.support.net import stop_process

SLEEP = [sys.executable, "-c", "import time; time.sleep(120)"]


@pytest.fixture
def other_process():
    """A live process group leader that is not the job's (what a recycled pid points at)."""
    process = subprocess.Popen(SLEEP, start_new_session=True)
    yield process
    stop_process(process)


def job_folder(root: Path) -> Path:
    folder = root / "20260101T000000-abcdef"
    folder.mkdir()
    (folder / batch_job.SPEC).write_text("{}")
    return folder


def test_a_job_whose_pid_was_recycled_reads_as_ended_and_its_cancel_signals_nothing(tmp_path, other_process):
    """The job's process died; the kernel gave its pid to another process (same command even):
    the record's start time tells them apart."""
    folder = job_folder(tmp_path)
    live = ProcessRecord.of(other_process.pid)
    write_record(folder / batch_job.PROCESS, dataclasses.replace(live, start_time=live.start_time - 1))
    state = batch_job.read_state(folder)
    assert not state.running and "stopped without a result" in state.error
    assert batch_job.latest_running(tmp_path) is None
    batch_job.cancel(folder)
    assert other_process.poll() is None  # not signalled


def test_a_job_folder_from_before_process_records_reads_as_ended(tmp_path, other_process):
    """Older versions wrote the bare pid to `pid`; by now that pid may be anyone's."""
    folder = job_folder(tmp_path)
    (folder / "pid").write_text(str(other_process.pid))
    assert not batch_job.read_state(folder).running
    batch_job.cancel(folder)
    assert other_process.poll() is None
    assert json.loads((folder / batch_job.ERROR).read_text()) == {"error": "cancelled"}


def test_a_job_whose_record_matches_runs_until_cancelled(tmp_path):
    folder = job_folder(tmp_path)
    child = subprocess.Popen(SLEEP, start_new_session=True)
    try:
        write_record(folder / batch_job.PROCESS, ProcessRecord.of(child.pid))
        assert batch_job.read_state(folder).running and batch_job.latest_running(tmp_path) == folder
        batch_job.cancel(folder)
        assert child.wait(30) != 0
        state = batch_job.read_state(folder)
        assert not state.running and state.error == "cancelled"
    finally:
        stop_process(child)
