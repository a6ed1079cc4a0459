"""The REST client's HTTP sessions (`pipeline/client/sessions.py`): one pool per server, reused by
every thread (the dashboard runs each script run in a new thread), safe from many threads at once,
closed at exit. Against a real keep-alive HTTP server on loopback that counts its connections.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipeline.client import sessions
from pipeline.client.rest import ServingClient
from tests.support.net import wait_for
from tests.support.no_tensorflow import run_watched

STATUS = {"model_version_status": [
    {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}


class Counting(ThreadingHTTPServer):
    """A keep-alive (HTTP/1.1) server counting the connections it accepted and saw closed."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), KeepAlive)
        self.lock = threading.Lock()
        self.opened = 0
        self.closed = 0


class KeepAlive(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Counting

    def log_message(self, *args) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.opened += 1

    def finish(self) -> None:
        super().finish()
        with self.server.lock:
            self.server.closed += 1

    def do_GET(self) -> None:
        data = json.dumps(STATUS).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server() -> Iterator[Counting]:
    httpd = Counting()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    sessions.close_all()
    httpd.shutdown()
    httpd.server_close()


def url_of(server: Counting) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def in_a_new_thread(call) -> None:
    """Run `call` in a thread that then ends, as a Streamlit script run does."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def test_script_runs_in_new_threads_reuse_one_connection(server: Counting) -> None:
    client = ServingClient(url_of(server))
    for _ in range(30):
        in_a_new_thread(lambda: client.model_status("m"))
    assert server.opened == 1
    assert sessions.pool_for(client.base_url).created == 1


def test_every_client_of_a_server_shares_its_pool(server: Counting) -> None:
    for timeout in (1.0, 2.0, 5.0):
        ServingClient(url_of(server) + "/", timeout=timeout).is_up()  # the same base URL, normalised
    assert server.opened == 1


def test_many_threads_at_once_each_get_their_own_session(server: Counting) -> None:
    client = ServingClient(url_of(server))
    with ThreadPoolExecutor(max_workers=12) as workers:
        answers = list(workers.map(lambda _: client.model_status("m"), range(240)))
    assert all(answer == STATUS["model_version_status"] for answer in answers)
    pool = sessions.pool_for(client.base_url)
    assert pool.created <= 12 and server.opened == pool.created
    assert pool.idle == min(pool.created, sessions.MAX_IDLE)  # a burst leaves at most MAX_IDLE


def test_closing_the_pools_closes_their_connections(server: Counting) -> None:
    client = ServingClient(url_of(server))
    client.model_status("m")
    pool = sessions.pool_for(client.base_url)
    sessions.close_all()
    assert pool.closed and pool.idle == 0
    wait_for(lambda: server.closed == server.opened == 1, 30, interval=0.05)
    client.model_status("m")  # later calls get a fresh pool
    assert sessions.pool_for(client.base_url) is not pool and server.opened == 2


def test_the_pools_are_closed_when_the_process_exits(server: Counting) -> None:
    done = run_watched(f"""
import atexit
seen = {{}}
atexit.register(lambda: print(seen["pool"].closed, seen["pool"].idle))  # runs after the module's own
from pipeline.client import sessions
from pipeline.client.rest import ServingClient
client = ServingClient({url_of(server)!r})
print(client.is_up())
seen["pool"] = sessions.pool_for(client.base_url)
print(seen["pool"].idle)
""")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "1", "True", "0"]
