"""The Deploy page in real Chromium: one version answers the same rows over REST, in LiteRT, in the
Java client and with TF.js inside this very browser, and the numbers agree.

The browser route's predictions are read off the page (the JSON the page shows once the component
has reported back) and checked against the model server's REST answer for the same rows, fetched
directly by the test, within 1e-5 relative. Every request the browser makes, the component's
iframe included, must stay on 127.0.0.1: tf.min.js and the model come from the dashboard itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests
from playwright.sync_api import expect

from dashboard.components import tfjs_predict
from tests.e2e.browser import ROOT, newest_version, wait_idle
from tests.e2e.test_demo_story import shoot
from tests.support.net import wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not tfjs_predict.TFJS_MIN.is_file(), reason="tf.min.js missing: run `make tfjs`"),
]
TFJS = "TF.js (your browser)"


@pytest.fixture
def served_version(models_dir: Path, model_server: str) -> Iterator[int]:
    """The newest version of linear_model (trained here if the suite has none yet), AVAILABLE on
    the server. The TF.js copy the page publishes into dashboard/static/models/ is removed after."""
    base = models_dir / "linear_model"
    version = newest_version(base)
    if version is None:
        done = subprocess.run([sys.executable, "-m", "pipeline.train", "--base-path", str(base), "--quiet"],
                              cwd=ROOT, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        assert done.returncode == 0, done.stderr[-2000:]
        version = newest_version(base)

    def available() -> bool:
        answer = requests.get(f"{model_server}/v1/models/linear_model/versions/{version}", timeout=5)
        return answer.ok and answer.json()["model_version_status"][0]["state"] == "AVAILABLE"

    available.__name__ = f"version {version} is AVAILABLE"
    wait_for(available, 120, interval=0.5)
    yield version
    published = tfjs_predict.PUBLISHED / tfjs_predict.published_key(base / str(version))
    shutil.rmtree(published, ignore_errors=True)
    with contextlib.suppress(OSError):  # the folder itself, if the test made it (gitignored)
        tfjs_predict.PUBLISHED.rmdir()


def page_document(page) -> dict | None:
    """The predictions JSON the page shows, once it holds both the REST and the browser's answers
    (the browser reports back after the page has drawn, which reruns it)."""
    wait_idle(page)
    code = page.locator(".st-key-deploy_json code")
    if not code.count():
        return None
    document = json.loads(code.first.text_content())
    return document if {"REST", TFJS} <= set(document["predictions"]) else None


def test_every_route_answers_the_same_rows_in_a_real_browser(page, dashboard_url, model_server,
                                                              served_version, screenshots):
    requested: list[str] = []
    page.context.on("request", lambda request: requested.append(request.url))
    page.goto(f"{dashboard_url}/deploy")
    wait_idle(page)
    expect(page.get_by_role("heading", name="Deploy").first).to_be_visible()

    convert = page.locator(".st-key-deploy_convert button").first
    if "again" not in convert.inner_text():  # the version has no .tflite / TF.js files yet
        convert.click()
        page.get_by_text("Convert version").filter(has_text="again").first.wait_for(timeout=180_000)
        wait_idle(page)

    status = page.frame_locator("iframe[title*=tfjs_predict]").locator("#status")
    status.filter(has_text="predicted").wait_for(timeout=120_000)
    document = wait_for(lambda: page_document(page), 60, interval=0.5)
    page.mouse.move(0, 0)  # no tooltip in the picture
    shoot(page, screenshots, "deploy", 2600)

    rows, predictions = document["rows"], document["predictions"]
    assert document["version"] == served_version
    assert rows[:2] == [[1.0, 2.0], [5.0, 7.0]] and len(rows) > 2
    rest = requests.post(f"{model_server}/v1/models/linear_model/versions/{served_version}:predict",
                         json={"instances": rows}, timeout=10).json()["predictions"]
    reference = np.asarray(rest, dtype=float)[:, 0]
    np.testing.assert_allclose(predictions["REST"], reference, rtol=0, atol=0)
    np.testing.assert_allclose(predictions[TFJS], reference, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(predictions["LiteRT (.tflite)"], reference, rtol=1e-5, atol=1e-6)
    if "gRPC" in predictions:  # the suite's server also listens for gRPC on the dashboard's target
        np.testing.assert_allclose(predictions["gRPC"], reference, rtol=1e-6, atol=1e-6)
    if shutil.which("java"):
        np.testing.assert_allclose(predictions["Java client"], reference, rtol=0, atol=0)
    assert abs(reference[0] - 3) < 0.5 and abs(reference[1] - 6) < 0.5  # the tutorial's [1, 2], [5, 7]

    web = [url for url in requested if urlsplit(url).scheme in ("http", "https", "ws", "wss")]
    hosts = {urlsplit(url).hostname for url in web}
    assert hosts == {"127.0.0.1"}, sorted(url for url in requested if urlsplit(url).hostname != "127.0.0.1")
    assert any(url.endswith("/app/static/tfjs/tf.min.js") for url in requested)
    assert any(url.endswith("/model.json") and "/app/static/models/" in url for url in requested)


def test_a_file_is_scored_on_spark_from_the_batch_page(page, dashboard_url, served_version, screenshots,
                                                       tmp_path):
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java 17+ (`java`)")
    rng = np.random.default_rng(11)
    x = np.round(rng.uniform(-10, 10, size=(1000, 2)), 4)
    csv = tmp_path / "rows.csv"
    csv.write_text("x1,x2,y\n" + "".join(f"{a},{b},{2 * a - b + 3}\n" for a, b in x) + "1,two,3\n")
    requested: list[str] = []
    page.context.on("request", lambda request: requested.append(request.url))

    page.goto(f"{dashboard_url}/batch")
    wait_idle(page)
    page.locator("[data-testid=stFileUploaderDropzoneInput]").set_input_files(str(csv))
    page.get_by_text("rows.csv").first.wait_for()
    wait_idle(page)
    page.locator(".st-key-batch_run button").click()
    # The job's progress line first, then the report, which the app's rerun draws after the job ends
    # (the progress line says the same counts before it): wait for each value read.
    page.get_by_text("rows in: 1,001").first.wait_for(timeout=300_000)
    for label, value in (("Rows in", "1,001"), ("Scored", "1,000"), ("Rejected", "1")):
        metric = page.locator("[data-testid=stMetric]").filter(has_text=label)
        expect(metric.locator("[data-testid=stMetricValue]")).to_have_text(value, timeout=120_000)
    # the file is still chosen (score it again with one click); every sampled point is drawn with y = x
    assert page.get_by_text("rows.csv").first.is_visible()
    assert page.locator(".st-key-batch_run button").is_enabled()
    page.locator(".st-key-batch_scatter .js-plotly-plot").wait_for()
    assert page.get_by_role("button", name="Download rejects (.parquet, 1 row)").is_visible()
    # residuals against the truth the newest version was trained on, read from its run record
    expect(page.get_by_text(f"version {served_version}'s run record").first).to_be_visible()
    wait_idle(page)
    page.mouse.move(0, 0)
    shoot(page, screenshots, "batch", 2200)
    web = [url for url in requested if urlsplit(url).scheme.startswith("http")]
    assert {urlsplit(url).hostname for url in web} == {"127.0.0.1"}
