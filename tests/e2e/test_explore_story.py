"""A tester explores the models a server serves, in Chromium: the dashboard is started against a
model server it did not start (``AUTOSTART_SERVER=0``), which serves seven models of every kind (an
image classifier, a text model with a string lookup, a three-input/two-output model, a picture with
a number and a text per example, a TF1 classify model, TF Serving's half_plus_two and the
tutorial's model). Each is opened by
``/predict?model=NAME``; the page already holds a valid example, Send answers it, and the answer is
read from the response the page shows. Then the request history follows the newest Send and a Send
adds no browser-history entry, and a shared link opens the same view over gRPC and sends it.
A screenshot of a foreign model explored is kept for the README (``make screenshots``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.browser import ROOT, free_port, wait_http, wait_idle
from tests.e2e.test_demo_story import shoot
from tests.support import explore_models
from tests.support.net import stop_process

pytestmark = pytest.mark.e2e

EXPECTED = {
    # model: (what the prefilled example is, a piece of the answer the page shows)
    "linear_model": ("the tutorial", '"predictions": [[3.0], [6.0]]'),
    "half_plus_two": ("the signature", '"predictions": [[2.0]]'),
    "multi_io": ("version 1's warm-up requests", '"predictions": [{"score": 2.0, "tier": "low"}]'),
    "text_model": ("the signature", '"probabilities": [0.5, 0.5]'),
    "image_classifier": ("the signature", '"predictions": [[0.333333'),
    "image_mixed": ("version 1's warm-up requests", '"predictions": [{"brightness": 2.0'),
    "tf1_classifier": ("the version's warm-up records", '"results": [[["a", 0.3705'),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[str, int, Path]]:
    """Seven models built into a temporary folder and served by a model server started here, as a
    team's server would be: `--model_config_file` naming each model."""
    root = tmp_path_factory.mktemp("explore-models")
    built = subprocess.run([sys.executable, "-m", "tests.support.explore_models", str(root)], cwd=ROOT,
                           capture_output=True, text=True, timeout=600,
                           env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert built.returncode == 0, built.stderr[-2000:]
    config = root / "models.config"
    config.write_text(explore_models.models_config(root))
    port, grpc_port = free_port(), free_port()
    log = (tmp_path_factory.mktemp("logs") / "explore-server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.serving", f"--rest_api_port={port}", f"--port={grpc_port}",
         f"--model_config_file={config}", "--file_system_poll_wait_seconds=1"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    url = f"http://127.0.0.1:{port}"
    try:
        for name in explore_models.NAMES:
            wait_http(f"{url}/v1/models/{name}/metadata", proc, timeout_s=240)
        yield url, grpc_port, root
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def explorer(served, tmp_path_factory) -> Iterator[str]:
    """The dashboard pointed at that server (it starts none), reading the models folder for
    warm-up records."""
    url, grpc_port, root = served
    port = free_port()
    log = (tmp_path_factory.mktemp("logs") / "explore-streamlit.log").open("w")
    env = {**os.environ, "SERVING_URL": url, "GRPC_TARGET": f"127.0.0.1:{grpc_port}", "MODELS_DIR": str(root),
           "AUTOSTART_SERVER": "0", "SERVING_RUN_DIR": str(tmp_path_factory.mktemp("explore-run")),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("MODEL_BASE_PATH", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", f"--server.port={port}",
         "--server.headless=true", "--browser.gatherUsageStats=false"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    dashboard = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{dashboard}/_stcore/health", proc)
        yield dashboard
    finally:
        stop_process(proc)


def response_text(page) -> str:
    """The answer as the page shows it (the exchange's Response tab)."""
    page.get_by_role("tab", name="Response").first.click()
    answers = re.compile(r'"(predictions|outputs|results)"')
    code = page.locator("[data-testid=stCode]").filter(has_text=answers)
    code.first.wait_for()
    return code.first.inner_text()


@pytest.mark.parametrize("model", list(EXPECTED))
def test_each_model_opens_by_link_with_an_example_and_answers_send(page, explorer, model,
                                                                   screenshots) -> None:
    source, answer = EXPECTED[model]
    page.goto(f"{explorer}/predict?model={model}")
    wait_idle(page)
    picker = page.locator(".st-key-model_picker")
    assert model in picker.inner_text() + picker.locator("input").first.input_value()
    page.get_by_text(re.compile(f"started from {re.escape(source)}")).first.wait_for()
    page.locator(".st-key-predict_send button").click()
    answered = re.compile(r"Answered by the latest version \(version 1\)")
    page.get_by_text(answered).first.wait_for(timeout=60_000)
    wait_idle(page)
    assert answer in response_text(page).replace("\n", "")
    assert page.locator("[data-testid=stException]").count() == 0
    if model == "multi_io":
        page.get_by_role("tab", name="Request").first.click()
        page.get_by_role("heading", name="Predict").first.scroll_into_view_if_needed()
        shoot(page, screenshots, "predict-any-model", 1700)


def test_history_follows_sends_and_a_link_reopens_the_view_over_grpc(page, explorer) -> None:
    page.goto(f"{explorer}/predict?model=linear_model")
    wait_idle(page)
    entries_before = page.evaluate("history.length")
    page.locator(".st-key-predict_send button").click()
    page.get_by_text(re.compile(r"Answered by")).first.wait_for(timeout=60_000)
    wait_idle(page)
    page.locator(".st-key-predict_random_count input").fill("3")
    page.locator(".st-key-predict_random_count input").press("Enter")
    wait_idle(page)
    page.locator(".st-key-predict_add_random button").click()
    page.get_by_text("5 rows in the table").wait_for()
    wait_idle(page)
    page.locator(".st-key-predict_transport").get_by_text("gRPC").click()
    wait_idle(page)
    page.locator(".st-key-predict_send button").click()
    page.get_by_text("Round trip (gRPC)").first.wait_for(timeout=90_000)
    wait_idle(page)
    history = page.locator(".st-key-history_pick")
    shown = history.inner_text() + (history.locator("input").first.input_value() if history.locator(
        "input").count() else "")
    assert "· 5 rows ·" in shown  # the newest request, not the one that was newest when the page loaded
    assert page.evaluate("history.length") == entries_before  # Send is no navigation: Back leaves Predict
    link = page.locator("[data-testid=stCode]").filter(has_text="send=1").first.inner_text().strip()
    assert "transport=gRPC" in link and "rows=" in link

    fresh = page.context.new_page()
    fresh.goto(link)
    wait_idle(fresh)
    fresh.get_by_text("Round trip (gRPC)").first.wait_for(timeout=90_000)  # the link sent by itself
    wait_idle(fresh)
    assert "5 rows in the table" in fresh.locator("[data-testid=stMain]").inner_text()
    outputs = json.loads(response_text(fresh))["outputs"]["output_0"]
    assert len(outputs) == 5 and outputs[0] == pytest.approx([3.0])
    fresh.close()
