"""Run records on disk: what every training run did, kept whether it succeeded or not.

A run record (:class:`pipeline.store.run_record.RunRecord`: config, learned/true/OLS weights,
errors, per-epoch history, timings, library versions, status and, once exported, the version it
became) is stored as plain JSON. Records of all runs, including failed and cancelled ones, live
at ``<base_path>/runs/<id>.json`` (a non-numeric folder, so model servers ignore it); an exported
version carries a copy in its ``assets.extra/run.json``. History is always read back from disk;
records written by older code read the same way.
"""

from __future__ import annotations

import contextlib
import platform
import uuid
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from pipeline import state
from pipeline.store.run_record import RunRecord

RUNS_DIR = "runs"
EXPORT_LOCK = ".export.lock"
"""The lock file (in the base path; not a version name) that serialises exports of recorded runs."""


def new_run_id() -> str:
    """A sortable, unique run id: UTC timestamp plus a short random suffix."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a run's numbers (no TensorFlow import needed)."""
    versions = {"python": platform.python_version()}
    for dist in ("tensorflow", "keras", "numpy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def runs_dir(base_path: Path | str) -> Path:
    return Path(base_path) / RUNS_DIR


def save_run(base_path: Path | str, record: RunRecord) -> Path:
    """Write ``record`` atomically to the runs folder (readers see the old or the new record,
    never a torn one); called repeatedly while a run progresses. ``ValueError`` for an id that
    is not a plain file name."""
    run_id = record.id
    if not isinstance(run_id, str) or not run_id or "/" in run_id or run_id.startswith("."):
        raise ValueError(f"invalid run id {run_id!r}")
    return state.atomic_write_json(runs_dir(base_path) / f"{run_id}.json", record.to_json(), indent=1)


def load_run(base_path: Path | str, run_id: str) -> RunRecord | None:
    """One run record, or ``None`` if missing or unreadable."""
    return RunRecord.from_json(state.read_json(runs_dir(base_path) / f"{run_id}.json"))


def list_runs(base_path: Path | str) -> list[RunRecord]:
    """All readable run records under ``base_path``, newest first."""
    folder = runs_dir(base_path)
    if not folder.is_dir():
        return []
    found = (RunRecord.from_json(state.read_json(path)) for path in folder.glob("*.json"))
    return sorted((r for r in found if r is not None), key=lambda r: r.id, reverse=True)


def export_lock(base_path: Path | str) -> contextlib.AbstractContextManager[None]:
    """Hold the base path's export lock (:func:`pipeline.state.file_lock`: across processes, and
    released by the kernel if the holder dies). Whoever reads a run record, exports it and
    writes the record back does all three under it, so a run is never exported twice; every
    export and delete of a version takes it too, so the version high-water mark
    (:mod:`pipeline.store.versions`) is read and raised by one writer at a time.

    Re-entrant within a thread (an export of a recorded run holds it around the version
    export, which takes it again)."""
    return state.file_lock(Path(base_path) / EXPORT_LOCK, reentrant=True)
