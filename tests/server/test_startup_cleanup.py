"""A server that cannot start cleans up what it started (issue 19 item 1).

`python -m pipeline.serving`'s `main` runs in this process, so what it leaves behind is visible:
its threads (model polling, the config poller, the servable closer, the gRPC loop) and the Unix
socket file it bound. A gRPC port that cannot be bound ends the start-up with status 1, as
`tensorflow_model_server` does; a REST port that cannot be bound too. Either way every thread the
server started ends and the socket file is gone.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.serving.__main__ import main
from tests.server.harness import Models, install_version
from tests.support.net import free_port, wait_for


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port something else is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def run_main(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as stop:  # how the server used to end on a gRPC start failure
        return int(stop.code or 0)


@pytest.mark.parametrize("which", ["grpc", "rest"])
def test_a_port_that_cannot_be_bound_leaves_no_thread_or_file_behind(
        which: str, busy_port: int, models: Models, tmp_path: Path) -> None:
    base = tmp_path / "m"
    install_version(models.half_plus_two, base, "1")
    config = tmp_path / "models.config"
    config.write_text(f"model_config_list {{ config {{ name: 'm' base_path: '{base}' "
                      "model_platform: 'tensorflow' } }")
    socket_path = tmp_path / "grpc.sock"
    grpc_port, rest_port = (busy_port, free_port()) if which == "grpc" else (free_port(), busy_port)
    before = set(threading.enumerate())
    status = run_main([f"--port={grpc_port}", f"--grpc_socket_path={socket_path}",
                       f"--rest_api_port={rest_port}", f"--model_config_file={config}",
                       "--model_config_file_poll_wait_seconds=1", "--file_system_poll_wait_seconds=1",
                       "--max_num_load_retries=0"])
    assert status == 1

    def started_threads() -> list[str]:
        return sorted(t.name for t in threading.enumerate() if t not in before and t.is_alive())

    def all_ended() -> bool:
        return not started_threads()

    try:
        wait_for(all_ended, 60)  # each thread the server started has ended
    finally:
        assert started_threads() == []
    assert not socket_path.exists()
