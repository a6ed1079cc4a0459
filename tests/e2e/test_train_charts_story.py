"""The Train page's charts in real Chromium: they stay mounted while a run trains, and go fullscreen.

A run long enough to watch (2,000 rows, 300 epochs at batch 8) trains on a model of its own
(``?model=kept_charts``, so the demo story's folder is left alone). The live loss curve is the same
element from one progress update to the next (``dashboard/kept_chart.py`` redraws it with
``Plotly.react``; ``st.plotly_chart`` built a new one each time). Its **Fullscreen** button puts the
chart in the browser's fullscreen at the screen's size, an update keeps it there, and **Close
fullscreen** brings it back at its own height. (Escape is the browser's own way out; headless Chromium
does not take it from Playwright's keyboard, which types into the page.) The run is cancelled at the
end and is never exported.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import wait_idle

pytestmark = pytest.mark.e2e

LIVE_LOSS = ".st-key-live_loss .kept-chart"
PLOT = f"{LIVE_LOSS} .kept-plotly-chart.js-plotly-plot"

REDRAWN = """([sel, before]) => { const plot = document.querySelector(sel);
  return !!plot && !!plot.dataset.revision && plot.dataset.revision !== before; }"""
"""True once the chart has drawn a figure other than ``before`` (a later progress update)."""

FULL = """sel => { const box = document.querySelector(sel);
  const plot = box && box.querySelector('.js-plotly-plot');
  const svg = plot && plot.querySelector('svg.main-svg');
  if (!svg || document.fullscreenElement !== box) return false;
  const drawn = svg.getBoundingClientRect(), room = plot.getBoundingClientRect();
  return room.height > 0.6 * window.innerHeight && Math.abs(drawn.height - room.height) < 2
    && Math.abs(drawn.width - room.width) < 2; }"""
"""True while the chart's element is the browser's fullscreen element and Plotly fills it."""

BACK = """([sel, height]) => { const box = document.querySelector(sel);
  const svg = box && box.querySelector('.js-plotly-plot svg.main-svg');
  return document.fullscreenElement === null && !!svg
    && Math.abs(svg.getBoundingClientRect().height - height) < 2; }"""
"""True once nothing is fullscreen and the chart is back at its own height."""


def revision(page) -> str | None:
    return page.locator(PLOT).get_attribute("data-revision")


def test_live_charts_stay_mounted_and_go_fullscreen_and_back(page, dashboard_url):
    page.goto(f"{dashboard_url}/train?model=kept_charts")
    wait_idle(page)
    page.locator(".st-key-train_samples input").fill("2,000")
    page.locator(".st-key-train_epochs input").fill("300")
    page.locator(".st-key-train_batch input").fill("8")
    page.locator(".st-key-train_export").get_by_text("Export if it passes the gate").click()
    expect(page.locator(".st-key-train_export input")).not_to_be_checked()
    page.locator(".st-key-train_submit button").click()
    try:
        page.locator(f"{PLOT}[data-revision]").wait_for(timeout=180_000)  # TensorFlow loads first
        page.locator(".st-key-live_weights .kept-plotly-chart.js-plotly-plot[data-revision]").wait_for()

        # the next progress update redraws the very element the browser shows, not a new one
        page.locator(PLOT).evaluate("plot => { plot.dataset.e2eMark = 'first'; }")
        page.wait_for_function(REDRAWN, arg=[PLOT, revision(page)])
        assert page.locator(PLOT).get_attribute("data-e2e-mark") == "first"
        own_height = page.locator(f"{PLOT} svg.main-svg").first.bounding_box()["height"]

        # Fullscreen, at the top right on hover like Streamlit's own charts' toolbar
        chart = page.locator(LIVE_LOSS)
        chart.hover()
        button = chart.get_by_role("button", name="Fullscreen", exact=True)
        expect(button).to_be_visible()
        box, bar = chart.bounding_box(), button.bounding_box()
        assert bar["x"] + bar["width"] > box["x"] + 0.9 * box["width"] and bar["y"] < box["y"]
        button.click()
        page.wait_for_function(FULL, arg=LIVE_LOSS)
        page.wait_for_function(REDRAWN, arg=[PLOT, revision(page)])  # an update while fullscreen...
        page.wait_for_function(FULL, arg=LIVE_LOSS)  # ...is drawn at the screen's size
        close = chart.get_by_role("button", name="Close fullscreen", exact=True)
        expect(close).to_be_visible()

        close.click()
        page.wait_for_function(BACK, arg=[LIVE_LOSS, own_height])
        expect(button).to_have_attribute("aria-label", "Fullscreen")
    finally:
        cancel = page.locator(".st-key-train_cancel button")
        if cancel.count():
            cancel.click()
    page.get_by_text("was cancelled after").wait_for(timeout=60_000)
