"""The TF.js route of the Deploy page: a version's TensorFlow.js model predicting inside the
viewer's browser, its answer handed back to Python.

A Streamlit custom component served from the local folder `tfjs_frontend/` (an `index.html` and
a hand-written `component.js` that speaks Streamlit's component protocol). The page loads
`tf.min.js` and the model from the dashboard's own static files (`dashboard/static/`, served at
`app/static/` when `server.enableStaticServing` is on), so the browser needs nothing beyond the
dashboard's origin. `make tfjs` (part of `make run`) puts `tf.min.js` there; :func:`publish_model`
copies a version's model there.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
import streamlit.components.v1 as components

FRONTEND = Path(__file__).resolve().parent / "tfjs_frontend"
STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
"""What Streamlit serves at `app/static/` (the folder beside the main script, `dashboard/app.py`)."""
TFJS_MIN = STATIC_DIR / "tfjs" / "tf.min.js"
TFJS_URL = "app/static/tfjs/tf.min.js"
PUBLISHED = STATIC_DIR / "models"
"""Where versions' TF.js models are copied for the browser (tests point it at a temporary folder)."""
PUBLISHED_URL = "app/static/models"

_component = components.declare_component("tfjs_predict", path=str(FRONTEND))


@dataclass(frozen=True)
class BrowserAnswer:
    """What the browser reported for one run: predictions (one per row) or an error."""

    predictions: list[float] | None
    latency_ms: float | None
    load_ms: float | None
    backend: str
    tfjs_version: str
    error: str | None


def browser_route_problem() -> str | None:
    """Why the browser route cannot run on this dashboard, as a sentence saying what to do; else None."""
    if not TFJS_MIN.is_file():
        root = STATIC_DIR.parent.parent
        shown = TFJS_MIN.relative_to(root) if TFJS_MIN.is_relative_to(root) else TFJS_MIN
        return (f"TensorFlow.js for the browser is not installed ({shown} is missing). "
                "Run `make tfjs` (or `make run`, which does it): it needs Node.js and npm "
                "(Debian: `apt-get install nodejs npm`) and installs the pinned `@tensorflow/tfjs` from "
                "package-lock.json, then reload this page.")
    if not st.get_option("server.enableStaticServing"):
        return ("The dashboard does not serve its static files, so the browser cannot load the model: "
                "start it from the checkout with `make run` (its `.streamlit/config.toml` sets "
                "`server.enableStaticServing = true`) or add `--server.enableStaticServing=true`.")
    return None


def publish_model(version_path: Path) -> str:
    """Copy a version's TF.js model into the static folder (`PUBLISHED`); return its URL relative to
    the root. Each version folder gets its own copy, made again only when its TF.js files change;
    copies of versions that are gone or changed, and the oldest beyond
    `pipeline.formats.tfjs.MAX_PUBLISHED`, are deleted meanwhile. Raises FormatError."""
    from pipeline.formats.tfjs import publish_for_browser

    return publish_for_browser(version_path, PUBLISHED, url_prefix=PUBLISHED_URL)


def published_key(version_path: Path) -> str:
    """The folder name under `static/models/` that holds the copy of `version_path`'s model."""
    from pipeline.formats.tfjs import published_key

    return published_key(version_path)


def run_id(model_url: str, rows: list[list[float]], stamp: float) -> str:
    """Identifies one request to the browser; an answer carrying another id is stale and ignored."""
    text = json.dumps([model_url, rows, stamp], separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def predict_in_browser(model_url: str, rows: list[list[float]], stamp: float, *,
                       key: str) -> BrowserAnswer | None:
    """Ask the viewer's browser to run the model on `rows`; its answer, or None until it arrives.

    The component shows a one-line status in the page. Its value belongs to the last request it
    finished, so an answer to other rows (or an older copy of the model) is not returned.
    """
    current = run_id(model_url, rows, stamp)
    value = _component(tfjs_url=TFJS_URL, model_url=model_url, rows=rows, run_id=current, key=key,
                       default=None)
    if not isinstance(value, dict) or value.get("run_id") != current:
        return None
    predictions = value.get("predictions")
    return BrowserAnswer(
        predictions=[float(v) for v in predictions] if isinstance(predictions, list) else None,
        latency_ms=value.get("latency_ms"), load_ms=value.get("load_ms"),
        backend=str(value.get("backend") or ""), tfjs_version=str(value.get("tfjs_version") or ""),
        error=value.get("error"))
