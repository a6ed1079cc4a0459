"""A real model server, a real ``streamlit run`` and Debian's Chromium, all on loopback.

Session-scoped: one server and one dashboard for the whole suite, both pointed at a
temporary models folder. Without Chromium the suite is skipped locally but fails in CI
(``CI=true``), where ``.ci/run`` installs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.client import local_server
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, ROOT, SCREENSHOTS_ENV, free_port, wait_http
from tests.support.net import stop_process


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        if os.environ.get("CI"):
            pytest.fail(f"Chromium not found at {CHROMIUM}; .ci/run installs it with apt-get")
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e-models")


@pytest.fixture(scope="session")
def grpc_port() -> int:
    """The model server's gRPC port: a free one, so the suite never collides with a server on 8500."""
    return free_port()


@pytest.fixture(scope="session")
def model_server(models_dir: Path, grpc_port: int, tmp_path_factory) -> Iterator[str]:
    port = free_port()
    log = (tmp_path_factory.mktemp("logs") / "server.log").open("w")
    # the embedded server's own command line (batching with its parameters file included), on free ports
    command = local_server.server_command(
        port, model_name="linear_model", base_path=models_dir / "linear_model", loaded_versions=1,
        run_dir=tmp_path_factory.mktemp("server-run"))
    proc = subprocess.Popen(
        [*command, f"--port={grpc_port}"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/v1/models/linear_model", proc)
        yield url
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def dashboard_url(model_server: str, models_dir: Path, grpc_port: int, tmp_path_factory) -> Iterator[str]:
    port = free_port()
    log = (tmp_path_factory.mktemp("logs") / "streamlit.log").open("w")
    env = {**os.environ, "SERVING_URL": model_server, "GRPC_TARGET": f"127.0.0.1:{grpc_port}",
           "MODELS_DIR": str(models_dir),
           "MODEL_BASE_PATH": str(models_dir / "linear_model"), "AUTOSTART_SERVER": "0",
           "SERVING_RUN_DIR": str(tmp_path_factory.mktemp("run")),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", f"--server.port={port}",
         "--server.headless=true", "--browser.gatherUsageStats=false"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/_stcore/health", proc)
        yield url
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> Path:
    """The folder screenshots are written to: `$SCREENSHOTS_DIR` (`make screenshots`), else a
    temporary folder."""
    chosen = os.environ.get(SCREENSHOTS_ENV)
    return Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def browser(chromium_path: str):
    """Playwright's sync API keeps an event loop running in this thread while it is open,
    so it is closed after each module instead of at the end of the whole session."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, dashboard_url: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    context.close()
