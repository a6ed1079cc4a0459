"""Typed run records (pipeline.store.run_record): records written by older code (no schema
version, plain dicts) still read, with every field, and are written back key for key."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from pipeline.runs.report import run_row, version_note
from pipeline.store import records, versions
from pipeline.store.run_record import SCHEMA_VERSION, RunErrors, RunRecord, RunStatus, Weights

OLD = Path(__file__).parent / "fixtures" / "run_records_v0"
RUN_FILES = ("running", "succeeded", "cancelled", "failed", "killed")


def old(name: str) -> dict:
    return json.loads((OLD / f"{name}.json").read_text())


@pytest.fixture
def old_runs(tmp_path: Path) -> Path:
    """A model folder holding the old records as its run history and version 1."""
    base = tmp_path / "linear_model"
    (base / "runs").mkdir(parents=True)
    for name in RUN_FILES:
        data = old(name)
        (base / "runs" / f"{data['id']}.json").write_text((OLD / f"{name}.json").read_text())
    (base / "1" / "assets.extra").mkdir(parents=True)
    shutil.copy(OLD / "version_run.json", base / "1" / "assets.extra" / "run.json")
    return base


def test_old_records_read_with_their_status_and_numbers(old_runs: Path):
    by_status = {r.status: r for r in records.list_runs(old_runs)}
    assert set(by_status) == {RunStatus.RUNNING, RunStatus.SUCCEEDED, RunStatus.CANCELLED, RunStatus.FAILED}
    assert len(records.list_runs(old_runs)) == len(RUN_FILES)

    done = records.load_run(old_runs, old("succeeded")["id"])
    assert done.schema_version == 0 and done.status is RunStatus.SUCCEEDED and done.status == "succeeded"
    assert done.learned == Weights(tuple(old("succeeded")["learned"]["w"]), old("succeeded")["learned"]["b"])
    assert done.true == Weights((2.0, -1.0), 3.0)
    assert done.errors == RunErrors(**old("succeeded")["errors"])
    assert done.version == 1 and done.exported_anyway and done.quality_level == "warning"
    assert done.formats["tflite"]["path"] == "model.tflite"
    assert done.epochs_done == len(old("succeeded")["history"]) and done.config["samples"] == 100

    running = records.load_run(old_runs, old("running")["id"])
    assert running.status is RunStatus.RUNNING and not running.status.ended
    assert running.progress == old("running")["progress"]
    assert running.learned is None and running.errors is None

    failed = records.load_run(old_runs, old("failed")["id"])
    assert failed.status.ended and failed.error.startswith("DemoFailure") and failed.learned is None

    killed = records.load_run(old_runs, old("killed")["id"])
    assert killed.status is RunStatus.FAILED and killed.export_requested  # older default: asked to export
    assert killed.libraries == {} and killed.history == []


def test_an_old_versions_record_reads_as_the_run_it_came_from(old_runs: Path):
    (info,) = versions.list_versions(old_runs)
    assert info.run_record.id == old("succeeded")["id"] and info.run_record.version == 1
    assert info.created == old("version_run")["created"]
    assert info.run_record.learned == records.load_run(old_runs, info.run_record.id).learned


@pytest.mark.parametrize("name", [*RUN_FILES, "version_run"])
def test_an_old_record_is_written_back_key_for_key(name: str):
    """Other readers of the JSON (a person, a script, older dashboards) see what they saw, plus
    the schema version (and, for the dashboard's bare record of a killed run, the export flags
    every other record has, with the values older readers assumed)."""
    data = old(name)
    written = RunRecord.from_json(data).to_json()
    assert written.pop("schema_version") == SCHEMA_VERSION
    added = {k: written.pop(k) for k in set(written) - set(data)}
    assert added == ({"export_requested": True, "export_anyway": False} if name == "killed" else {})
    assert json.dumps(written, sort_keys=True) == json.dumps(data, sort_keys=True)


def test_old_records_still_make_the_history_rows(old_runs: Path):
    rows = {r["status"]: r for r in (run_row(rec, on_disk={1}) for rec in records.list_runs(old_runs))}
    assert rows["succeeded"]["version"] == 1
    assert rows["succeeded"]["version note"].startswith("exported anyway")
    assert rows["failed"]["error"].startswith("DemoFailure")
    assert rows["cancelled"]["epochs"] == f"{len(old('cancelled')['history'])}/50"
    assert version_note(records.load_run(old_runs, old("succeeded")["id"]), on_disk=set()) == "deleted"


def test_a_new_record_round_trips_and_keeps_keys_it_does_not_know(tmp_path: Path):
    record = RunRecord("20260101T000000-abc123", RunStatus.SUCCEEDED, config={"epochs": 3},
                       learned=Weights((1.0, float("nan")), 2.0), errors=RunErrors(0.1, 0.2))
    record.extra["written_by_a_newer_version"] = {"x": 1}
    records.save_run(tmp_path, record)
    on_disk = json.loads((tmp_path / "runs" / f"{record.id}.json").read_text())
    assert on_disk["schema_version"] == SCHEMA_VERSION and on_disk["status"] == "succeeded"
    assert on_disk["written_by_a_newer_version"] == {"x": 1}
    again = records.load_run(tmp_path, record.id)
    assert again.extra == {"written_by_a_newer_version": {"x": 1}} and again.errors == record.errors
    assert again.learned.w[0] == 1.0 and math.isnan(again.learned.w[1])


def test_a_hand_written_record_reads_what_it_has_and_what_is_not_one_reads_as_none(tmp_path: Path):
    partial = RunRecord.from_json({"true": {"w": [2.0, -1.0], "b": 3.0}, "note": "by hand"})
    assert partial.true == Weights((2.0, -1.0), 3.0) and partial.extra == {"note": "by hand"}
    assert partial.id == "" and partial.status is RunStatus.UNKNOWN
    assert RunRecord.from_json([1, 2]) is None and RunRecord.from_json(None) is None
    assert RunRecord.from_json({"id": "r", "status": "paused"}).status is RunStatus.UNKNOWN
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "torn.json").write_text('{"id": "torn", "sta')
    assert records.list_runs(tmp_path) == [] and records.load_run(tmp_path, "torn") is None
