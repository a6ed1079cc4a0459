"""Versions on disk, in exactly the layout TensorFlow Serving reads.

``<base_path>/<N>/`` holds a SavedModel (``saved_model.pb``, ``variables/``) and our run
record at ``assets.extra/run.json`` (TF Serving ignores ``assets.extra``). An export is
written into a non-numeric sibling (``.tmp-<pid>-<uuid>``), fsynced, then renamed to the
next free number, so a reader (our server, or TF Serving polling every second) never sees
a half-written version; a crash mid-export leaves only a non-numeric directory, which
the next export removes. What counts as a version folder is `pipeline.model_dir.parse_version`,
the same rule the server uses; signatures are read with `pipeline.model_dir.read_signature`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline import state
from pipeline.model_dir import parse_version
from pipeline.store.records import export_lock
from pipeline.store.run_record import RunRecord

RUN_RECORD = Path("assets.extra") / "run.json"
"""Where a version's run record lives, relative to the version directory."""

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_TMP_PREFIX = ".tmp-"
_DELETING_PREFIX = ".deleting-"


def validate_model_name(name: str) -> str:
    """Return ``name`` if it is a safe model name, else raise ``ValueError``.

    Letters, digits, ``_``, ``-`` and ``.``; at most 128 characters; never ``.``/``..``
    or anything containing ``..``, so a name can never step outside the models folder.
    """
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name or name == ".":
        raise ValueError(
            f"invalid model name {name!r}: use 1-128 letters, digits, '_', '-' or '.', and no '..'"
        )
    return name


def model_base_path(name: str, models_dir: Path | str) -> Path:
    """``<models_dir>/<name>`` for a validated ``name``."""
    return Path(models_dir) / validate_model_name(name)


@dataclass(frozen=True)
class VersionInfo:
    """One version on disk."""

    version: int
    path: Path
    created: str
    """ISO-8601 UTC time the version was exported (from its run record, else the dir mtime)."""
    size_bytes: int
    run_record: RunRecord | None = field(default=None, compare=False)
    """The run that made it (``assets.extra/run.json``), or None (copied in by hand, or made
    by something other than a training run here)."""
    formats: tuple[str, ...] = field(default=(), compare=False)
    """Other deployment formats present beside the SavedModel: ``tflite`` (``model.tflite``),
    ``tfjs`` (``tfjs/model.json``); see :mod:`pipeline.formats`."""


def check_writable_base_path(base_path: Path | str) -> Path:
    """Raise ``ValueError`` unless versions can be written under ``base_path``.

    Checks before any work is done: the path is not a file, its nearest existing
    ancestor is a directory we can create files in. Writes nothing that stays.
    """
    path = Path(base_path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"base path {str(path)!r} is a file, not a directory")
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"base path {str(path)!r} cannot be created: {str(probe)!r} is not a directory")
    try:
        fd, name = tempfile.mkstemp(prefix=".write-probe-", dir=probe)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise ValueError(f"base path {str(path)!r} is not writable ({exc.strerror})") from None
    return path


def remove_stale_temp_dirs(base_path: Path) -> list[Path]:
    """Delete leftovers of exports or deletions whose process is gone; return them."""
    removed = []
    if not base_path.is_dir():
        return removed
    for child in base_path.iterdir():
        if not child.name.startswith((_TMP_PREFIX, _DELETING_PREFIX)):
            continue
        parts = child.name.split("-")
        pid = int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else -1
        if pid == os.getpid() or (pid > 0 and state.pid_alive(pid)):
            continue
        shutil.rmtree(child, ignore_errors=True)
        removed.append(child)
    return removed


HIGH_WATER = ".version_high_water"
"""The highest version number ever used under a base path (a hidden file, so no server takes it
for a version). TF Serving clients and caches know a model by (name, version): a number that
once meant one model must never mean another, so deleting the newest version does not free
its number."""


def high_water_mark(base_path: Path | str) -> int:
    """The highest version number ever given out under ``base_path`` (0 if none): the larger
    of the recorded mark and the highest version folder present (hand-copied ones count)."""
    base = Path(base_path)
    try:
        recorded = int((base / HIGH_WATER).read_text().strip() or 0)
    except (OSError, ValueError):
        recorded = 0
    present = [n for c in base.iterdir() if (n := parse_version(c.name)) is not None] if base.is_dir() else []
    return max([recorded, *present])


def _raise_high_water_mark(base_path: Path, version: int) -> None:
    """Record ``version`` as used (atomically; call under the export lock)."""
    try:
        if int((base_path / HIGH_WATER).read_text().strip() or 0) >= version:
            return
    except (OSError, ValueError):
        pass
    state.atomic_write_text(base_path / HIGH_WATER, f"{version}\n")


def next_version_number(base_path: Path | str) -> int:
    """The number the next export will get: never one used before, even if deleted since."""
    return high_water_mark(base_path) + 1


def export_version(model: Any, base_path: Path | str, run_record: RunRecord | None = None) -> VersionInfo:
    """Export ``model`` as version ``N = highest ever + 1`` under ``base_path``; return it.

    Numbers are never reused: ``N`` is one above the high-water mark (:func:`high_water_mark`),
    read and raised under the base path's export lock.

    Uses ``model.export()`` (a SavedModel whose ``serving_default`` takes ``inputs``),
    writes a copy of ``run_record`` (with ``version`` and ``created``, without the running
    run's ``progress`` and ``traceback``) to ``assets.extra/run.json`` (nothing when None),
    fsyncs, and renames into place. On any failure nothing numeric is left behind and
    the error propagates. Safe against concurrent exporters: a lost rename race moves
    on to the next number.
    """
    base = check_writable_base_path(base_path)
    base.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_dirs(base)
    tmp = base / f"{_TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
    try:
        model.export(str(tmp), format="tf_saved_model", verbose=False)
        created = datetime.now(UTC).isoformat(timespec="seconds")
        with export_lock(base):
            return _claim_number(base, tmp, run_record, created)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _claim_number(base: Path, tmp: Path, run_record: RunRecord | None, created: str) -> VersionInfo:
    """Rename the finished export ``tmp`` to the next unused number (under the export lock; a
    writer that does not take the lock, e.g. a hand copy, only makes the rename move on)."""
    for _attempt in range(100):
        version = next_version_number(base)
        record = None
        if run_record is not None:
            record = dataclasses.replace(run_record, version=version, created=created, progress=None,
                                         traceback=None)
            (tmp / RUN_RECORD).parent.mkdir(parents=True, exist_ok=True)
            (tmp / RUN_RECORD).write_text(record.to_json_text())  # inside the unpublished export
        state.fsync_tree(tmp)
        target = base / str(version)
        try:
            os.rename(tmp, target)
        except OSError:
            if target.exists():
                continue
            raise
        state.fsync_dir(base)
        _raise_high_water_mark(base, version)
        return VersionInfo(version, target, created, _tree_size(target), record)
    raise RuntimeError(f"could not claim a version number under {base} after 100 attempts")


def _tree_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


FORMAT_FILES = {"tflite": Path("model.tflite"), "tfjs": Path("tfjs") / "model.json"}
"""The file whose presence says a version has that format (written last, atomically, by
:mod:`pipeline.formats`)."""


def formats_present(version_path: Path | str) -> tuple[str, ...]:
    """Which of :data:`FORMAT_FILES` a version folder holds."""
    return tuple(name for name, rel in FORMAT_FILES.items() if (Path(version_path) / rel).is_file())


def update_run_record(version_path: Path | str, **changes: Any) -> RunRecord | None:
    """Change fields of a version's run record (``formats=...``) and write it back atomically:
    for facts learned after the version was renamed into place, such as its other formats. Model
    servers ignore ``assets.extra``'s ``run.json``, so a served version is never disturbed.
    Returns the new record; None (and nothing written) when the version has no run record."""
    record = read_run_record(version_path)
    if record is None:
        return None
    record = dataclasses.replace(record, **changes)
    state.atomic_write_text(Path(version_path) / RUN_RECORD, record.to_json_text())
    return record


def read_run_record(version_path: Path | str) -> RunRecord | None:
    """The run record stored in a version, or ``None`` if it has none or it is unreadable."""
    return RunRecord.from_json(state.read_json(Path(version_path) / RUN_RECORD))


def list_versions(base_path: Path | str) -> list[VersionInfo]:
    """Every version directory under ``base_path``, oldest number first.

    A missing base path has no versions. Directories that vanish while being read
    (a concurrent delete) are skipped.
    """
    base = Path(base_path)
    if not base.is_dir():
        return []
    found = []
    for child in base.iterdir():
        number = parse_version(child.name)
        if number is None or not child.is_dir():
            continue
        try:
            record = read_run_record(child)
            created = (record.created if record is not None else None) or datetime.fromtimestamp(
                child.stat().st_mtime, UTC
            ).isoformat(timespec="seconds")
            found.append(VersionInfo(number, child, created, _tree_size(child), record,
                                     formats_present(child)))
        except FileNotFoundError:
            continue
    return sorted(found, key=lambda v: v.version)


def delete_version(base_path: Path | str, version: int) -> None:
    """Remove version ``version``: first renamed to a non-numeric name (it vanishes for
    servers at once), then deleted. ``ValueError`` if there is no such version. Its number
    stays used: the next export gets a higher one."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValueError(f"version must be a whole number >= 0, got {version!r}")
    base = Path(base_path)
    matches = [c for c in base.iterdir() if parse_version(c.name) == version] if base.is_dir() else []
    if not matches:
        raise ValueError(f"there is no version {version} under {str(base)!r}")
    with export_lock(base):
        _raise_high_water_mark(base, version)  # its number stays used after it is gone
        for path in matches:
            doomed = base / f"{_DELETING_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
            os.rename(path, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
