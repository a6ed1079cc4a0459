"""The request history on disk (pipeline/client/history.py): kept, capped, hidden from servers."""

from __future__ import annotations

from pathlib import Path

from pipeline.client import history
from pipeline.model_dir import version_dirs


def keep(base: Path, n: int, rows: list[list[float]] | None = None) -> dict:
    rows = rows or [[1.0, 2.0]]
    return history.record_request(base, transport="REST", url="http://127.0.0.1:8501/v1/models/m:predict",
                                  model="m", target={"version": n}, request={"instances": rows},
                                  rows=len(rows),
                                  response={"predictions": [[3.0]]}, status=200, latency_s=0.002, version=n)


def test_entries_are_listed_newest_first_and_found_by_id(tmp_path: Path) -> None:
    first, second = keep(tmp_path, 1), keep(tmp_path, 2)
    assert [e["version"] for e in history.list_requests(tmp_path)] == [2, 1]
    assert history.find_request(tmp_path, first["id"])["latency_ms"] == 2.0
    assert history.request_rows(second) == [[1.0, 2.0]]
    assert version_dirs(tmp_path) == {}  # `.history/` is never taken for a version


def test_the_file_is_capped_and_big_bodies_are_not_kept(tmp_path: Path) -> None:
    for n in range(history.MAX_ENTRIES * 3 // 2 + 1):
        keep(tmp_path, n)
    entries = history.list_requests(tmp_path, limit=10_000)
    assert len(entries) == history.MAX_ENTRIES and entries[0]["version"] == history.MAX_ENTRIES * 3 // 2
    big = keep(tmp_path, 0, [[1.0, 2.0]] * 3_000)
    assert big["request"] is None and big["request_bytes"] > history.MAX_BODY_BYTES and big["rows"] == 3_000


def test_a_damaged_line_is_skipped(tmp_path: Path) -> None:
    keep(tmp_path, 1)
    with open(history.history_path(tmp_path), "a") as handle:
        handle.write('{"id": "half')
    assert [e["version"] for e in history.list_requests(tmp_path)] == [1]
