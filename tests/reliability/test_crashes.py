"""Crashes: an export killed half-way, the server killed under load, corrupt version directories.

What a user would see is asserted: the running server never loads a half-written export and the next
export is served; after `kill -9` and a restart every version on disk is AVAILABLE again and predicts,
and the dashboard shows the outage and the recovery as messages, not tracebacks; a corrupt version
ends `END` with its error while the version before it keeps answering every request.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.conftest import copy_version, export_linear, predict, states, wait_states
from tests.reliability.load import PredictLoad
from tests.reliability.probes import IN_OPEN, DirectoryWatch
from tests.server.harness import REPO, Server, ok_json, start_server, wait_for

POLL = 0.2
CONFIG = """
model_config_list {{
  config {{ name: 'exports' base_path: '{root}/exports' model_platform: 'tensorflow' }}
  config {{ name: 'corrupt' base_path: '{root}/corrupt' model_platform: 'tensorflow' }}
}}
"""


@pytest.fixture(scope="module")
def crash_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """A server polling every 0.2 s: `exports` and `corrupt`, each with version 1 (y = x1 + 1)."""
    root = tmp_path_factory.mktemp("crashes")
    for name in ("exports", "corrupt"):
        export_linear(root / name, 1.0)
    (root / "models.config").write_text(CONFIG.format(root=root))
    server = start_server([f"--model_config_file={root / 'models.config'}",
                           f"--file_system_poll_wait_seconds={POLL}", "--enable_prometheus",
                           "--max_num_load_retries=0"],  # a corrupt version ends at once
                          root / "server.log")
    yield server, root
    server.stop()


EXPORTER = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {repo!r})
    from pipeline.store import versions as registry
    from tests.reliability.conftest import linear_model
    model = linear_model(99.0)
    if {stall!r} == "fsync":  # the SavedModel is complete, not yet renamed into place
        def stall(root):
            print("STALLED", flush=True)
            time.sleep(600)
        registry.state.fsync_tree = stall
    print("READY", flush=True)
    sys.stdin.readline()
    registry.export_version(model, {base!r})
""")


def _exporter(base: Path, stall: str) -> subprocess.Popen:
    script = EXPORTER.format(repo=str(REPO), stall=stall, base=str(base))
    return subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd=REPO,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def _leftovers(base: Path, pid: int) -> list[Path]:
    return [p for p in base.iterdir() if p.name.startswith(f".tmp-{pid}-")]


def wait_polls(base: Path, polls: int) -> None:
    """Wait until the server has listed `base` `polls` times from now (it lists it once per poll;
    inotify sees each listing as an open of the folder)."""
    watch = DirectoryWatch([base.parent], mask=IN_OPEN)
    try:
        wait_for(lambda: watch.drain().count((str(base.parent), base.name)) >= polls, 60)
    finally:
        watch.close()


def _load_count(server: Server, model: str) -> float:
    total = 0.0  # TF Serving's counter is per version directory (model_path) under the base path
    for line in server.get("/monitoring/prometheus/metrics").text.splitlines():
        if line.startswith(":tensorflow:cc:saved_model:load_attempt_count{") and f'/{model}/' in line \
                and 'status="success"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_killed_exports_are_never_loaded_and_the_next_export_is_served(crash_server) -> None:
    server, root = crash_server
    base = root / "exports"
    loads = _load_count(server, "exports")
    # Both exporters import TensorFlow at the same time; each is then killed at its own point.
    writing, complete = _exporter(base, "none"), _exporter(base, "fsync")
    try:
        for process in (writing, complete):
            assert process.stdout.readline().strip() == "READY"
        writing.stdin.write("go\n")
        writing.stdin.flush()
        wait_for(lambda: any(p.is_dir() for p in _leftovers(base, writing.pid)), 60, interval=0.002)
        writing.send_signal(signal.SIGKILL)  # mid model.export(): a half-written SavedModel
        writing.wait(30)
        half = _leftovers(base, writing.pid)
        assert half, "the killed export left nothing to look at"
        wait_polls(base, 3)  # the server looks at the half-written export
        complete.stdin.write("go\n")
        complete.stdin.flush()
        assert complete.stdout.readline().strip() == "STALLED"
        (whole,) = _leftovers(base, complete.pid)
        assert (whole / "saved_model.pb").is_file() and (whole / "variables").is_dir()
        complete.send_signal(signal.SIGKILL)
        complete.wait(30)
    finally:
        for process in (writing, complete):
            if process.poll() is None:
                process.kill()
                process.wait(30)
    assert not half[0].exists()  # the second export cleaned up after the first one
    wait_polls(base, 5)  # several polls with the killed export's directory in place
    assert sorted(p.name for p in base.iterdir() if not p.name.startswith(".")) == ["1"]
    assert states(server, "exports") == {1: "AVAILABLE"}
    assert _load_count(server, "exports") == loads
    assert predict(server, [[5.0, 0.0]], "exports") == [[6.0]]

    assert export_linear(base, 2.0) == 2  # the next export takes the next number and is served
    wait_states(server, {2: "AVAILABLE", 1: "END"}, "exports")
    assert predict(server, [[5.0, 0.0]], "exports") == [[7.0]]
    assert sorted(p.name for p in base.iterdir() if not p.name.startswith(".")) == ["1", "2"]
    assert not [p.name for p in base.iterdir() if p.name.startswith(".tmp-")]  # no half-export left
    assert "Failed to load servable version {name: exports" not in server.log()  # (corrupt has its own)


def test_corrupt_versions_end_with_an_error_and_never_replace_the_serving_one(crash_server) -> None:
    server, root = crash_server
    base = root / "corrupt"
    load = PredictLoad(server.port, "/v1/models/corrupt:predict", threads=4, deadline_s=120).start()
    try:
        truncated = copy_version(base / "1", base, "2")
        pb = truncated / "saved_model.pb"
        pb.write_bytes(pb.read_bytes()[: pb.stat().st_size // 2])
        truncated.rename(base / "2")
        wait_states(server, {2: "END", 1: "AVAILABLE"}, "corrupt")
        no_variables = copy_version(base / "1", base, "3")
        shutil.rmtree(no_variables / "variables")
        no_variables.rename(base / "3")
        wait_states(server, {3: "END", 2: "END", 1: "AVAILABLE"}, "corrupt")
        wait_polls(base, 3)  # and they stay failed: not retried while their directories stay
    finally:
        outcomes = load.stop()
    statuses = {s["version"]: s for s in ok_json(server.get("/v1/models/corrupt"))["model_version_status"]}
    assert [v for v in statuses] == ["3", "2", "1"]
    for version in ("2", "3"):
        assert statuses[version]["state"] == "END"
        assert statuses[version]["status"]["error_code"] != "OK"
        assert statuses[version]["status"]["error_message"]
    assert "variables" in statuses["3"]["status"]["error_message"]
    assert statuses["1"] == {"version": "1", "state": "AVAILABLE",
                             "status": {"error_code": "OK", "error_message": ""}}
    # Every request during the failed loads was answered by version 1: y = x1 + 1.
    assert len(outcomes) > 50
    assert [o for o in outcomes if o.status != 200] == []
    for outcome in outcomes:
        predictions = ok_json_body(outcome.body)
        assert predictions == [[float(x1 + 1)] for x1, _ in outcome.rows]
    assert export_linear(base, 4.0) == 4  # a good version after the broken ones still loads
    wait_states(server, {4: "AVAILABLE"}, "corrupt")
    assert predict(server, [[5.0, 0.0]], "corrupt") == [[9.0]]
    assert server.process.poll() is None


def ok_json_body(body: bytes) -> list:
    import json

    return json.loads(body)["predictions"]


ALL_VERSIONS = """
model_config_list {{
  config {{ name: 'linear_model' base_path: '{base}' model_platform: 'tensorflow'
    model_version_policy {{ all {{}} }} }}
}}
"""


def _serving_page(url: str, monkeypatch: pytest.MonkeyPatch, run_dir: Path):
    """The dashboard's Serving page, run once against `url` (SERVING_URL), as AppTest sees it."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SERVING_URL", url)
    monkeypatch.setenv("SERVING_RUN_DIR", str(run_dir))  # no embedded server recorded as "starting"
    return AppTest.from_file(str(REPO / "dashboard" / "views" / "serving.py"), default_timeout=30).run()


def test_server_killed_under_load_comes_back_with_every_version(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    base = tmp_path / "linear_model"
    for bias in (1.0, 2.0, 3.0):
        export_linear(base, bias)
    config = tmp_path / "models.config"
    config.write_text(ALL_VERSIONS.format(base=base))
    args = [f"--model_config_file={config}", f"--file_system_poll_wait_seconds={POLL}"]
    server = start_server(args, tmp_path / "first.log")
    wait_states(server, {3: "AVAILABLE", 2: "AVAILABLE", 1: "AVAILABLE"})
    load = PredictLoad(server.port, "/v1/models/linear_model:predict", threads=8, deadline_s=150).start()
    restarted = None
    try:
        load.wait_for(500, 60)
        killed_at = time.monotonic()
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(30)
        down = _serving_page(server.url, monkeypatch, tmp_path / "run")
        restarted = start_server(args, tmp_path / "second.log", port=server.port)
        wait_states(restarted, {3: "AVAILABLE", 2: "AVAILABLE", 1: "AVAILABLE"})
        ready_at = time.monotonic()
        sent_before = load.sent
        load.wait_for(sent_before + 500, 60)
        up = _serving_page(server.url, monkeypatch, tmp_path / "run")
    finally:
        outcomes = load.stop()
    try:
        for version in (1, 2, 3):
            assert predict(restarted, [[5.0, 0.0]], version=version) == [[5.0 + version]]
        assert predict(restarted, [[5.0, 0.0]]) == [[8.0]]
    finally:
        server.stop()
        if restarted is not None:
            restarted.stop()

    assert not down.exception and not up.exception, (down.exception, up.exception)
    assert any("down" in m.value for m in down.markdown)
    assert any(f"No model server answers at {server.url}" in e.value for e in down.error), down.error
    assert any("up ·" in m.value for m in up.markdown) and not up.error
    table = up.dataframe[0].value
    assert table["version"].tolist() == [3, 2, 1] and set(table["state"]) == {"AVAILABLE"}

    before = [o for o in outcomes if o.ended < killed_at]
    after = [o for o in outcomes if o.started > ready_at]
    failed = [o for o in outcomes if o.status != 200]
    print(f"\nkill -9 under load: {len(before)} answered before, {len(failed)} refused during the outage, "
          f"{len(after)} answered after the restart")
    assert len(before) >= 400 and len(after) >= 400
    assert all(o.status == 200 for o in before + after), [o for o in before + after if o.status != 200][:3]
    assert failed and all(o.status is None for o in failed)  # the outage: refused connections, never a 5xx
    for outcome in before + after:
        assert ok_json_body(outcome.body) == [[float(x1 + 3)] for x1, _ in outcome.rows]
