"""Plotly charts that stay mounted in the browser while their figures change.

``st.plotly_chart`` names its element by the figure it draws, so every new figure is a new
element: the browser drops the chart and builds another. For a 3-D chart that means a new WebGL
scene each time, which was about half of the time a 10,000-row Predict took to settle when the
browser renders without a GPU; a 2-D scatter of 2,000 points is built again point by point.
``kept_plotly_chart`` draws the figure in one ``<div>`` per key that lives as long as the browser
tab, and redraws it with ``Plotly.react`` (a 3-D scene keeps its WebGL context, a zoom stays). A
rerun that sends the same figure draws nothing.

A key is drawn at most once per script run (or fragment run): Streamlit refuses a second element
with the same key (``StreamlitDuplicateElementKey``), so a chart cannot be redrawn several times
inside one ``st.empty()`` in a loop. A chart that follows something live is drawn once per rerun of
an ``st.fragment(run_every=...)``, as the Train page's live loss curve and weights are: each
fragment run sends the new figure under the same key and the browser redraws the chart it has.

Like Streamlit's own charts, a kept chart shows a toolbar at its top right on hover (or keyboard
focus) with a **Fullscreen** button: the browser's Fullscreen API on the chart's element, Plotly
resized to the screen (``Plotly.Plots.resize``) and back; **Close fullscreen** or Escape leaves it.
A figure that changes meanwhile is drawn at the screen's size. Where the page may not go
fullscreen (an iframe without ``allowfullscreen``) the button is not shown.

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
const ICONS = {
  Fullscreen: 'M7 14H5v5h5v-2H7v-3zm-2-4h2V7h3V5H5v5zm12 7h-3v2h5v-5h-2v3zM14 5v2h3v3h2V5h-5z',
  'Close fullscreen': 'M5 16h3v3h2v-5H5v2zm3-8H5v2h5V5H8v3zm6 11h2v-3h3v-2h-5v5zm2-11V5h-2v5h5V8h-3z',
};
function isFull(box) { return document.fullscreenElement === box; }
function label(box) {
  const name = isFull(box) ? 'Close fullscreen' : 'Fullscreen';
  box.button.setAttribute('aria-label', name);
  box.button.title = name;
  box.button.querySelector('path').setAttribute('d', ICONS[name]);
}
function layoutOf(box) {
  // in fullscreen the figure's own height gives way to the screen's (an update keeps it there)
  const layout = box.figure.layout || {};
  return isFull(box) ? Object.assign({}, layout, { height: box.plot.clientHeight }) : layout;
}
function fit(box) {
  // entering or leaving fullscreen: the figure's own height, or the screen's, then Plotly's width
  // (and height) measured again from the element (a relayout of the height alone would pin the width)
  label(box);
  const Plotly = window.Plotly;
  if (!box.figure || !Plotly || !box.plot.dataset.revision) return;
  const { data, config } = box.figure;
  Plotly.react(box.plot, data, layoutOf(box), config)
    .then(() => Plotly.Plots.resize(box.plot))
    .catch((error) => { box.plot.dataset.error = String(error); });
}
function makeBox() {
  const box = document.createElement('div');
  box.className = 'kept-chart';
  box.plot = document.createElement('div');
  box.plot.className = 'kept-plotly-chart';
  const bar = document.createElement('div');
  bar.className = 'kept-chart-toolbar';
  box.button = document.createElement('button');
  box.button.type = 'button';
  box.button.className = 'kept-chart-fullscreen';
  box.button.innerHTML = '<svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" '
    + 'focusable="false"><path fill="currentColor"></path></svg>';
  box.button.addEventListener('click', () => {
    if (isFull(box)) document.exitFullscreen().catch(() => {});
    else box.requestFullscreen().catch((error) => { box.dataset.error = String(error); });
  });
  box.addEventListener('fullscreenchange', () => fit(box));
  label(box);
  bar.hidden = !document.fullscreenEnabled;  // e.g. an iframe that does not allow it
  bar.appendChild(box.button);
  box.append(bar, box.plot);
  return box;
}
export default function (component) {
  const { data, parentElement } = component;
  const kept = (window.__keptCharts = window.__keptCharts || {});
  let box = kept[data.key];
  if (!box) box = kept[data.key] = makeBox();
  if (box.parentNode !== parentElement) parentElement.appendChild(box);
  const div = box.plot;
  if (div.dataset.revision === data.revision) return;
  const figure = JSON.parse(data.figure);
  box.figure = figure;
  loadPlotly(data.plotly)
    .then((Plotly) => Plotly.react(div, figure.data, layoutOf(box), figure.config))
    .then(() => { div.dataset.revision = data.revision; div.dataset.error = ''; })
    .catch((error) => {
      div.dataset.error = String(error);
      div.textContent = 'The chart could not be drawn: ' + error;
    });
}
"""

_CSS = """
.kept-chart { position: relative; }
/* in a horizontal container Streamlit's own charts are at least 14rem wide, so a row wraps */
[data-testid="stHorizontalBlock"] > [data-testid="stElementContainer"] .kept-chart { min-width: 14rem; }
.kept-chart-toolbar {
  position: absolute; top: -2.4rem; right: 0; z-index: 3; display: flex; opacity: 0;
  padding: 0.125rem; border-radius: var(--st-base-radius, 0.5rem);
  background: var(--st-background-color, #ffffff); box-shadow: 1px 2px 8px rgba(0, 0, 0, 0.08);
  transition: opacity 0.1s;
}
.kept-chart:hover .kept-chart-toolbar, .kept-chart:focus-within .kept-chart-toolbar,
.kept-chart:fullscreen .kept-chart-toolbar { opacity: 1; }
.kept-chart-toolbar[hidden] { display: none; }
.kept-chart-fullscreen {
  display: flex; align-items: center; justify-content: center; width: 1.75rem; height: 1.75rem;
  padding: 0; border: none; border-radius: var(--st-base-radius, 0.5rem); background: transparent;
  color: var(--st-text-color, #31333f); opacity: 0.6; cursor: pointer;
}
.kept-chart-fullscreen:hover, .kept-chart-fullscreen:focus-visible { opacity: 1; }
.kept-chart-fullscreen:focus-visible { outline: 2px solid var(--st-primary-color, #ff4b4b); }
.kept-chart:fullscreen {
  display: flex; flex-direction: column; box-sizing: border-box; padding: 3rem 1.5rem 1.5rem;
  background: var(--st-background-color, #ffffff);
}
.kept-chart:fullscreen .kept-chart-toolbar { top: 0.75rem; right: 1.5rem; }
.kept-chart:fullscreen > .kept-plotly-chart { flex: 1 1 0; min-height: 0; overflow: hidden; }
"""

_COMPONENT = st.components.v2.component("kept_plotly_chart", js=_JS, css=_CSS, isolate_styles=False)


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
