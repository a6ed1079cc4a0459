"""Plotly charts that stay mounted in the browser while their figures change.

``st.plotly_chart`` names its element by the figure it draws, so every new figure is a new
element: the browser drops the chart and builds another. For a 3-D chart that means a new WebGL
scene each time, which was about half of the time a 10,000-row Predict took to settle when the
browser renders without a GPU; a 2-D scatter of 2,000 points is built again point by point.
``kept_plotly_chart`` draws the figure in one ``<div>`` per key that lives as long as the browser
tab, and redraws it with ``Plotly.react`` (a 3-D scene keeps its WebGL context). A rerun that
sends the same figure draws nothing.

Plotly's JavaScript is the one in the pinned ``plotly`` package (``plotly/package_data``), served
by Streamlit's component route: declaring a (never drawn) v1 component on that folder is the public
way to serve a folder, so nothing is copied into the checkout. The figure is themed here as
Streamlit's own ``theme="streamlit"`` themes Plotly charts (its template and fonts; the page's
light or dark colours).
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plotly
import plotly.graph_objects as go
import plotly.io as pio
import streamlit as st
import streamlit.components.v1 as components_v1

PLOTLY_FOLDER = Path(plotly.__file__).parent / "package_data"
"""Where the pinned ``plotly`` package keeps ``plotly.min.js`` (the same version Python writes)."""
PLOTLY_JS = "plotly.min.js"

_PLOTLY_FILES = components_v1.declare_component("plotly_js", path=str(PLOTLY_FOLDER))

_JS = """
function loadPlotly(src) {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!window.__keptChartPlotly) {
    window.__keptChartPlotly = new Promise((resolve, reject) => {
      const script = document.createElement('script');
      script.src = src;
      script.onload = () => resolve(window.Plotly);
      script.onerror = () => {
        window.__keptChartPlotly = undefined;
        reject(new Error('could not load ' + src));
      };
      document.head.appendChild(script);
    });
  }
  return window.__keptChartPlotly;
}
export default function (component) {
  const { data, parentElement } = component;
  const kept = (window.__keptCharts = window.__keptCharts || {});
  let div = kept[data.key];
  if (!div) {
    div = document.createElement('div');
    div.className = 'kept-plotly-chart';
    kept[data.key] = div;
  }
  if (div.parentNode !== parentElement) parentElement.appendChild(div);
  if (div.dataset.revision === data.revision) return;
  const figure = JSON.parse(data.figure);
  loadPlotly(data.plotly)
    .then((Plotly) => Plotly.react(div, figure.data, figure.layout, figure.config))
    .then(() => { div.dataset.revision = data.revision; div.dataset.error = ''; })
    .catch((error) => {
      div.dataset.error = String(error);
      div.textContent = 'The chart could not be drawn: ' + error;
    });
}
"""

_COMPONENT = st.components.v2.component("kept_plotly_chart", js=_JS, isolate_styles=False)


@dataclass(frozen=True)
class ChartTheme:
    """The colours Streamlit's frontend puts into its Plotly template for one page theme."""

    text: str
    faded: str
    grid: str
    background: str
    categorical: tuple[str, ...]


LIGHT = ChartTheme(text="#31333F", faded="#808495", grid="#e6eaf1", background="#ffffff",
                   categorical=("#0068c9", "#83c9ff", "#ff2b2b", "#ffabab", "#29b09d", "#7defa1",
                                "#ff8700", "#ffd16a", "#6d3fc0", "#d5dae5"))
DARK = ChartTheme(text="#fafafa", faded="#a3a8b8", grid="#31333F", background="#0e1117",
                  categorical=("#83c9ff", "#0068c9", "#ffabab", "#ff2b2b", "#7defa1", "#29b09d",
                               "#ffd16a", "#ff8700", "#6d3fc0", "#d5dae5"))
FONT = '"Source Sans", sans-serif'
"""Streamlit's body font, which its Plotly theme uses for every chart text."""


def page_theme() -> ChartTheme:
    """The browser's page theme (Streamlit's ``st.context.theme``); light when it is not known."""
    try:
        kind = st.context.theme.type
    except (AttributeError, RuntimeError):
        kind = None
    return DARK if kind == "dark" else LIGHT


def themed(fig: go.Figure, theme: ChartTheme) -> go.Figure:
    """``fig`` as Streamlit's Plotly theme would show it: Streamlit's colorway, fonts, background,
    axes (no vertical grid, no x zero line) and grid colours under the figure's own settings (which
    win, as they do in Streamlit)."""
    layout = {
        "colorway": list(theme.categorical),
        "font": {"family": FONT, "color": theme.text, "size": 12},
        "title": {"font": {"family": FONT, "color": theme.text, "size": 16}, "x": 0, "xanchor": "left"},
        "legend": {"font": {"color": theme.text, "size": 12}},
        "paper_bgcolor": theme.background,
        "plot_bgcolor": theme.background,
        "hoverlabel": {"bgcolor": theme.background, "font": {"color": theme.text, "family": FONT}},
    }
    tick_font = {"color": theme.text, "size": 12}
    title_font = {"font": {"color": theme.faded, "size": 14}}
    layout["xaxis"] = {"showgrid": False, "zeroline": False, "gridcolor": theme.grid, "tickcolor": theme.grid,
                       "tickfont": tick_font, "title": {**title_font, "standoff": 20}, "automargin": True}
    layout["yaxis"] = {"gridcolor": theme.grid, "zerolinecolor": theme.grid, "tickcolor": theme.grid,
                       "tickfont": tick_font, "title": {**title_font, "standoff": 24}, "automargin": True,
                       "ticklabelposition": "outside"}
    layout["margin"] = {"pad": 8, "r": 0, "l": 0}
    axis = {"gridcolor": theme.grid, "color": theme.faded, "backgroundcolor": theme.background,
            "showbackground": True}
    layout["scene"] = {"xaxis": axis, "yaxis": axis, "zaxis": axis}
    template = go.layout.Template(layout=layout)
    themed_fig = go.Figure(fig)
    themed_fig.update_layout(template=template)
    title = themed_fig.layout.title.text
    if title and not title.startswith("<b>"):  # Streamlit's theme sets chart titles in bold
        themed_fig.update_layout(title_text=f"<b>{title}</b>")
    return themed_fig


CONFIG = {"displaylogo": False, "responsive": True, "showSendToCloud": False,
          "modeBarButtonsToRemove": ["lasso2d", "select2d", "sendChartToCloud"]}
"""Plotly's options as Streamlit sets them for a chart without selections."""


def plotly_url() -> str:
    """The path the browser loads Plotly's JavaScript from (honours ``server.baseUrlPath``)."""
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    prefix = f"/{base}" if base else ""
    return f"{prefix}/component/{_PLOTLY_FILES.name}/{PLOTLY_JS}"


def figure_json(fig: go.Figure, theme: ChartTheme) -> str:
    """The figure, themed, with Streamlit's chart options (no Plotly logo, no selection tools), as
    Plotly JSON."""
    body: dict[str, Any] = themed(fig, theme).to_plotly_json()
    body["config"] = CONFIG
    return pio.to_json(body, validate=False)


def kept_plotly_chart(fig: go.Figure, key: str, where: Any = None) -> None:
    """Draw ``fig`` under ``key`` (in the container ``where``, else the current one), redrawing the
    chart the browser already shows for ``key`` instead of building a new one."""
    figure = figure_json(fig, page_theme())
    revision = hashlib.blake2b(figure.encode(), digest_size=8).hexdigest()
    data = {"key": key, "figure": figure, "plotly": plotly_url(), "revision": revision}
    with where if where is not None else contextlib.nullcontext():
        _COMPONENT(data=data, key=key)
