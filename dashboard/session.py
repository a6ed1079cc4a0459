"""What a dashboard session works on: its settings, the model server URL and the model.

The settings are read from the environment once per session (:func:`settings`). The server URL
and model name are chosen on the Serving page (the URL) and in the sidebar's model picker (the
model, ``dashboard/model_picker.py``) and kept in ``st.session_state`` under :data:`URL_KEY` and
:data:`MODEL_KEY` (plain keys, not widget keys, so they survive page switches); every page reads
them through :func:`serving_url` and :func:`model_name`.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from pipeline.settings import Settings
from pipeline.store import versions

URL_KEY = "serving_url"
MODEL_KEY = "model_name"
SETTINGS_KEY = "settings"


def settings() -> Settings:
    """The dashboard's settings, read from the environment once when a session starts and kept in
    its session state, so every page of the session sees the same values (and a test sets the
    environment before the app runs instead of patching module attributes)."""
    if SETTINGS_KEY not in st.session_state:
        st.session_state[SETTINGS_KEY] = Settings.from_env()
    return st.session_state[SETTINGS_KEY]


def serving_url() -> str:
    """The model server URL this session talks to (default ``Settings.serving_url``)."""
    return st.session_state.get(URL_KEY, settings().serving_url)


def model_name() -> str:
    """The model this session works with (default ``Settings.model_name``)."""
    return st.session_state.get(MODEL_KEY, settings().model_name)


def base_path() -> Path:
    """Where the versions of :func:`model_name` live on disk: ``Settings.model_base_path`` for the
    default model, else ``<models_dir>/<name>`` (names are validated when chosen)."""
    name, s = model_name(), settings()
    return s.model_base_path if name == s.model_name else versions.model_base_path(name, s.models_dir)
