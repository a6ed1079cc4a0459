"""Limits and exposure: what the server listens on, how much it reads, how long it runs a model, which
files a request can reach, CORS, and the dashboard's handling of untrusted text and of its server.

The claims checked here are the ones SECURITY.md makes.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from tests.reliability.conftest import GUARD_MAX_BODY, GUARD_TIMEOUT_MS, MODEL, Guarded, predict
from tests.reliability.probes import (
    DirectoryWatch,
    _read_response,
    build_request,
    is_loopback_address,
    listening_addresses,
    non_loopback_ipv4,
    raw_request,
)
from tests.server.harness import REPO, error_of, metric_value, ok_json
from tests.support.net import free_port, wait_for

PREDICT = f"/v1/models/{MODEL}:predict"
GOOD = b'{"instances": [[1.0, 2.0]]}'


def test_the_server_listens_on_loopback_only(guarded_server: Guarded) -> None:
    port = guarded_server.server.port
    addresses = listening_addresses(port)
    assert addresses and all(is_loopback_address(a) for a in addresses), addresses
    other = non_loopback_ipv4()
    if other is not None:  # from this machine's other address, nothing answers
        with pytest.raises(OSError):
            socket.create_connection((other, port), timeout=2).close()
    # The probe does see a socket bound to every interface, so the check above can fail.
    with socket.socket() as everywhere:
        everywhere.bind(("0.0.0.0", 0))
        everywhere.listen()
        assert listening_addresses(everywhere.getsockname()[1]) == ["0.0.0.0"]


def test_body_limit_is_exact_and_refuses_huge_declarations_at_once(guarded_server: Guarded) -> None:
    port = guarded_server.server.port
    at_limit = GOOD + b" " * (GUARD_MAX_BODY - len(GOOD))
    answer = raw_request(port, "POST", PREDICT, at_limit)
    assert (answer.status, answer.json()) == (200, {"predictions": [[3.0]]})
    over = raw_request(port, "POST", PREDICT, at_limit + b" ")
    assert over.status == 413 and str(GUARD_MAX_BODY) in over.json()["error"]
    # 10 GB declared, not one byte of it sent: a 413 can only come without waiting for (or buffering)
    # the body (a server that waited would answer nothing, or time the request out).
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(build_request("POST", PREDICT, b"", {"Content-Type": "application/json"}, 10**10))
        refused = _read_response(sock, time.monotonic() + 60)
    assert refused.status == 413 and list(refused.json()) == ["error"]


def test_timeout_is_504_while_other_requests_are_served(guarded_server: Guarded, tmp_path: Path) -> None:
    """A run held at a gate (the identity model's `gated` signature) gets its 504 at the limit
    (never before) and is cancelled there, the gate still closed; while it occupies its worker other
    requests are answered."""
    server = guarded_server.server
    gate = tmp_path / "gate"
    slow_body = {"signature_name": "gated", "inputs": {"gate": str(gate)}}
    outcome: dict[str, object] = {}

    def pending() -> float:
        return metric_value(server, "tensorflow_serving_pending_requests")

    def slow_call() -> None:
        started = time.monotonic()
        response = server.post("/v1/models/identity:predict", slow_body)
        outcome["elapsed"] = time.monotonic() - started
        outcome["response"] = response

    idle = pending()
    thread = threading.Thread(target=slow_call)
    try:
        thread.start()
        wait_for(lambda: pending() > idle, 60)  # the server has the slow request now
        while thread.is_alive():  # the slow run occupies one worker; the others keep answering
            assert predict(server, [[1.0, 2.0]]) == [[3.0]]
        thread.join()
        # the session run stopped at the deadline, as TF Serving's does (RunOptions.timeout_in_ms)
        assert error_of(outcome["response"], 504) == "Timed out waiting for notification"
        wait_for(lambda: pending() == idle, 60)  # nothing of the slow request runs on, gate still closed
    finally:
        gate.touch()
    assert outcome["elapsed"] >= GUARD_TIMEOUT_MS / 1000 * 0.9  # never before the limit


TRAVERSALS = [
    ("POST", "/v1/models/..%2F..%2Fetc:predict"), ("GET", "/v1/models/..%2F..%2Fetc"),
    ("POST", "/v1/models/..%2Fdecoy:predict"), ("GET", "/v1/models/..%2Fdecoy/versions/1/metadata"),
    ("POST", "/v1/models/decoy:predict"), ("GET", "/v1/models/decoy"), ("GET", "/v1/models/etc/metadata"),
    ("POST", "/v1/models/linear_model%2F..%2Fetc/versions/1:predict"),
    ("POST", "/v1/models/linear_model%2F..%2F..%2Fdecoy:regress"),
    ("POST", "/v1/models/linear_model/labels/..%2F..:predict"),
    ("GET", "/v1/models/linear_model/labels/..%2F..%2Fdecoy/metadata"),
    ("POST", "/v1/models/linear_model/labels/%2E%2E%2Fetc:classify"),
    ("POST", "/v1/models/linear_model/versions/1%2F..%2F..%2Fdecoy:predict"),
    ("POST", "/v1/models/linear_model/versions/..%2F1:predict"), ("POST", "/v1/models/../../etc:predict"),
    ("POST", "/v1/models/linear_model%00:predict"), ("GET", "/v1/models/linear_model%00..%2Fdecoy"),
    ("POST", "/v1/models/linear_model/labels/stable%00:predict"),
    ("POST", "/v1/models/" + "a" * 20_000 + ":predict"), ("GET", "/v1/models/" + "%2E%2E%2F" * 2000 + "etc"),
]


def load_count(guarded: Guarded) -> float:
    text = guarded.server.get("/monitoring/prometheus/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("tensorflow_serving_model_load_count_total{"))


def test_names_and_labels_never_reach_the_filesystem(guarded_server: Guarded) -> None:
    root, server = guarded_server.root, guarded_server.server
    absolute = [("POST", f"/v1/models/{quote(str(d.parent), safe='')}:predict")
                for d in guarded_server.decoys]
    watched = [root / "models", *(p for d in guarded_server.decoys for p in (d.parent, d, d / "variables"))]
    config_before = guarded_server.config.read_bytes(), guarded_server.config.stat().st_mtime_ns
    loads_before = load_count(guarded_server)
    watch = DirectoryWatch(watched)
    try:
        for method, target in TRAVERSALS + absolute:
            body = GOOD if method == "POST" else b""
            answer = raw_request(server.port, method, target, body, {"Content-Type": "application/json"})
            assert 400 <= answer.status < 500, (target[:120], answer)
            assert answer.headers["content-type"] == "application/json"
            assert isinstance(answer.json()["error"], str)
        # Until the server has listed its own base path twice since: a full poll after the requests,
        # so anything they could have started would show up by now.
        mark = len(watch.drain())
        own = (str(root / "models"), MODEL)
        wait_for(lambda: watch.drain()[mark:].count(own) >= 2, 30)
        events = watch.drain()
    finally:
        watch.close()
    served = [(str(root / "models"), name) for name in (MODEL, "identity")]  # its own base paths
    touched = [event for event in events if event not in served]
    assert touched == [], f"the server opened folders named in requests: {touched[:10]}"
    assert (guarded_server.config.read_bytes(), guarded_server.config.stat().st_mtime_ns) == config_before
    assert load_count(guarded_server) == loads_before
    for decoy in ("decoy", "etc", "..%2Fdecoy"):
        assert error_of(server.get(f"/v1/models/{decoy}"), 404).startswith("Could not find any versions")
    assert predict(server, [[1.0, 2.0]]) == [[3.0]]


def test_cors_headers_only_when_enabled(guarded_server: Guarded) -> None:
    server, origin = guarded_server.server, {"Origin": "http://evil.example"}
    answers = [server.post(PREDICT, {"instances": [[1.0, 2.0]]}, headers=origin),
               server.get(f"/v1/models/{MODEL}", headers=origin),
               server.get("/v1/models/nope", headers=origin),
               requests.options(server.url + PREDICT, timeout=30,
                                headers={**origin, "Access-Control-Request-Method": "POST"})]
    for answer in answers:
        assert not [h for h in answer.headers if h.lower().startswith("access-control-")], answer.headers


# -- the dashboard -----------------------------------------------------------------------------------

DASHBOARD = REPO / "dashboard"
HTML_SINKS = {"html"}  # st.html, components.html, components.v1.html


def test_dashboard_code_has_no_raw_html_sink_fed_with_data() -> None:
    """Every `unsafe_allow_html=True` and `*.html(...)` call in the dashboard may only take literals."""
    offenders = []
    for path in sorted(DASHBOARD.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            unsafe = any(k.arg == "unsafe_allow_html"
                         and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                         for k in node.keywords)
            sink = isinstance(node.func, ast.Attribute) and node.func.attr in HTML_SINKS
            if (unsafe or sink) and not all(isinstance(a, ast.Constant) for a in node.args):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == [], f"user data may reach raw HTML at {offenders}"


MARKER = "<script>alert('x')</script><img src=x onerror=alert(1)>"


def _walk(node):
    yield node
    children = getattr(node, "children", None)
    if isinstance(children, dict):
        for child in children.values():
            yield from _walk(child)


def _elements_showing(at, text: str) -> list[str]:
    """Proto type names of the elements holding `text`; fails on one that renders it as HTML."""
    kinds = []
    for node in (*_walk(at.main), *_walk(at.sidebar)):
        proto = getattr(node, "proto", None)
        if proto is None or text not in str(proto):
            continue
        kinds.append(type(proto).__name__)
        assert kinds[-1] not in ("Html", "IFrame"), node
        assert not getattr(proto, "allow_html", False), node
    return kinds


def test_dashboard_shows_hostile_text_as_text(guarded_server: Guarded, monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    """A `<script>` in a CSV cell and in a label (echoed back in the real server's error message) is
    shown, verbatim, only in elements that escape HTML: never st.html, an iframe or unsafe markdown."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SERVING_URL", guarded_server.server.url)
    monkeypatch.setenv("SERVING_RUN_DIR", str(tmp_path))
    at = AppTest.from_file(str(DASHBOARD / "views" / "predict.py"), default_timeout=30).run()
    at.file_uploader(key="predict_csv").upload("rows.csv", f"x1,x2\n1,{MARKER}\n".encode(), "text/csv").run()
    # the cell, quoted (shortened) in the parse error, and nothing sent
    assert any(MARKER[:24] in e.value and "is not a number" in e.value for e in at.error), at.error
    shown = _elements_showing(at, "<script>")
    at.file_uploader(key="predict_csv").set_value(None).run()
    at.selectbox(key="predict_target").select("label").run()
    at.text_input(key="predict_label").input(MARKER).run()
    assert not at.exception, at.exception
    server_errors = [e.value for e in at.error if f"Unrecognized servable version label: {MARKER}" in e.value]
    assert len(server_errors) == 1  # the metadata call, echoed by the server, shown once
    assert at.button(key="predict_send").disabled  # nothing to send to an unknown label
    shown += _elements_showing(at, "<script>")
    assert shown and set(shown) <= {"Alert", "Markdown", "Code", "Text"}, shown


async def _open_session(dashboard_port: int, server_url: str, timeout_s: float) -> bool:
    """Open a browser-like session (the websocket plus a rerun), so app.py runs; True once the
    embedded server answers at `server_url`."""
    import websockets
    from streamlit.proto.BackMsg_pb2 import BackMsg

    message = BackMsg()
    message.rerun_script.query_string = ""
    deadline = time.monotonic() + timeout_s
    async with websockets.connect(f"ws://127.0.0.1:{dashboard_port}/_stcore/stream",
                                  subprotocols=["streamlit"]) as websocket:
        await websocket.send(message.SerializeToString())
        while time.monotonic() < deadline:
            try:
                requests.get(server_url + "/v1/models/linear_model", timeout=1)
                return True
            except requests.ConnectionError:
                pass
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(websocket.recv(), 0.5)
    return False


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_the_embedded_server_stops_when_the_dashboard_exits(tmp_path: Path, templates, how: int) -> None:
    from tests.server.harness import install_version

    install_version(templates.linear, tmp_path / "models" / MODEL, "1")
    server_port, dashboard_port = free_port(), free_port()
    server_url = f"http://127.0.0.1:{server_port}"
    env = {**os.environ, "AUTOSTART_SERVER": "1", "SERVING_URL": server_url,
           "SERVING_RUN_DIR": str(tmp_path / "run"), "MODELS_DIR": str(tmp_path / "models"),
           "MODEL_BASE_PATH": str(tmp_path / "models" / MODEL),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    with (tmp_path / "streamlit.log").open("wb") as log:
        dashboard = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.address", "127.0.0.1",
             "--server.port", str(dashboard_port), "--server.headless", "true"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    server_pid = None
    try:
        health = f"http://127.0.0.1:{dashboard_port}/_stcore/health"

        def dashboard_answers() -> bool:
            assert dashboard.poll() is None, (tmp_path / "streamlit.log").read_text()
            try:
                requests.get(health, timeout=1)
                return True
            except requests.ConnectionError:
                return False

        wait_for(dashboard_answers, 60, interval=0.2)
        assert asyncio.run(_open_session(dashboard_port, server_url, 120)), \
            "the embedded server never answered"
        server_pid = json.loads((tmp_path / "run" / "serving.pid").read_text())["pid"]
        assert ok_json(requests.get(server_url + f"/v1/models/{MODEL}", timeout=10))
        dashboard.send_signal(how)
        dashboard.wait(30)
        wait_for(lambda: not _running(server_pid), 60, interval=0.1)
        with pytest.raises(requests.ConnectionError):
            requests.get(server_url + f"/v1/models/{MODEL}", timeout=2)
    finally:
        if dashboard.poll() is None:
            dashboard.kill()
            dashboard.wait(10)
        if server_pid is not None and _running(server_pid):
            os.kill(server_pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"

