"""A sweep in a child process, with its state in a run folder (the Load page's runs).

:func:`start_run` writes ``spec.json`` into a new folder and starts ``python -m pipeline.loadtest.job
FOLDER``; the child records itself in ``process.json`` (pid, start time, command line:
`pipeline.state.ProcessRecord`), rewrites ``progress.json`` twice a second while a level runs and
``result.json`` after every level and at the end, and writes its output to ``log.txt``. Readers only
read these files (:func:`read_run`), so a page rerun, a reload or a second tab never loses a run,
and a saved run can be compared with another long after. :func:`stop_run` asks the child to stop
(SIGTERM: the level in progress ends at once and is kept as partial) and, if it has not ended
within a second or two, ends its whole process group; either way the run reads as stopped at once.
The child stops itself if the process that started it dies (`pipeline.lifeline`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline.loadtest.results import LevelResult
from pipeline.loadtest.spec import Level, LoadSpec
from pipeline.loadtest.sweep import FAILED, STOPPED, Events, SweepResult, run_sweep
from pipeline.settings import PROJECT_ROOT
from pipeline.state import ProcessRecord, atomic_write_json, read_json, read_record, write_record

SPEC, PROCESS, PROGRESS = "spec.json", "process.json", "progress.json"
RESULT, LOG = "result.json", "log.txt"
RUNNING = "running"
KEEP_RUNS = 30
"""Finished runs kept per folder; older ones are removed when a run starts."""
STOP_GRACE_S = 2.0
"""How long a stopped child may take to write its partial result before its group is killed."""

_children: dict[Path, subprocess.Popen] = {}
"""Runs this process started: polling their Popen reaps an ended child (no zombie)."""


@dataclass(frozen=True)
class RunState:
    """A run as its folder tells it now."""

    folder: Path
    spec: LoadSpec
    status: str
    """``running``, ``done``, ``stopped`` or ``failed``."""
    message: str
    result: SweepResult
    phase: str = ""
    progress: dict[str, Any] = field(default_factory=dict)
    """While a level runs: ``level`` (label), ``seconds`` into its window, ``ok``, ``errors``."""
    started: str = ""

    @property
    def running(self) -> bool:
        return self.status == RUNNING

    @property
    def name(self) -> str:
        return self.folder.name


def runs_root(run_dir: Path | str) -> Path:
    """Where load-test runs live: ``<run dir>/loadtest/``."""
    return Path(run_dir) / "loadtest"


def _new_folder(root: Path) -> Path:
    folder = Path(root) / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    folder.mkdir(parents=True)
    return folder


def start_run(root: Path | str, spec: LoadSpec, keep: int = KEEP_RUNS) -> Path:
    """Start ``spec`` in a child process in a new run folder under ``root``; return the folder."""
    prune(Path(root), keep)
    folder = _new_folder(Path(root))
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    atomic_write_json(folder / SPEC, {"spec": spec.to_json(), "started": started}, indent=2)
    env = {**os.environ, "SERVING_PARENT_PID": str(os.getpid()), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "pipeline.loadtest.job", str(folder)]
    with (folder / LOG).open("w") as log:
        child = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    _children[folder.resolve()] = child
    # Popen returns after the exec: /proc shows the child's own command line (a child already gone
    # gets a record that never matches)
    record = ProcessRecord.of(child.pid) or ProcessRecord(child.pid, None, tuple(command))
    write_record(folder / PROCESS, record)
    return folder


def run_folders(root: Path | str) -> list[Path]:
    """Every run folder under ``root``, oldest first (their names start with the start time)."""
    root = Path(root)
    return sorted(p for p in root.glob("*") if (p / SPEC).is_file()) if root.is_dir() else []


def _alive(folder: Path) -> bool:
    child = _children.get(folder.resolve())
    if child is not None:
        if child.poll() is None:
            return True
        _children.pop(folder.resolve(), None)
    record = read_record(folder / PROCESS)
    return record is not None and record.matches()


def read_run(folder: Path | str) -> RunState:
    """The run in ``folder`` as its files say now. A child that died without a final result is a
    failed run whose message names its log; its levels so far are kept."""
    folder = Path(folder)
    saved = read_json(folder / SPEC) or {}
    spec = LoadSpec.from_json(saved.get("spec", {"url": "", "model": ""}))
    data = read_json(folder / RESULT)
    result = SweepResult.from_json(data) if isinstance(data, dict) else SweepResult(status=RUNNING)
    progress = read_json(folder / PROGRESS) or {}
    status, message = result.status, result.message
    if status == RUNNING and not _alive(folder):
        status = FAILED
        message = f"the load test process ended without a result; see {folder / LOG}"
    return RunState(folder, spec, status, message, result, str(progress.get("phase", "")),
                    dict(progress.get("level") or {}), str(saved.get("started", "")))


def stop_run(folder: Path | str) -> None:
    """Stop a running run now: SIGTERM to its child (the level in progress ends and is kept as
    partial), then, after :data:`STOP_GRACE_S`, SIGKILL to its process group (its workers too).
    Only the very process its record names is signalled. The run reads as stopped afterwards."""
    folder = Path(folder)
    record = read_record(folder / PROCESS)
    if record is None:
        return
    record.signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while _alive(folder) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(folder):
        record.signal(signal.SIGKILL, group=True)
    data = read_json(folder / RESULT)
    result = SweepResult.from_json(data) if isinstance(data, dict) else SweepResult()
    if result.status == RUNNING or not isinstance(data, dict):
        result.status, result.message = STOPPED, "stopped before the end; the levels measured so far are kept"
        atomic_write_json(folder / RESULT, result.to_json())


def prune(root: Path, keep: int = KEEP_RUNS) -> None:
    """Delete finished runs beyond the newest ``keep`` (running ones are never touched)."""
    folders = run_folders(root)
    for folder in folders[:-keep] if keep else folders:
        if not _alive(folder):
            shutil.rmtree(folder, ignore_errors=True)


def _run(folder: Path) -> int:
    """The child's body: run the sweep, keeping its state in the folder; status 1 when it failed."""
    from pipeline.lifeline import watch_parent

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    watch_parent(stop.set)  # the dashboard is gone: end the run (its workers follow this process)
    spec = LoadSpec.from_json((read_json(folder / SPEC) or {})["spec"])
    running = SweepResult(status=RUNNING)
    atomic_write_json(folder / RESULT, running.to_json())
    last_write = [0.0]

    def phase(text: str) -> None:
        print(text, flush=True)
        atomic_write_json(folder / PROGRESS, {"phase": text, "level": None})

    def progress(level: Level, seconds: float, ok: int, errors: int) -> None:
        if time.monotonic() - last_write[0] < 0.4:
            return
        last_write[0] = time.monotonic()
        atomic_write_json(folder / PROGRESS, {"phase": f"{level.label}: measuring", "level": {
            "label": level.label, "concurrency": level.concurrency, "rate": level.rate,
            "seconds": round(seconds, 2), "of": spec.duration_s, "ok": ok, "errors": errors}})

    def level_done(level: LevelResult, so_far: SweepResult) -> None:
        print(f"{level.label}: {level.requests_per_second:,.1f} req/s, {level.errors} errors", flush=True)
        atomic_write_json(folder / RESULT, replace(so_far, status=RUNNING).to_json())

    result = run_sweep(spec, Events(phase=phase, progress=progress, level=level_done), stop)
    atomic_write_json(folder / RESULT, result.to_json())
    atomic_write_json(folder / PROGRESS, {"phase": result.message or result.status, "level": None})
    print(f"{result.status}: {result.message}", flush=True)
    return 1 if result.status == FAILED else 0


if __name__ == "__main__":
    sys.exit(_run(Path(sys.argv[1])))
