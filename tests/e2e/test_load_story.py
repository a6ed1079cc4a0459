"""The Load page in real Chromium: a short sweep against the suite's model server, run from the page
in a child process, drawn as it goes, and its levels, charts and the server's breakdown shown when it
ends; the server's own count of answered requests shows the load reached it (no timing bounds)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from pipeline.client.server_metrics import parse_scrape
from tests.e2e.browser import ROOT, wait_idle
from tests.e2e.test_demo_story import open_page, shoot
from tests.support.net import wait_for

pytestmark = pytest.mark.e2e
MODEL = "linear_model"


def ensure_version(models_dir: Path, model_server: str) -> None:
    """A version of linear_model AVAILABLE on the suite's server (trained here if there is none)."""
    base = models_dir / MODEL
    if not any(p.name.isdigit() for p in base.glob("*")) if base.is_dir() else True:
        done = subprocess.run([sys.executable, "-m", "pipeline.train", "--base-path", str(base), "--quiet"],
                              cwd=ROOT, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        assert done.returncode == 0, done.stderr[-2000:]

    def available() -> bool:
        answer = requests.get(f"{model_server}/v1/models/{MODEL}", timeout=5)
        return answer.ok and any(s["state"] == "AVAILABLE" for s in answer.json()["model_version_status"])

    wait_for(available, 180, interval=0.5)


def answered_ok(model_server: str) -> float:
    text = requests.get(f"{model_server}/monitoring/prometheus/metrics", timeout=30).text
    return parse_scrape(text, MODEL, 0.0).requests.get("OK", 0.0)


def fill(page, key: str, value: str) -> None:
    page.locator(f".st-key-{key} input").fill(value)
    page.keyboard.press("Tab")
    wait_idle(page)


def test_a_short_sweep_runs_from_the_load_page(page, dashboard_url: str, model_server: str, models_dir: Path,
                                                screenshots: Path) -> None:
    ensure_version(models_dir, model_server)
    before = answered_ok(model_server)
    open_page(page, dashboard_url, "load")
    page.wait_for_selector("text=An example built from the signature")
    fill(page, "load_levels", "1,2")
    fill(page, "load_duration", "1")
    fill(page, "load_warmup", "0.3")
    page.locator(".st-key-load_run_button button").click()
    page.wait_for_selector("text=Done: 2 level(s) measured", timeout=240_000)
    wait_idle(page)
    page.wait_for_selector(".js-plotly-plot >> nth=2")  # throughput, latency and errors drawn
    table = page.locator("[data-testid=stDataFrame]").first
    assert table.is_visible()
    assert page.get_by_text("Server breakdown", exact=False).first.is_visible()
    assert page.get_by_text("whole request in the server").first.is_visible()  # the breakdown's legend
    assert answered_ok(model_server) > before  # the page's load reached the server
    shoot(page, screenshots, "load", height=2600)
