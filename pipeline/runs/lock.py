"""One training run at a time per model folder, whoever starts it.

The holder of ``<base_path>/.training.lock`` (run id, pid, command line, start time) is the
run training on that folder. Every tab of every dashboard, the CLI and the demo seeder read
the same file, so a second tab sees the running run (and can watch or cancel it) instead of
starting another, and a reload finds it again. The file names a process rather than being held
open, because the dashboard starts the trainer as a child: the parent checks and records under
a short ``flock`` (:func:`guarded`) while it spawns, the child then claims it as its own.

A holder counts only while ``/proc`` shows its pid running its recorded command
(:func:`pipeline.pids.process_matches`): a crashed or killed run frees the folder by itself,
and a recycled pid never blocks it. The name starts with a dot, so no model server takes it
for a version.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.pids import command_line, process_matches

LOCK_NAME = ".training.lock"
_GUARD_NAME = ".training.guard"


@dataclass(frozen=True)
class Holder:
    """The run that trains on a model folder right now."""

    run_id: str
    pid: int
    command: tuple[str, ...]


class TrainingBusy(ValueError):
    """Another run is training on this model folder (a ``ValueError``: callers that show
    "cannot start this run" need no new except clause)."""

    def __init__(self, holder: Holder) -> None:
        super().__init__(f"run {holder.run_id} is training on this model folder (process {holder.pid}); "
                         "one run at a time per model folder: wait for it or cancel it")
        self.holder = holder


def lock_path(base_path: Path | str) -> Path:
    return Path(base_path) / LOCK_NAME


@contextlib.contextmanager
def guarded(base_path: Path | str) -> Iterator[None]:
    """Hold the folder's guard (``flock``) while checking and recording a holder, so two
    starts at the same moment never both see the folder free."""
    base = Path(base_path)
    base.mkdir(parents=True, exist_ok=True)
    with open(base / _GUARD_NAME, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read(base_path: Path | str) -> Holder | None:
    try:
        data = json.loads(lock_path(base_path).read_text())
        return Holder(str(data["run_id"]), int(data["pid"]), tuple(str(p) for p in data["command"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def holder(base_path: Path | str) -> Holder | None:
    """The run training on ``base_path`` now, or ``None`` when the folder is free (no lock, or
    its process is gone or runs something else)."""
    found = _read(base_path)
    if found is None or not process_matches(found.pid, found.command):
        return None
    return found


def check_free(base_path: Path | str, run_id: str | None = None, pid: int | None = None) -> None:
    """Raise :class:`TrainingBusy` if another run (not ``run_id``, not process ``pid``) trains."""
    found = holder(base_path)
    if found is not None and found.run_id != run_id and found.pid != pid:
        raise TrainingBusy(found)


def record(base_path: Path | str, run_id: str, pid: int, command: Sequence[str]) -> None:
    """Write the holder (call under :func:`guarded`, after :func:`check_free`)."""
    path = lock_path(base_path)
    tmp = path.with_name(f"{LOCK_NAME}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"run_id": run_id, "pid": pid, "command": list(command)}))
    os.replace(tmp, path)


def claim_for_this_process(base_path: Path | str, run_id: str) -> None:
    """Make this process the folder's trainer for ``run_id``; :class:`TrainingBusy` if another
    run holds it. A child whose parent already recorded it (same pid) simply confirms."""
    with guarded(base_path):
        check_free(base_path, run_id, os.getpid())
        record(base_path, run_id, os.getpid(), command_line(os.getpid()) or ())


def release(base_path: Path | str, run_id: str) -> None:
    """Free the folder if ``run_id`` holds it (a no-op otherwise: never frees another run's lock)."""
    with guarded(base_path):
        found = _read(base_path)
        if found is not None and found.run_id == run_id:
            with contextlib.suppress(FileNotFoundError):
                lock_path(base_path).unlink()
