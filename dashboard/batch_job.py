"""A Spark batch-scoring job started from the Batch page, run as a child process with its state on disk.

`start_job` writes the job's folder (`spec.json`, the input when uploaded) and starts
`python -m dashboard.batch_job FOLDER`, whose process record (pid, start time, command line:
`pipeline.state.ProcessRecord`) goes to `process.json`; the child calls `pipeline.batch.score_file`,
appends every progress report to `progress.jsonl`, then writes `report.json` (or `error.json`).
The page only reads these files (`read_state`), so a rerun, a page switch or a browser reload never
loses a job, and neither Spark nor TensorFlow is ever imported by the dashboard. A job runs while
its record names a live process: a job whose process died, even if its pid now belongs to another
program, reads as ended, and cancelling it signals nothing. The child stops itself if the dashboard
dies (`pipeline.lifeline`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.state import ProcessRecord, atomic_write_json, read_json, read_record, write_record

SPEC, PROGRESS, REPORT, ERROR = "spec.json", "progress.jsonl", "report.json", "error.json"
LOG, PROCESS = "log.txt", "process.json"
OUTPUT, REJECTS = "predictions.parquet", "predictions.rejects.parquet"
CANCELLED = "cancelled"
"""The error of a job stopped by `cancel` (what the page shows as cancelled, not failed)."""
KEEP_JOBS = 10
"""Finished jobs kept on disk (their uploads and outputs); older ones are removed when a job starts."""

_children: dict[Path, subprocess.Popen] = {}
"""Jobs this process started; a thread per child waits for it, so an ended child never stays a
zombie."""


@dataclass(frozen=True)
class JobState:
    """What a job's folder says now: its last progress report and how it ended, if it has."""

    folder: Path
    phase: str
    fraction: float
    message: str
    report: dict[str, Any] | None
    error: str | None
    running: bool


def jobs_root(run_dir: Path) -> Path:
    """Where the dashboard keeps batch jobs: `<run dir>/batch/` (outside the model folders)."""
    return Path(run_dir) / "batch"


def safe_name(name: str) -> str:
    """An uploaded file's name reduced to a harmless basename that keeps its extension."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name).lstrip(".")
    return base or "rows.csv"


def start_job(root: Path, *, base_path: Path, version: int | None, master: str = "local[2]",
              input_path: Path | None = None, upload: tuple[str, bytes] | None = None) -> Path:
    """Create a job folder under `root` and start scoring in a child process; return the folder.

    Give either `input_path` (a file on this machine) or `upload` (`(file name, bytes)`, saved into
    the folder). The output and rejects are written inside the folder.
    """
    if (input_path is None) == (upload is None):
        raise ValueError("give exactly one of input_path or upload")
    prune(Path(root))
    folder = Path(root) / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    folder.mkdir(parents=True)
    if upload is not None:
        input_path = folder / safe_name(upload[0])
        input_path.write_bytes(upload[1])
    spec = {"input": str(input_path), "output": str(folder / OUTPUT), "rejects": str(folder / REJECTS),
            "model_base_path": str(base_path), "version": version, "master": master}
    atomic_write_json(folder / SPEC, spec, indent=2)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "SERVING_PARENT_PID": str(os.getpid()),
           "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "dashboard.batch_job", str(folder)]
    with (folder / LOG).open("w") as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env=env, start_new_session=True)
    _children[folder.resolve()] = child
    # collect its exit status the moment it ends, whether or not a page reads the job again (a
    # job that writes its report, then exits, would otherwise stay a zombie under the dashboard)
    threading.Thread(target=child.wait, name=f"reap {folder.name}", daemon=True).start()
    # Popen returns after the exec: /proc shows the child's own start time and command line (a
    # child already gone gets a record that never matches)
    record = ProcessRecord.of(child.pid) or ProcessRecord(child.pid, None, tuple(command))
    write_record(folder / PROCESS, record)
    return folder


def job_folders(root: Path) -> list[Path]:
    """Every job folder under `root`, oldest first (their names start with the start time)."""
    return sorted(p for p in Path(root).glob("*") if (p / SPEC).is_file()) if Path(root).is_dir() else []


def latest_running(root: Path) -> Path | None:
    """The newest job that is still running, so a new browser session finds the job it started."""
    return next((f for f in reversed(job_folders(root)) if read_state(f).running), None)


def prune(root: Path, keep: int = KEEP_JOBS) -> None:
    """Delete finished jobs beyond the newest `keep` (running ones are never touched)."""
    for folder in job_folders(root)[:-keep] if keep else job_folders(root):
        if not read_state(folder).running:
            shutil.rmtree(folder, ignore_errors=True)


def _running(folder: Path) -> bool:
    """Whether the job's process runs: our own child until it exits (polled, so it is reaped),
    else the very process its record names. No record (or a bare pid from older versions)
    counts as ended."""
    child = _children.get(folder.resolve())
    if child is not None:
        if child.poll() is None:
            return True
        _children.pop(folder.resolve(), None)  # reaped: from now on, its record says it ended
    record = read_record(folder / PROCESS)
    return record is not None and record.matches()


def read_state(folder: Path) -> JobState:
    """The job's state from its files. A child that died without a report or error is a failure
    whose message points at the job's log."""
    folder = Path(folder)
    phase, fraction, message = "starting", 0.0, "starting Spark…"
    lines = (folder / PROGRESS).read_text().splitlines() if (folder / PROGRESS).is_file() else []
    for line in reversed(lines):
        try:
            last = json.loads(line)
        except ValueError:
            continue  # a line being written right now
        phase, fraction, message = last["phase"], float(last["fraction"]), last["message"]
        break
    report = read_json(folder / REPORT)
    error = (read_json(folder / ERROR) or {}).get("error")
    running = report is None and error is None and _running(folder)
    if report is None and error is None and not running:
        error = f"the scoring process stopped without a result; see {folder / LOG}"
    return JobState(folder, phase, fraction, message, report, error, running)


def cancel(folder: Path) -> None:
    """Stop a running job's child process (its whole process group: Spark's JVM goes with it),
    if its record still names that very process; the job then reads as cancelled."""
    folder = Path(folder)
    record = read_record(folder / PROCESS)
    if record is not None:
        record.signal(signal.SIGTERM, group=True)
    if not (folder / REPORT).is_file():
        atomic_write_json(folder / ERROR, {"error": CANCELLED})


def _run(folder: Path) -> int:
    """The child's body: score, reporting progress to `progress.jsonl`; status 0 on success."""
    from dataclasses import asdict

    from pipeline.batch import BatchError, score_file
    from pipeline.lifeline import watch_parent

    # the dashboard is gone: stop this job's whole process group (Spark's JVM too)
    watch_parent(lambda: ProcessRecord.current().signal(signal.SIGTERM, group=True))
    spec = json.loads((folder / SPEC).read_text())
    with (folder / PROGRESS).open("a") as progress_file:
        def progress(event: Any) -> None:
            progress_file.write(json.dumps(asdict(event)) + "\n")
            progress_file.flush()

        try:
            report = score_file(spec["input"], spec["output"], model_base_path=spec["model_base_path"],
                                version=spec["version"], rejects_path=spec["rejects"], master=spec["master"],
                                progress=progress)
        except BatchError as error:
            atomic_write_json(folder / ERROR, {"error": str(error)})
            return 2
        except Exception as error:  # noqa: BLE001 - the page shows one line; the log has the rest
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            atomic_write_json(folder / ERROR, {"error": f"the Spark job failed: {first}"})
            raise
    report_dict = asdict(report)
    report_dict["summary"] = report.summary()
    atomic_write_json(folder / REPORT, report_dict)
    return 0


if __name__ == "__main__":
    sys.exit(_run(Path(sys.argv[1])))
