"""A tester sees and replays traffic, in Chromium: a curl request to a model the server logs
(`live`, logging_config in the dashboard's run folder) appears on its Traffic page; the dashboard
reads a model's request log (`hpt`: written in its run folder as the server writes it), lists every
request newest first, and a replay on the running server's versions 1 and 2 shows where they
differ, request by request. Version 1 answers y = 0.5 x + 2, version 2 y = x: of the three
requests answered OK, only x = 4 agrees. A screenshot is kept for the README (``make screenshots``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests

from pipeline.serving.log_files import Transport
from pipeline.store import traffic
from tests.e2e.browser import ROOT, free_port, wait_http, wait_idle
from tests.e2e.test_demo_story import shoot
from tests.support.net import stop_process, wait_for
from tests.support.traffic_logs import Call, write_traffic

pytestmark = pytest.mark.e2e

MODEL = "hpt"
LIVE = "live"
CALLS = [Call([4.0], [4.0]), Call([1.0], [2.5], transport=Transport.GRPC),
         Call([9.0], None, status="INVALID_ARGUMENT", message="bad input x"), Call([10.0], [7.0], version=2)]
BUILD = """
import sys
from pathlib import Path
from tests.server.savedmodels import export_half_plus_two
base = Path(sys.argv[1])
export_half_plus_two(base / "1", 0.5, 2.0)
export_half_plus_two(base / "2", 1.0, 0.0)
"""


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory) -> Iterator[str]:
    """Versions 1 and 2 of `hpt` served (policy all), its request log in the dashboard's run folder."""
    root = tmp_path_factory.mktemp("traffic-story")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    built = subprocess.run([sys.executable, "-c", BUILD, str(root / "models" / MODEL)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    run = root / "run"
    write_traffic(traffic.prefix(run, MODEL), CALLS, model=MODEL, start=time.time() - 60, step_s=5)
    config = root / "models.config"
    base = root / "models" / MODEL
    config.write_text(f'model_config_list {{ config {{ name: "{MODEL}" base_path: "{base}" '
                      'model_platform: "tensorflow" model_version_policy { all {} } } '
                      f'config {{ name: "{LIVE}" base_path: "{base}" model_platform: "tensorflow" '
                      f'logging_config {{ log_collector_config {{ type: "file" '
                      f'filename_prefix: "{traffic.prefix(run, LIVE)}" }} '
                      'sampling_config { sampling_rate: 1.0 } } } }')
    port, grpc_port = free_port(), free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "pipeline.serving", f"--rest_api_port={port}", f"--port={grpc_port}",
         f"--model_config_file={config}"], cwd=ROOT, env=env,
        stdout=(root / "server.log").open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    dashboard_port = free_port()
    streamlit = None
    try:
        wait_http(f"{url}/v1/models/{MODEL}", server, timeout_s=240)
        wait_for(lambda: [s["state"] for s in requests.get(f"{url}/v1/models/{MODEL}", timeout=5).json()
                          ["model_version_status"]] == ["AVAILABLE", "AVAILABLE"], 240)
        streamlit = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", f"--server.port={dashboard_port}",
             "--server.headless=true", "--browser.gatherUsageStats=false"], cwd=ROOT,
            env={**env, "SERVING_URL": url, "GRPC_TARGET": f"127.0.0.1:{grpc_port}",
                 "MODELS_DIR": str(root / "models"), "AUTOSTART_SERVER": "0", "SERVING_RUN_DIR": str(run)},
            stdout=(root / "streamlit.log").open("w"), stderr=subprocess.STDOUT)
        wait_http(f"http://127.0.0.1:{dashboard_port}/_stcore/health", streamlit)
        yield f"http://127.0.0.1:{dashboard_port}", url
    finally:
        if streamlit is not None:
            stop_process(streamlit)
        stop_process(server)


def choose(page, key: str, option: str) -> None:
    page.locator(f".st-key-{key}").get_by_role("combobox").click()
    page.get_by_role("option", name=option, exact=True).click()
    wait_idle(page)


def test_a_curl_request_appears_on_the_traffic_page(page, dashboard) -> None:
    address, server = dashboard
    page.goto(f"{address}/traffic?model={LIVE}")
    wait_idle(page)
    page.get_by_text(re.compile(f"No request logged for `?{LIVE}`? yet")).wait_for()
    sent = subprocess.run(["curl", "-sS", "-d", '{"instances": [6.0]}', f"{server}/v1/models/{LIVE}:predict"],
                          capture_output=True, text=True, timeout=60)
    # version 2, the latest, answers y = x
    assert sent.returncode == 0 and '"predictions": [6.0]' in sent.stdout, sent.stdout + sent.stderr
    page.get_by_text("1 of 1 logged request(s), newest first").wait_for(timeout=60_000)  # the live refresh
    assert page.locator("[data-testid=stException]").count() == 0


def test_recorded_traffic_replayed_on_two_versions_shows_where_they_differ(page, dashboard,
                                                                          screenshots) -> None:
    page.goto(f"{dashboard[0]}/traffic?model={MODEL}")
    wait_idle(page)
    page.get_by_text("4 of 4 logged request(s), newest first").wait_for()
    page.locator(".st-key-traffic_live").get_by_text(re.compile("Refresh every")).click()  # hold still
    wait_idle(page)
    choose(page, "traffic_status", "OK")
    page.get_by_text("3 of 4 logged request(s), newest first").wait_for()
    choose(page, "traffic_a", "1")
    choose(page, "traffic_b", "2")
    page.locator(".st-key-traffic_replay_go button").click()
    replayed = "Replayed 3 request(s) over REST: A = version 1, B = version 2."
    page.get_by_text(replayed).wait_for(timeout=60_000)
    wait_idle(page)
    agreeing = page.locator("[data-testid=stMetric]").filter(has_text="Agreeing within 1e-06")
    assert "33%" in agreeing.inner_text() and "1 of 3" in agreeing.inner_text()
    largest = page.locator("[data-testid=stMetric]").filter(has_text="Largest difference")
    assert "3" in largest.inner_text()
    assert page.locator("[data-testid=stException]").count() == 0
    assert page.locator("[data-testid=stDataFrame]").count() == 2  # the requests and the replay's rows
    shoot(page, screenshots, "traffic", 2300)
