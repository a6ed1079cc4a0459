"""One training run at a time per model folder, whoever starts it.

The holder of ``<base_path>/.training.lock`` (the run id and the process record of the
process training it: pid, start time, command line) is the run training on that folder. Every
tab of every dashboard, the CLI and the demo seeder read the same file, so a second tab sees the
running run (and can watch or cancel it) instead of starting another, and a reload or a restarted
dashboard finds its process again. The file names a process rather than being held open, because
the dashboard starts the trainer as a child: the parent checks and records under a short file
lock (:func:`guarded`) while it spawns, the child then claims it as its own, and removes it when
the run ends (so a finished run leaves no process record behind).

A holder counts only while ``/proc`` shows that very process
(:meth:`pipeline.state.ProcessRecord.matches`): a crashed or killed run frees the folder by
itself, and a recycled pid never blocks it nor receives its cancel. The name starts with a dot,
so no model server takes it for a version.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline import state

LOCK_NAME = ".training.lock"
_GUARD_NAME = ".training.guard"


@dataclass(frozen=True)
class Holder:
    """The run that trains on a model folder right now, and its process."""

    run_id: str
    process: state.ProcessRecord

    @property
    def pid(self) -> int:
        return self.process.pid


class TrainingBusy(ValueError):
    """Another run is training on this model folder (a ``ValueError``: callers that show
    "cannot start this run" need no new except clause)."""

    def __init__(self, holder: Holder) -> None:
        super().__init__(f"run {holder.run_id} is training on this model folder (process {holder.pid}); "
                         "one run at a time per model folder: wait for it or cancel it")
        self.holder = holder


def lock_path(base_path: Path | str) -> Path:
    return Path(base_path) / LOCK_NAME


def guarded(base_path: Path | str) -> contextlib.AbstractContextManager[None]:
    """Hold the folder's guard (a file lock) while checking and recording a holder, so two
    starts at the same moment never both see the folder free."""
    return state.file_lock(Path(base_path) / _GUARD_NAME)


def _read(base_path: Path | str) -> Holder | None:
    found = state.read_record(lock_path(base_path))
    run_id = found.info.get("run_id") if found is not None else None
    return Holder(run_id, found) if isinstance(run_id, str) else None


def holder(base_path: Path | str) -> Holder | None:
    """The run training on ``base_path`` now, or ``None`` when the folder is free (no lock, or
    its process is gone or runs something else)."""
    found = _read(base_path)
    if found is None or not found.process.matches():
        return None
    return found


def check_free(base_path: Path | str, run_id: str | None = None, pid: int | None = None) -> None:
    """Raise :class:`TrainingBusy` if another run (not ``run_id``, not process ``pid``) trains."""
    found = holder(base_path)
    if found is not None and found.run_id != run_id and found.pid != pid:
        raise TrainingBusy(found)


def record(base_path: Path | str, run_id: str, process: state.ProcessRecord) -> None:
    """Write ``run_id``'s process as the holder (call under :func:`guarded`, after :func:`check_free`)."""
    state.write_record(lock_path(base_path), state.ProcessRecord(
        process.pid, process.start_time, process.command, {**process.info, "run_id": run_id}))


def claim_for_this_process(base_path: Path | str, run_id: str) -> None:
    """Make this process the folder's trainer for ``run_id``; :class:`TrainingBusy` if another
    run holds it. A child whose parent already recorded it (same pid) simply confirms."""
    with guarded(base_path):
        check_free(base_path, run_id, os.getpid())
        record(base_path, run_id, state.ProcessRecord.current())


def release(base_path: Path | str, run_id: str) -> None:
    """Free the folder if ``run_id`` holds it (a no-op otherwise: never frees another run's lock)."""
    with guarded(base_path):
        found = _read(base_path)
        if found is not None and found.run_id == run_id:
            state.remove_record(lock_path(base_path), found.process)
