"""Every new version gets its other deployment formats: `.tflite` and a TF.js graph model.

A run's export (:mod:`pipeline.runs.job`, :mod:`pipeline.runs.export`) first renames a complete
SavedModel into place, so the version is served whatever happens next; only then does
:func:`convert_new_version` write ``model.tflite`` and ``tfjs/`` inside it with
:func:`pipeline.formats.export_all`, each format atomic on its own. A conversion that fails is a
note in the run record (``formats: {"tfjs": {"error": "..."}}``), never a failed run or version:
the SavedModel is what TF Serving serves, the other formats are extras.

What the run record gets (and the version's own copy, ``assets.extra/run.json``)::

    "formats": {"tflite": {"path": "model.tflite", "bytes": 1234},
                "tfjs": {"error": "TF.js export of ... failed: unsupported op Foo"}}
    "timings": {..., "export_s": 0.6, "formats_s": 1.1}

:func:`format_summary` turns that plus what is on disk into the Models page's "formats" column.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from pipeline.store import versions
from pipeline.store.run_record import RunRecord

LABELS = {"savedmodel": "SavedModel", "tflite": "TFLite", "tfjs": "TF.js"}
"""The names people read for each format, in the order the Models page lists them."""


def _entry(version_path: Path, result: Any) -> dict[str, Any]:
    """One format's outcome as plain JSON: where it was written (relative to the version) and its
    size, or the error's sentence."""
    if isinstance(result, Path):
        if result.is_dir():  # TF.js: a folder of model.json + weight shards
            files = [p for p in result.rglob("*") if p.is_file()]
            shown = result / "model.json" if (result / "model.json").is_file() else result
        else:
            files, shown = [result], result
        return {"path": str(shown.relative_to(version_path)), "bytes": sum(p.stat().st_size for p in files)}
    return {"error": str(result)}


def convert_new_version(version_path: Path | str) -> tuple[dict[str, dict[str, Any]], float]:
    """Write every other format of a version that is already in place; return
    ``({format: {"path", "bytes"} or {"error"}}, seconds it took)``.

    Never raises: a format that fails (or a converter that cannot even be imported) is an
    ``error`` entry, so the caller's run still succeeds and its version stays served.
    """
    path = Path(version_path)
    started = time.perf_counter()
    try:
        from pipeline.formats import export_all

        results = export_all(path)
        entries = {name: _entry(path, result) for name, result in results.items()}
    except Exception as exc:  # noqa: BLE001 - an extra format must never fail the export
        entries = {"all": {"error": f"the conversion could not run: {type(exc).__name__}: {exc}"}}
    return entries, time.perf_counter() - started


def add_formats(record: RunRecord, version_path: Path | str) -> RunRecord:
    """Convert the version ``record`` was just exported as and note the outcome in ``record``
    (``formats``, ``timings.formats_s``) and in the version's own run record. Returns ``record``.
    Never raises (a version whose copy of the record cannot be updated keeps the old copy)."""
    entries, seconds = convert_new_version(version_path)
    record.formats = entries
    record.timings["formats_s"] = seconds
    # if the version's copy cannot be updated, the runs/ record still says it, and the Models
    # page reads the files themselves
    with contextlib.suppress(OSError, ValueError):
        versions.update_run_record(version_path, formats=entries)
    return record


def format_summary(present: tuple[str, ...] | list[str], recorded: dict[str, Any] | None) -> str:
    """The formats a version has, in words: ``SavedModel, TFLite, TF.js``; a format whose
    conversion failed (per the run record) and that is not on disk reads ``TF.js failed``.
    What is on disk wins over the record, so a version converted later (Deploy page, CLI)
    shows its new files."""
    parts = [LABELS["savedmodel"]]
    failed = {name for name, entry in (recorded or {}).items()
              if isinstance(entry, dict) and "error" in entry}
    for name in ("tflite", "tfjs"):
        if name in present:
            parts.append(LABELS[name])
        elif name in failed or "all" in failed:
            parts.append(f"{LABELS[name]} failed")
    return ", ".join(parts)


def format_errors(present: tuple[str, ...] | list[str], recorded: dict[str, Any] | None) -> dict[str, str]:
    """``{format label: error sentence}`` for recorded failures whose format is still missing."""
    found = {}
    for name, entry in (recorded or {}).items():
        if isinstance(entry, dict) and "error" in entry and name not in present:
            found[LABELS.get(name, name)] = str(entry["error"])
    return found
