"""What the dashboard knows about the server it talks to beyond its answers: the embedded server
this dashboard started (running, starting), whether the URL is the dashboard itself, and the
one-time autostart of the embedded server."""

from __future__ import annotations

import streamlit as st

from dashboard import launch
from dashboard.clients import client_for
from dashboard.session import serving_url, settings
from pipeline.client import local_server
from pipeline.client.errors import ClientError
from pipeline.client.urls import is_local_url, url_port

STOPPED_KEY = "serving_stopped_by_user"
"""Set when this session stopped the embedded server on the Serving page (cleared by a start)."""


def server_status() -> local_server.ServerStatus:
    """The embedded server as recorded in this dashboard's run folder."""
    return local_server.status(settings().run_dir)


def embedded_server_starting(url: str) -> local_server.ServerStatus | None:
    """The embedded server's status if it runs for ``url`` (local, same port) and so may
    simply not be listening yet (it imports TensorFlow first); else ``None``."""
    proc = server_status()
    if proc.running and is_local_url(url) and proc.port == url_port(url):
        return proc
    return None


def down_word(exc: ClientError, url: str) -> str:
    """What a server that does not answer at ``url`` is, in one word every page uses: ``starting``
    (the embedded server for ``url`` runs but is still importing TensorFlow), ``stopped`` (this
    session stopped it on the Serving page) or ``down``."""
    if exc.status_code is None and embedded_server_starting(url) is not None:
        return "starting"
    if st.session_state.get(STOPPED_KEY) and not server_status().running:
        return "stopped"
    return "down"


def serving_url_is_dashboard(url: str | None = None) -> bool:
    """True when the server URL is this dashboard (a local URL on the dashboard's own port where
    Streamlit answers): it must be reported, never shown as a healthy model server."""
    url = url or serving_url()
    return (launch.points_at_dashboard(url, int(st.get_option("server.port")))
            and client_for(url).is_streamlit())


@st.cache_resource(show_spinner=False)
def _autostart(url: str) -> local_server.ServerStatus | None:
    s = settings()
    return local_server.autostart_if_needed(url, enabled=s.autostart_server, model_name=s.model_name,
                                            base_path=s.model_base_path, run_dir=s.run_dir)


def autostart_server_once() -> local_server.ServerStatus | None:
    """Start the embedded server for the default URL once per dashboard process, if the URL is
    local, nothing answers there and ``AUTOSTART_SERVER`` is on. Never raises: a failed start
    is left for the Serving page (and its log) to show."""
    try:
        return _autostart(settings().serving_url)
    except OSError:
        return None
