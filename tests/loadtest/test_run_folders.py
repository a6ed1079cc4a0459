"""Run folders without a server: a run whose process died reads as failed (its levels kept, its log
named), old finished runs are pruned and running ones never, and a request is taken from the
Predict page's request history."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.client import history
from pipeline.loadtest import job
from pipeline.loadtest.spec import LoadSpec, LoadTestError
from pipeline.loadtest.sweep import SweepResult
from pipeline.loadtest.target import body_from_history
from pipeline.state import ProcessRecord, atomic_write_json, write_record

SPEC = LoadSpec(url="http://127.0.0.1:8501", model="m")


def folder_with(root: Path, name: str, status: str, record: ProcessRecord | None = None) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    atomic_write_json(folder / job.SPEC, {"spec": SPEC.to_json(), "started": "2026-01-01 00:00:00"})
    atomic_write_json(folder / job.RESULT, SweepResult(status=status).to_json())
    if record is not None:
        write_record(folder / job.PROCESS, record)
    return folder


def test_a_run_whose_process_died_reads_as_failed_and_names_its_log(tmp_path: Path) -> None:
    gone = ProcessRecord(os.getpid(), 1, ("python", "-m", "pipeline.loadtest.job", "x"))  # not this process
    folder = folder_with(tmp_path, "20260101T000000-aaaaaa", "running", gone)
    state = job.read_run(folder)
    assert state.status == "failed" and not state.running
    assert str(folder / job.LOG) in state.message
    job.stop_run(folder)  # signals nothing: the record names no live process of ours
    assert job.read_run(folder).status == "stopped"


def test_old_finished_runs_are_pruned_and_running_ones_kept(tmp_path: Path) -> None:
    me = ProcessRecord.current()
    running = folder_with(tmp_path, "20260101T000000-aaaaaa", "running", me)
    old = [folder_with(tmp_path, f"20260101T00000{i}-bbbbbb", "done") for i in range(1, 5)]
    job.prune(tmp_path, keep=2)
    assert running.is_dir() and job.read_run(running).running
    assert [f.is_dir() for f in old] == [False, False, True, True]


def test_the_newest_answered_request_of_the_history_is_the_body(tmp_path: Path) -> None:
    with pytest.raises(LoadTestError, match="send one from the Predict page"):
        body_from_history(tmp_path)
    history.record_request(tmp_path, transport="REST", url="u", model="m", target={},
                           request={"instances": [[1.0, 2.0]]}, rows=1, status=200)
    history.record_request(tmp_path, transport="REST", url="u", model="m", target={},
                           request={"instances": [[9.0]]}, rows=1, error="HTTP 400")
    history.record_request(tmp_path, transport="gRPC", url="u", model="m", target={},
                           request={"model_spec": {}, "inputs": [[3.0, 4.0]]}, rows=1, status=0)
    body, source = body_from_history(tmp_path)
    assert body == {"instances": [[1.0, 2.0]]} and source.startswith("request history entry ")
