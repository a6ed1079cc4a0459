"""Recorded traffic on a real server: a request log (written as the server writes it) made into a
version's warm-up file lets that version load with its requests replayed, and
`python -m pipeline.traffic replay` finds exactly the requests where two versions differ, over
REST and over gRPC.

Version 1 answers y = 0.5 x + 2, version 2 y = x: they agree at x = 4 only."""

from __future__ import annotations

import json

import pytest

from pipeline.traffic.__main__ import main
from tests.server.harness import free_port, metric_value, start_server, wait_for
from tests.support.traffic_logs import Call, write_traffic

CALLS = [Call([4.0], [4.0]), Call([1.0], [2.5]), Call([4.0, 4.0], [4.0, 4.0]), Call([10.0], [7.0]),
         Call([9.0], None, status="INVALID_ARGUMENT", message="refused")]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    from tests.server import savedmodels

    root = tmp_path_factory.mktemp("traffic")
    savedmodels.export_half_plus_two(root / "m" / "1", 0.5, 2.0)
    savedmodels.export_half_plus_two(root / "m" / "2", 1.0, 0.0)
    logs = root / "traffic" / "m" / "requests"
    write_traffic(logs, CALLS)
    assert main(["to-warmup", str(logs), "--version-dir", str(root / "m" / "2")]) == 0
    config = root / "models.config"
    config.write_text(f'model_config_list {{ config {{ name: "m" base_path: "{root / "m"}" '
                      'model_platform: "tensorflow" model_version_policy { all {} } } }')
    grpc_port = free_port()
    server = start_server([f"--model_config_file={config}", f"--port={grpc_port}", "--enable_prometheus"],
                          root / "server.log")

    def both_available() -> bool:
        answer = server.get("/v1/models/m")
        return answer.ok and sorted(s["state"] for s in answer.json()["model_version_status"]) == [
            "AVAILABLE", "AVAILABLE"]

    try:
        wait_for(both_available, 120)
        yield server, logs, grpc_port, root
    finally:
        server.stop()


def test_logged_requests_as_a_warm_up_file_let_the_version_load_with_them(served) -> None:
    server, _, _, root = served
    path = str(root / "m" / "2")
    assert metric_value(server, ":tensorflow:serving:model_warmup_latency_count", model_path=path,
                        status="OK") == 1


@pytest.mark.parametrize("transport", ["REST", "gRPC"])
def test_a_replay_finds_exactly_the_requests_where_two_versions_differ(
        served, transport: str, capsys: pytest.CaptureFixture) -> None:
    server, logs, grpc_port, _ = served
    where = ["--rest", server.url] if transport == "REST" else ["--grpc", f"127.0.0.1:{grpc_port}"]
    code = main(["replay", str(logs), "--a", "1", "--b", "2", "--status", "OK", "--json", *where])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert (report["transport"], report["requests"], report["agreeing"]) == (transport, 4, 2)
    differences = sorted(round(row["difference"], 6) for row in report["rows"])
    assert differences == [0.0, 0.0, 1.5, 3.0]
    assert report["largest_difference"] == pytest.approx(3.0)
    assert report["latency_ms"]["a"]["median"] > 0 and report["latency_ms"]["b"]["median"] > 0


def test_a_version_that_is_not_loaded_fails_every_row_of_its_side(served,
                                                                   capsys: pytest.CaptureFixture) -> None:
    server, logs, _, _ = served
    code = main(["replay", str(logs), "--a", "recorded", "--b", "7", "--status", "OK", "--rest", server.url])
    out = capsys.readouterr().out
    assert code == 1
    assert "agreeing within 1e-06: 0 of 4 (0.0%)" in out and "latency B: no answer; 4 failed" in out
    assert "Servable not found for request: Specific(m, 7)" in out
    wait_for(lambda: server.get("/v1/models/m").ok, 5)  # the server is still serving
