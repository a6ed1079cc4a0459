"""The demo path in real Chromium against a real ``streamlit run`` and a real model server.

train -> the version appears AVAILABLE -> predict the tutorial's rows [1, 2] and [5, 7] ->
predictions near [3, 6] are shown and plotted. Each page is screenshotted (into a temporary folder;
``make screenshots`` writes them to ``docs/screenshots/`` for the README).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import requests

from tests.e2e.browser import ROOT, wait_idle

README_SHOTS = ROOT / "docs" / "screenshots"

pytestmark = pytest.mark.e2e


def shoot(page, folder: Path, name: str, height: int = 2200) -> Path:
    """Screenshot the whole page into ``folder/<name>.png``: Streamlit scrolls inside its own
    container, so the viewport is made tall enough for the page instead of using ``full_page``."""
    folder.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": height})
    wait_idle(page)
    page.wait_for_timeout(500)  # let Plotly finish drawing after the resize
    page.screenshot(path=str(folder / f"{name}.png"))
    page.set_viewport_size(size)
    return folder / f"{name}.png"


def open_page(page, dashboard_url: str, path: str) -> None:
    page.goto(f"{dashboard_url}/{path}")
    wait_idle(page)


def _stamps(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.png")}


def test_train_serve_predict_story(page, dashboard_url, model_server, screenshots):
    readme_before = _stamps(README_SHOTS)
    # Train: the default form (800 samples, 100 epochs) trains and exports version 1.
    open_page(page, dashboard_url, "")
    assert page.get_by_role("heading", name="Train").first.is_visible()
    page.locator(".st-key-train_submit button").click()
    page.get_by_text(re.compile(r"Run .* trained .*version 1")).wait_for(timeout=180_000)
    wait_idle(page)
    page.locator(".st-key-result_planes .js-plotly-plot").wait_for()
    page.locator(".st-key-result_bars .js-plotly-plot").wait_for()
    shoot(page, screenshots, "train", 2800)

    # The model server picks the new version up by itself.
    status = requests.get(f"{model_server}/v1/models/linear_model", timeout=5).json()
    assert status["model_version_status"][0]["version"] == "1"

    # Models: the version on disk, joined with the server's state.
    open_page(page, dashboard_url, "models")
    # Dataframes draw on a canvas; their cells are mirrored in a hidden accessible grid.
    page.locator("[role=gridcell]", has_text="AVAILABLE").first.wait_for(state="attached", timeout=30_000)
    shoot(page, screenshots, "models")

    # Serving: healthy, version 1 AVAILABLE and its signature shown.
    open_page(page, dashboard_url, "serving")
    page.get_by_text("Signatures of version 1").wait_for(timeout=30_000)
    assert page.get_by_text(re.compile(r"up · \d+ ms")).first.is_visible()
    shoot(page, screenshots, "serving")

    # Predict: the tutorial's rows come back near [3, 6], in the table and the charts.
    open_page(page, dashboard_url, "predict")
    page.locator(".st-key-predict_send button").click()
    page.get_by_text(re.compile(r"Answered by")).wait_for(timeout=30_000)
    wait_idle(page)
    page.locator(".st-key-predict_chart_scatter .js-plotly-plot").wait_for()
    page.locator(".st-key-predict_chart_plane .js-plotly-plot").wait_for()
    page.get_by_role("tab", name="Response").click()
    response_text = page.locator("[data-testid=stCode]").filter(has_text="predictions").first.inner_text()
    predictions = [row[0] for row in json.loads(response_text)["predictions"]]
    assert predictions == pytest.approx([3.0, 6.0], abs=0.3)
    page.get_by_role("tab", name="Request").click()
    shoot(page, screenshots, "predict")
    assert sorted(_stamps(screenshots)) == ["models.png", "predict.png", "serving.png", "train.png"]
    if screenshots.resolve() != README_SHOTS.resolve():  # a test run leaves the checkout as it was
        assert _stamps(README_SHOTS) == readme_before
