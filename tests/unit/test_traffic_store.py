"""The embedded server's request logs on disk (`pipeline/store/traffic.py`): where each model's go,
the size kept per model (a setting, saved), and the oldest files removed past it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.serving import log_files
from pipeline.serving.request_log import LogOptions
from pipeline.store import traffic
from tests.support.traffic_logs import Call, write_traffic


def test_the_kept_size_is_a_saved_setting_and_lowering_it_removes_the_oldest_files(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert traffic.max_bytes(run) == traffic.DEFAULT_MAX_BYTES
    calls = [Call([float(i)], [float(i)]) for i in range(40)]
    for model in ("a", "b"):
        write_traffic(traffic.prefix(run, model), calls, model=model,
                      options=LogOptions(max_file_bytes=2_000))
    usage = traffic.usage(run)
    assert set(usage) == {"a", "b"} and all(size > 10_000 for size in usage.values())
    assert traffic.model_prefixes(run) == {m: traffic.prefix(run, m) for m in ("a", "b")}
    newest = log_files.log_files(str(traffic.prefix(run, "a")))[-1]
    with pytest.raises(ValueError, match="keep at least 1 MiB"):
        traffic.set_max_bytes(run, 1000)
    removed = traffic.set_max_bytes(run, traffic.MIN_MAX_BYTES)
    assert removed == []  # everything fits in 1 MiB
    assert traffic.max_bytes(run) == traffic.MIN_MAX_BYTES
    removed = traffic.prune(run, 5_000)
    assert removed and newest not in removed and newest.exists()
    assert all(size <= 5_000 + 6_000 for size in traffic.usage(run).values())  # the newest file is kept
    assert all(not log_files.sidecar_path(p).exists() for p in removed)


def test_an_unreadable_setting_is_the_default(tmp_path: Path) -> None:
    (tmp_path / "traffic").mkdir()
    (tmp_path / "traffic" / "settings.json").write_text("{not json")
    assert traffic.max_bytes(tmp_path) == traffic.DEFAULT_MAX_BYTES
    assert traffic.usage(tmp_path / "nowhere") == {}
