"""pipeline.client.local_server (start/stop/restart with stand-in commands, pid file, log tail) and the
URL helpers it relies on (pipeline.client.urls)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from dashboard.input_table import MAX_INTERACTIVE_ROWS
from pipeline.client import local_server as server_process
from pipeline.client.urls import bind_host, is_local_url, url_port
from pipeline.serving.model_config import parse_batching_parameters_text, parse_model_config_text
from pipeline.state import read_record, start_time
from tests.support.net import free_port, stop_process, wait_for

# A stand-in server: answers every GET with a TF Serving style 400 and logs to stdout.
STAND_IN = r"""
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class H(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        body = b'{"error": "Missing model name in request."}'
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

port = int(sys.argv[1])
print("stand-in line 1")
print(f"Exporting HTTP/REST API at:localhost:{port} ...", flush=True)
HTTPServer(("127.0.0.1", port), H).serve_forever()
"""

STUBBORN = r"""
import signal, time
signal.signal(signal.SIGTERM, lambda *a: print("ignoring SIGTERM", flush=True))
print("stubborn up", flush=True)
while True:
    time.sleep(0.1)
"""


WAIT_S = 20.0
MODEL = {"model_name": "m", "base_path": "/nowhere/m"}
"""The model a real server would be given; the stand-ins ignore it."""


def answers(url: str) -> bool:
    try:
        requests.get(url + "/v1/models", timeout=1)
        return True
    except requests.RequestException:
        return False


@pytest.fixture
def run_dir(tmp_path: Path):
    yield tmp_path
    server_process.stop(timeout=2, run_dir=tmp_path)


def stand_in(port: int) -> list[str]:
    return [sys.executable, "-c", STAND_IN, str(port)]


def start(port: int, command: list[str], run_dir: Path) -> server_process.ServerStatus:
    return server_process.start(port, command=command, run_dir=run_dir, **MODEL)


def test_start_writes_pid_file_and_log_then_stop(run_dir: Path) -> None:
    port = free_port()
    status = start(port, stand_in(port), run_dir)
    assert status.running and status.pid and status.port == port
    assert status.url == f"http://127.0.0.1:{port}"
    record = json.loads((run_dir / "serving.pid").read_text())
    assert record["pid"] == status.pid and record["port"] == port and record["command"] == stand_in(port)
    wait_for(lambda: answers(status.url), WAIT_S)
    tail = server_process.log_tail(2, run_dir=run_dir)
    assert tail.splitlines() == ["stand-in line 1", f"Exporting HTTP/REST API at:localhost:{port} ..."]
    assert f"starting: {shlex.join(stand_in(port))}" in server_process.log_tail(50, run_dir=run_dir)

    assert server_process.stop(timeout=5, run_dir=run_dir) is True
    assert not (run_dir / "serving.pid").exists()
    assert not server_process.status(run_dir).running
    assert not answers(status.url)
    assert server_process.stop(run_dir=run_dir) is False


def test_start_twice_returns_the_running_server(run_dir: Path) -> None:
    port = free_port()
    first = start(port, stand_in(port), run_dir)
    second = start(port, stand_in(port), run_dir)
    assert second.pid == first.pid


def test_restart_replaces_the_process_and_keeps_old_log(run_dir: Path) -> None:
    port = free_port()
    first = start(port, stand_in(port), run_dir)
    wait_for(lambda: answers(first.url), WAIT_S)
    second = server_process.restart(port, command=stand_in(port), run_dir=run_dir, timeout=5, **MODEL)
    assert second.running and second.pid != first.pid
    wait_for(lambda: answers(second.url), WAIT_S)
    assert (run_dir / "serving.log.1").exists()


def test_stop_escalates_to_sigkill(run_dir: Path) -> None:
    stubborn = [sys.executable, "-c", STUBBORN]
    start(1, stubborn, run_dir)
    record = read_record(run_dir / "serving.pid")
    wait_for(lambda: "stubborn up" in server_process.log_tail(5, run_dir=run_dir), WAIT_S)
    assert server_process.stop(timeout=0.5, run_dir=run_dir) is True
    assert "ignoring SIGTERM" in server_process.log_tail(5, run_dir=run_dir)  # SIGTERM was not enough
    assert not record.matches()  # ...and yet the process is gone: SIGKILL
    assert not server_process.status(run_dir).running


def test_exited_server_is_not_running_and_reports_exit_code(run_dir: Path) -> None:
    exits = [sys.executable, "-c", "print('bye'); raise SystemExit(3)"]
    start(1, exits, run_dir)
    wait_for(lambda: not server_process.status(run_dir).running, WAIT_S)
    status = server_process.status(run_dir)
    assert status.exit_code == 3
    assert "bye" in server_process.log_tail(5, run_dir=run_dir)


def test_stale_pid_file_is_not_trusted(run_dir: Path) -> None:
    # A pid that exists (this test process) but runs another command: never reported or signalled.
    (run_dir / "serving.pid").write_text(json.dumps(
        {"pid": os.getpid(), "port": 1, "command": ["not", "this", "process"]}))
    assert not server_process.status(run_dir).running
    assert server_process.stop(run_dir=run_dir) is False


def test_a_recycled_pid_running_the_same_command_is_neither_reported_nor_signalled(run_dir: Path) -> None:
    """The pid file names a live process with the server's very command line but another start
    time: the server it named is gone and the kernel gave its pid to a newcomer. Not ours."""
    port = free_port()
    newcomer = subprocess.Popen(stand_in(port), stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}"), WAIT_S)
        (run_dir / "serving.pid").write_text(json.dumps({
            "pid": newcomer.pid, "start_time": start_time(newcomer.pid) - 1, "port": port,
            "host": "127.0.0.1", "command": stand_in(port)}))
        assert not server_process.status(run_dir).running
        assert server_process.stop(timeout=1, run_dir=run_dir) is False
        assert newcomer.poll() is None and answers(f"http://127.0.0.1:{port}")  # never signalled
    finally:
        stop_process(newcomer)


def test_no_log_yet(tmp_path: Path) -> None:
    assert server_process.log_tail(10, run_dir=tmp_path) == ""
    assert server_process.status(tmp_path).running is False


@pytest.mark.parametrize(("url", "local"), [
    ("http://127.0.0.1:8501", True), ("http://localhost:8501", True), ("http://[::1]:8501", True),
    ("127.0.0.5:9000", True), ("https://LOCALHOST", True),
    ("http://example.com:8501", False), ("http://10.0.0.1:8501", False), ("", False), ("http://[bad", False),
])
def test_is_local_url(url: str, local: bool) -> None:
    assert is_local_url(url) is local


def test_bind_host_and_port() -> None:
    assert bind_host("http://localhost:9000") == "127.0.0.1"
    assert bind_host("http://[::1]:9000") == "::1"
    assert url_port("http://127.0.0.1:9000") == 9000
    assert url_port("https://127.0.0.1") == 443


def test_server_command_flags_and_models_config(tmp_path: Path) -> None:
    plain = server_process.server_command(8600, model_name="m", base_path="/x/m", loaded_versions=1,
                                          run_dir=tmp_path)
    assert plain[1:3] == ["-m", "pipeline.serving"]
    # batching that takes the Predict page's largest request in one piece (TF Serving's default
    # max_batch_size of 1,000 refuses a 10,000-row request)
    parameters = Path(plain[plain.index("--batching_parameters_file") + 1])
    assert parse_batching_parameters_text(parameters.read_text()).max_batch_size >= MAX_INTERACTIVE_ROWS
    assert plain[plain.index("--rest_api_port") + 1] == "8600"
    assert plain[plain.index("--model_name") + 1] == "m" and "--enable_prometheus" in plain
    argv = server_process.server_command(8600, model_name="m", base_path=tmp_path / "m", loaded_versions=2,
                                         run_dir=tmp_path)
    config_file = Path(argv[argv.index("--model_config_file") + 1])
    (model,) = parse_model_config_text(config_file.read_text())
    assert model.name == "m" and model.base_path == tmp_path / "m"
    assert model.policy.kind == "latest" and model.policy.num_versions == 2
    assert model.logging is not None and model.logging.sampling_rate == 1.0  # the Traffic page reads these
    assert model.logging.filename_prefix == str(tmp_path.resolve() / "traffic" / "m" / "requests")
    assert argv[argv.index("--request_log_max_total_bytes") + 1] == str(256 * 1024 * 1024)


def test_autostart_only_for_silent_local_urls(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    assert server_process.autostart_if_needed(url, enabled=False, run_dir=run_dir, **MODEL) is None
    assert server_process.autostart_if_needed("http://example.com:85", enabled=True, run_dir=run_dir,
                                              **MODEL) is None

    launched = []
    real_start = server_process.start

    def fake_start(port_, host, **kwargs):
        launched.append((port_, host))
        return real_start(port_, host, command=stand_in(port_), run_dir=kwargs["run_dir"], **MODEL)

    monkeypatch.setattr(server_process, "start", fake_start)
    status = server_process.autostart_if_needed(f"http://localhost:{port}", enabled=True, run_dir=run_dir,
                                                **MODEL)
    assert launched == [(port, "127.0.0.1")] and status is not None and status.running
    again = server_process.autostart_if_needed(url, enabled=True, run_dir=run_dir, **MODEL)
    assert again is not None and again.pid == status.pid and len(launched) == 1
    wait_for(lambda: answers(url), WAIT_S)
    server_process.stop(timeout=5, run_dir=run_dir)

    # Something else answers at the URL (here: a stand-in we do not record): leave it alone.
    other_dir = run_dir / "other"
    other = real_start(port, command=stand_in(port), run_dir=other_dir, **MODEL)
    try:
        wait_for(lambda: answers(url), WAIT_S)
        assert server_process.autostart_if_needed(url, enabled=True, run_dir=run_dir, **MODEL) is None
        assert len(launched) == 1
        # left alone: the other server still runs, as a fresh look at its pid file shows
        assert server_process.status(other_dir).pid == other.pid and server_process.status(other_dir).running
        assert answers(url)
    finally:
        server_process.stop(timeout=5, run_dir=other_dir)


def test_a_server_started_by_another_process_is_found_and_stopped(run_dir: Path) -> None:
    """A dashboard refresh or a second dashboard: the pid file written by another process is
    trusted (its command line matches) and that server can be stopped from here."""
    port = free_port()
    starter = ("import os, sys\nfrom pipeline.client import local_server\n"
               f"local_server.start({port}, command={stand_in(port)!r}, run_dir={str(run_dir)!r}, "
               f"model_name='m', base_path='/nowhere/m')\n"
               "os._exit(0)  # leave without the atexit hook, like a killed dashboard\n")
    subprocess.run([sys.executable, "-c", starter], check=True, timeout=60, cwd=Path(__file__).parents[2])
    status = server_process.status(run_dir)
    assert status.running and status.port == port and status.exit_code is None
    wait_for(lambda: answers(status.url), WAIT_S)
    assert start(port, stand_in(port), run_dir).pid == status.pid
    assert server_process.stop(timeout=5, run_dir=run_dir) is True
    wait_for(lambda: not answers(status.url), WAIT_S)
