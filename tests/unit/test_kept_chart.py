"""The kept charts' pieces: Plotly's script from the pinned package, served on Streamlit's component
route, figures themed as Streamlit themes its own Plotly charts, and a component script that parses
(its Fullscreen button is driven in Chromium by ``tests/e2e/test_train_charts_story.py``)."""

from __future__ import annotations

import json
import shutil
import subprocess

import plotly
import plotly.graph_objects as go
import pytest
from plotly.offline import get_plotlyjs_version

from dashboard import kept_chart


def test_the_browser_gets_the_plotly_js_of_the_pinned_package() -> None:
    script = kept_chart.PLOTLY_FOLDER / kept_chart.PLOTLY_JS
    head = script.read_bytes()[:400].decode("utf-8", "replace")
    wanted = get_plotlyjs_version()
    assert f"v{wanted}" in head, f"{script} is not plotly.js {wanted} (plotly {plotly.__version__})"


@pytest.mark.parametrize(("base", "prefix"), [("", ""), ("/", ""), ("demo", "/demo"), ("/a/b/", "/a/b")])
def test_the_script_url_follows_the_base_url_path(monkeypatch: pytest.MonkeyPatch, base: str,
                                                  prefix: str) -> None:
    options = {"server.baseUrlPath": base}
    monkeypatch.setattr(kept_chart.st, "get_option", options.get)
    assert kept_chart.plotly_url() == f"{prefix}/component/dashboard.kept_chart.plotly_js/plotly.min.js"


def test_theme_is_streamlits_under_the_figures_own_settings() -> None:
    fig = go.Figure(go.Scatter3d(x=[1], y=[2], z=[3], marker={"color": "#123456"}))
    fig.update_layout(title="Over the plane", height=520, scene={"xaxis_title": "x1"})
    for theme in (kept_chart.LIGHT, kept_chart.DARK):
        body = json.loads(kept_chart.figure_json(fig, theme))
        layout = body["layout"]
        assert layout["title"]["text"] == "<b>Over the plane</b>" and layout["height"] == 520
        assert layout["scene"]["xaxis"]["title"]["text"] == "x1"
        assert body["data"][0]["marker"]["color"] == "#123456"
        template = layout["template"]["layout"]
        assert template["font"]["color"] == theme.text and template["paper_bgcolor"] == theme.background
        assert template["scene"]["zaxis"]["gridcolor"] == theme.grid
        config = body["config"]
        assert config["displaylogo"] is False and "lasso2d" in config["modeBarButtonsToRemove"]
    assert fig.layout.title.text == "Over the plane"  # the caller's figure is left as it was


def test_outside_a_page_the_theme_is_light() -> None:
    assert kept_chart.page_theme() is kept_chart.LIGHT


def test_the_component_script_is_a_module_node_can_parse(tmp_path) -> None:
    """A syntax error in the script would leave every kept chart (and its Fullscreen button) blank."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = tmp_path / "kept_chart.mjs"
    script.write_text(kept_chart._JS)
    checked = subprocess.run([node, "--check", str(script)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr

