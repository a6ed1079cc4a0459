"""pipeline.state: whole-file writes, one file lock, and process records that never mistake a
recycled pid (same number, even the same command) for the process they name."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pipeline import state
from pipeline.state import ProcessRecord
from tests.support.net import stop_process, wait_for

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


@pytest.fixture
def sleeper():
    """A live child in its own session (a process group leader) running SLEEPER."""
    process = subprocess.Popen(SLEEPER, start_new_session=True)
    yield process
    stop_process(process)


def hidden_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- atomic writes ------------------------------------------------------------------------------

def test_a_json_write_replaces_the_file_whole_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "deep" / "record.json"
    state.atomic_write_json(target, {"a": 1, "loss": float("nan")})
    state.atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert hidden_leftovers(target.parent) == []


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "record.json"
    state.atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), state.atomic_path(target) as tmp:
        tmp.write_text("half")
        assert tmp.name.startswith(f".record.json.tmp-{os.getpid()}-")  # hidden, with the writer's pid
        raise RuntimeError("writer died")
    assert target.read_text() == "old"
    assert hidden_leftovers(tmp_path) == []


def test_a_rewrite_keeps_the_files_mode_and_a_new_file_gets_the_usual_one(tmp_path):
    kept = tmp_path / "models.config"
    state.atomic_write_text(kept, "one")
    kept.chmod(0o600)
    state.atomic_write_text(kept, "two")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    fresh = tmp_path / "fresh.json"
    state.atomic_write_json(fresh, {})
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask


def test_leftovers_of_a_dead_writer_go_and_a_live_writers_stay(tmp_path):
    dead = tmp_path / ".model.tflite.tmp-999999999-x"
    live = tmp_path / f".model.tflite.tmp-{os.getpid()}-y"
    dead.write_text("")
    live.write_text("")
    state.remove_leftovers(tmp_path, "model.tflite")
    assert hidden_leftovers(tmp_path) == [live.name]


def test_rotate_keeps_the_newest_copies(tmp_path):
    log = tmp_path / "serving.log"
    for text in ("1st", "2nd", "3rd", "4th"):
        log.write_text(text)
        state.rotate(log, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["serving.log.1", "serving.log.2"]
    assert (tmp_path / "serving.log.1").read_text() == "4th"
    assert (tmp_path / "serving.log.2").read_text() == "3rd"


def test_prune_keeps_the_newest(tmp_path):
    files = [tmp_path / f"{n}.log" for n in range(5)]
    for f in files:
        f.write_text("")
    assert state.prune_oldest(files, keep=2) == files[:3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["3.log", "4.log"]


# --- file lock ----------------------------------------------------------------------------------

def test_the_lock_excludes_another_thread_until_released(tmp_path):
    lock = tmp_path / "sub" / ".lock"
    entered = threading.Event()

    def take() -> None:
        with state.file_lock(lock):
            entered.set()

    with state.file_lock(lock):
        thread = threading.Thread(target=take)
        thread.start()
        assert not entered.wait(0.3)  # blocked while we hold it (a slow machine only blocks longer)
    assert entered.wait(30)
    thread.join(30)


def test_a_reentrant_lock_enters_again_in_the_same_thread(tmp_path):
    lock = tmp_path / ".export.lock"
    with state.file_lock(lock, reentrant=True), state.file_lock(lock, reentrant=True):
        pass
    with state.file_lock(lock):  # released by the outermost holder
        pass


def test_the_lock_excludes_another_process(tmp_path):
    lock = tmp_path / ".lock"
    code = ("import sys; from pipeline.state import file_lock\n"
            "with file_lock(sys.argv[1]):\n    print('in', flush=True)\n")
    with state.file_lock(lock):
        child = subprocess.Popen([sys.executable, "-c", code, str(lock)], stdout=subprocess.PIPE, text=True,
                                 cwd=Path(__file__).resolve().parents[2])
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(0.5)
    assert child.communicate(timeout=60)[0] == "in\n"


# --- process records ----------------------------------------------------------------------------

def test_a_record_names_the_running_process_and_round_trips_through_disk(tmp_path, sleeper):
    record = ProcessRecord.of(sleeper.pid, port=8501)
    assert record.command == tuple(SLEEPER) and record.matches()
    state.write_record(tmp_path / "x.pid", record)
    on_disk = json.loads((tmp_path / "x.pid").read_text())
    assert on_disk["pid"] == sleeper.pid and on_disk["port"] == 8501 and on_disk["start_time"] > 0
    assert state.read_record(tmp_path / "x.pid") == record
    assert state.read_record(tmp_path / "x.pid").info == {"port": 8501}


def test_a_record_taken_right_after_popen_names_the_childs_own_command():
    """Popen returns once the exec is committed, a moment before /proc shows the new command line:
    the record waits for it, so it never names an empty (or the parent's) command."""
    for _ in range(20):
        child = subprocess.Popen(SLEEPER)
        try:
            record = ProcessRecord.of(child.pid)
            assert record.command == tuple(SLEEPER) and record.matches()
        finally:
            stop_process(child)


@pytest.mark.parametrize("recycled", [
    {"start_time": -1},                           # the pid came back with the very same command
    {"command": ("python", "-m", "something")},   # the pid now runs another program
], ids=["same-command-other-start", "other-command"])
def test_a_recycled_pid_is_never_signalled_and_reads_as_not_running(sleeper, recycled):
    real = ProcessRecord.of(sleeper.pid)
    if "start_time" in recycled:
        recycled = {"start_time": real.start_time - 1}
    stale = dataclasses.replace(real, **recycled)
    assert not stale.matches()
    assert not stale.signal(signal.SIGKILL)
    assert not stale.signal(signal.SIGKILL, group=True)
    assert sleeper.poll() is None and real.matches()  # the live process was not touched


def test_a_record_without_a_start_time_never_matches(tmp_path, sleeper):
    """Records written before start times were recorded: the pid may be anyone's by now."""
    (tmp_path / "old.pid").write_text(json.dumps({"pid": sleeper.pid, "command": SLEEPER}))
    old = state.read_record(tmp_path / "old.pid")
    assert old is not None and not old.matches() and not old.signal(signal.SIGKILL)
    assert sleeper.poll() is None


def test_a_matching_record_is_signalled_and_its_zombie_reads_as_gone(sleeper):
    record = ProcessRecord.of(sleeper.pid)
    assert record.signal(signal.SIGTERM, group=True)
    wait_for(lambda: not record.matches(), 30)  # a zombie (not reaped yet) is not running
    sleeper.wait(30)
    assert not record.signal(signal.SIGTERM)


def test_removing_a_record_spares_a_newer_processes_record(tmp_path, sleeper):
    path = tmp_path / "serving.pid"
    newer = ProcessRecord.of(sleeper.pid)
    state.write_record(path, newer)
    older = dataclasses.replace(newer, start_time=newer.start_time - 1)
    assert not state.remove_record(path, older) and path.exists()
    assert state.remove_record(path, newer) and not path.exists()


def test_unreadable_records_are_none(tmp_path):
    (tmp_path / "bare").write_text("1234")
    (tmp_path / "torn").write_text('{"pid": 12')
    assert state.read_record(tmp_path / "bare") is None
    assert state.read_record(tmp_path / "torn") is None
    assert state.read_record(tmp_path / "missing") is None
