"""The batching comparison restarts the embedded server once per setting (every flag explicit),
measures each, recommends one with its batching_parameters_file, and restarts the server the user
had with its own command line afterwards, also when it is stopped. Durations are short: the test
is about the restarts and the recommendation, not the numbers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from pipeline.client import local_server
from pipeline.loadtest import batching
from pipeline.loadtest.spec import LoadSpec
from tests.loadtest.conftest import MODEL, START_TIMEOUT_S
from tests.support.net import free_port, wait_for

SETTINGS = (batching.BatchingSetting(False), batching.BatchingSetting(True, 8, 0, 1))


@pytest.fixture
def embedded(base_path: Path, tmp_path: Path) -> Iterator[batching.EmbeddedServer]:
    """The user's embedded server, started the dashboard's way (`local_server.start`)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    port = free_port()
    local_server.start(port, model_name=MODEL, base_path=base_path, run_dir=run_dir, loaded_versions=1)
    server = batching.EmbeddedServer(port, MODEL, base_path, run_dir, grpc_port=free_port())
    wait_until_serving(server)
    yield server
    local_server.stop(run_dir=run_dir)


def wait_until_serving(server: batching.EmbeddedServer) -> None:
    def serving() -> bool:
        try:
            answer = requests.get(f"{server.url}/v1/models/{MODEL}", timeout=2)
        except requests.RequestException:
            return False
        return answer.ok and answer.json()["model_version_status"][0]["state"] == "AVAILABLE"

    wait_for(serving, START_TIMEOUT_S, interval=0.2)


def short_spec(server: batching.EmbeddedServer, duration_s: float = 0.5) -> LoadSpec:
    return LoadSpec(url=server.url, model=MODEL, concurrency=(4,), duration_s=duration_s, warmup_s=0.3,
                    ceiling_s=0)


def test_each_setting_gets_its_own_server_and_the_users_server_comes_back(embedded, tmp_path: Path) -> None:
    original = local_server.status(embedded.run_dir)
    folder = tmp_path / "cmp"
    comparison = batching.compare_batching(embedded, SETTINGS, short_spec(embedded), 60_000.0, folder)
    assert comparison.status == "done", comparison.message
    off, on = comparison.results
    pids = {original.pid, off.server_pid, on.server_pid}
    assert len(pids) == 3  # restarted once per setting
    assert "--enable_batching=false" in off.command and "--batching_parameters_file" not in off.command
    assert "--enable_batching=true" in on.command
    parameters = Path(on.command[on.command.index("--batching_parameters_file") + 1])
    assert "max_batch_size { value: 8 }" in parameters.read_text()
    for result in (off, on):
        (level,) = result.levels
        assert result.status == "done" and level.answered > 0 and level.errors == 0
    rec = comparison.recommendation
    assert rec is not None and rec.setting in SETTINGS and rec.concurrency == 4
    assert rec.ok_per_second == max(r.levels[0].ok_per_second for r in comparison.results)
    assert rec.parameters_text == rec.setting.parameters_text()
    after = local_server.status(embedded.run_dir)
    assert after.running and after.command == original.command and after.pid not in pids
    assert "restarted with the command line it had" in comparison.restored
    wait_until_serving(embedded)  # and it serves again
    saved = batching.read_comparison(folder)
    assert saved is not None and saved.status == "done" and saved.recommendation == rec


def test_a_stopped_comparison_restores_the_users_server(embedded, tmp_path: Path) -> None:
    original = local_server.status(embedded.run_dir)
    folder = batching.start_comparison(tmp_path / "cmps", embedded, SETTINGS, short_spec(embedded, 600), 50.0)

    def measuring() -> bool:
        comparison = batching.read_comparison(folder)
        assert comparison is not None and comparison.status == "running", comparison
        return bool(comparison.results[0].sweep) and "load with" in comparison.phase

    wait_for(measuring, START_TIMEOUT_S, interval=0.1)
    batching.request_stop(folder)

    def ended() -> batching.Comparison | None:
        comparison = batching.read_comparison(folder)
        return comparison if comparison is not None and comparison.status != "running" else None

    comparison = wait_for(ended, START_TIMEOUT_S, interval=0.1)
    assert comparison.status == "stopped" and comparison.results[1].status == "waiting"
    assert comparison.results[0].status == "stopped"
    after = local_server.status(embedded.run_dir)
    assert after.running and after.command == original.command
    assert "restarted with the command line it had" in comparison.restored
