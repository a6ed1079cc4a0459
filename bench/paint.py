"""First paint of a Streamlit app: from ``streamlit run`` process start to the first finished run.

Measured with Playwright in Debian's Chromium: the browser is launched before the clock starts;
the clock starts when the ``streamlit run`` process is spawned and stops when, on the first page
load, ``[data-testid=stApp][data-test-script-state=notRunning]`` appears (Streamlit marks the app
``initial`` until its first script run, so this is the end of the first full run). The dashboard is
started with ``AUTOSTART_SERVER=0`` and ``SERVING_URL`` on a closed loopback port, so no model server
is part of the number, and it reads the bench's own models folder (one version), not the project's.
The apps are painted in interleaved rounds (:func:`first_paints`), so that their ratio can be the
median of the rounds' ratios.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.contenders import REPO, WORK, free_port, subprocess_env

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
IDLE = "[data-testid=stApp][data-test-script-state=notRunning]"
DASHBOARD = REPO / "dashboard" / "app.py"
ONE_LINE_APP = REPO / "bench" / "one_line_app.py"
TIMEOUT_S = 180.0


def dashboard_env() -> dict[str, str]:
    """No server started or reached (a closed port refuses at once); the bench's models; its own run dir."""
    return subprocess_env(AUTOSTART_SERVER="0", SERVING_URL=f"http://127.0.0.1:{free_port()}",
                          MODELS_DIR=str(WORK / "models"), SERVING_RUN_DIR=str(WORK / "run"))


def wait_port(port: int, process: subprocess.Popen, deadline: float) -> None:
    """Return once ``process`` (a ``streamlit run``) accepts connections on ``port``."""
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode} before opening its port")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"streamlit did not open port {port} within {TIMEOUT_S:.0f} s") from None
            time.sleep(0.02)


def stop(process: subprocess.Popen) -> None:
    """End ``process`` (one this bench started): terminate, then kill if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(15)


def first_paint_s(browser: Any, app: Path, log_path: Path, python: str = sys.executable) -> float:
    """Seconds from spawning ``streamlit run app`` to its first finished script run in a new tab."""
    port = free_port()
    command = [python, "-m", "streamlit", "run", str(app), "--server.port", str(port),
               "--server.address", "127.0.0.1", "--server.headless", "true",
               "--browser.gatherUsageStats", "false"]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    context = browser.new_context()
    with log_path.open("ab") as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO, env=dashboard_env(), stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_port(port, process, time.monotonic() + TIMEOUT_S)
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{port}/", timeout=TIMEOUT_S * 1000)
        page.wait_for_selector(IDLE, timeout=TIMEOUT_S * 1000)
        elapsed = time.perf_counter() - started
        if page.query_selector("[data-testid=stException]") is not None:
            raise RuntimeError(f"{app.name} showed an exception on its first run (log: {log_path})")
        return elapsed
    finally:
        context.close()
        stop(process)


def first_paints(apps: dict[str, Path], repeats: int, log_dir: Path) -> dict[str, list[float]]:
    """``repeats`` first paints per app, in rounds: each round paints every app once, forwards in
    even rounds and backwards in odd ones, so round i of one app pairs with round i of the other,
    measured moments apart, and neither app always goes first."""
    from playwright.sync_api import sync_playwright

    samples: dict[str, list[float]] = {name: [] for name in apps}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            for round_index in range(repeats):
                names = list(apps) if round_index % 2 == 0 else list(reversed(apps))
                for name in names:
                    samples[name].append(first_paint_s(browser, apps[name], log_dir / f"paint-{name}.log"))
        finally:
            browser.close()
    return samples

