"""Request history: every request the dashboard sends to a model server, kept on disk.

One JSON line per request in ``<base_path>/.history/requests.jsonl``, next to the versions it was
sent to. The folder is hidden, so TF Serving (and our server) never take it for a version. Each
entry keeps what a tester needs to read or replay the call: when, over which transport, to which
URL and target (version or label), the version that answered, latency, status, and the request
and answer bodies (bodies above :data:`MAX_BODY_BYTES` are left out and the entry says so). The
file is capped at :data:`MAX_ENTRIES` entries (oldest dropped). Appends and trims are serialised
by a file lock (:mod:`pipeline.state`), so two dashboard sessions never interleave half lines.
No Streamlit here.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline import state

HISTORY_DIR = ".history"
HISTORY_FILE = "requests.jsonl"
MAX_ENTRIES = 200
"""Entries kept; older ones are dropped when the file grows past 1.5 times this."""
MAX_BODY_BYTES = 32 * 1024
"""Bodies larger than this (about 1,500 rows) are not kept: the entry records their row count and
size. This bounds the file (a few MB at most), which every Predict page run reads."""


def history_path(base_path: Path | str) -> Path:
    """The history file of the model whose versions live in ``base_path``."""
    return Path(base_path) / HISTORY_DIR / HISTORY_FILE


@contextlib.contextmanager
def _locked(base_path: Path | str) -> Iterator[Path]:
    path = history_path(base_path)
    with state.file_lock(path.parent / ".lock"):
        yield path


def _kept(body: Any) -> tuple[Any, int]:
    """``(body, size)``, or ``(None, size)`` when the JSON text is too large to keep."""
    if body is None:
        return None, 0
    text = json.dumps(body)
    return (body if len(text) <= MAX_BODY_BYTES else None), len(text)


def record_request(base_path: Path | str, *, transport: str, url: str, model: str, target: dict[str, Any],
                   request: dict[str, Any], rows: int, response: dict[str, Any] | None = None,
                   status: int | str | None = None, latency_s: float | None = None,
                   version: int | None = None, error: str | None = None) -> dict[str, Any]:
    """Append one request to the history and return the entry written.

    ``target`` is what was asked for (``{}`` latest, ``{"version": 3}``, ``{"label": "stable"}``),
    ``version`` the version that answered when known, ``error`` the readable message of a failed
    call (then ``response`` is usually ``None``). An unwritable folder raises ``OSError``.
    """
    kept_request, request_size = _kept(request)
    kept_response, response_size = _kept(response)
    entry = {
        "id": f"{int(time.time() * 1000):x}-{uuid.uuid4().hex[:6]}",
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "transport": transport, "url": url, "model": model, "target": dict(target), "version": version,
        "rows": int(rows), "status": status, "error": error,
        "latency_ms": None if latency_s is None else round(latency_s * 1000, 3),
        "request": kept_request, "request_bytes": request_size,
        "response": kept_response, "response_bytes": response_size,
    }
    line = json.dumps(entry) + "\n"
    with _locked(base_path) as path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(line)
        _trim(path)
    return entry


def _trim(path: Path) -> None:
    """Keep the newest :data:`MAX_ENTRIES` lines once the file holds 1.5 times that many."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if len(lines) <= MAX_ENTRIES * 3 // 2:
        return
    state.atomic_write_text(path, "".join(lines[-MAX_ENTRIES:]))


def list_requests(base_path: Path | str, limit: int = MAX_ENTRIES) -> list[dict[str, Any]]:
    """The newest ``limit`` entries, newest first; a missing file is an empty history and a
    damaged line (a crash mid-write) is skipped."""
    try:
        lines = history_path(base_path).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    entries = []
    for line in reversed(lines):
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and "id" in entry:
                entries.append(entry)
        if len(entries) >= limit:
            break
    return entries


def find_request(base_path: Path | str, entry_id: str) -> dict[str, Any] | None:
    """The entry with ``entry_id``, or ``None``."""
    return next((e for e in list_requests(base_path) if e["id"] == entry_id), None)


def clear(base_path: Path | str) -> None:
    """Forget every entry of this model."""
    with _locked(base_path) as path, contextlib.suppress(FileNotFoundError):
        path.unlink()


def request_rows(entry: dict[str, Any]) -> list[list[float]] | None:
    """The input rows of a kept predict request (row or columnar format), else ``None``."""
    body = entry.get("request") or {}
    rows = body.get("instances", body.get("inputs"))
    return rows if isinstance(rows, list) else None
