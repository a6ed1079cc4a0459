"""The one way a page shows a failed server call (a readable ``st.error`` with what to do next,
never a traceback) and the one way it says what an action just did (a flash message that survives
the rerun after a click)."""

from __future__ import annotations

import streamlit as st

from dashboard.server_state import embedded_server_starting, serving_url_is_dashboard
from dashboard.session import base_path, model_name, serving_url, settings
from pipeline.client.errors import ClientError
from pipeline.client.snippets import start_command
from pipeline.client.urls import is_local_url, url_port

FLASH_KEY = "flash"


def flash(message: str) -> None:
    """Say `message` (as `st.success`) at the top of the next run of the current page: for an
    action that ends in `st.rerun()`, whose own output would be wiped by the rerun."""
    st.session_state[FLASH_KEY] = message


def show_flash() -> None:
    """Show the pending flash message, if any, once."""
    if message := st.session_state.pop(FLASH_KEY, None):
        st.success(message)


def show_dashboard_url_error(url: str) -> None:
    """Say that ``url`` is the dashboard itself, and how to point at the model server instead."""
    s = settings()
    st.error(f"{url} is this dashboard, not a model server (SERVING_URL or the URL on the Serving page "
             f"points at the dashboard's own port). The model server's REST port is {s.rest_port}: use "
             f"http://127.0.0.1:{s.rest_port} on the Serving page, or restart with that SERVING_URL.",
             icon=":material/link_off:")


def show_serving_error(exc: Exception, *, on_serving_page: bool = False) -> None:
    """Show a failed server call as ``st.error`` with what to do next, never as a traceback.

    No answer from a URL whose embedded server is running means it is still starting:
    that is said as ``st.info`` instead of an error telling the user to start it. No answer
    from a local URL gets the dashboard's own way to start one (on the Serving page itself:
    the Start button below). A URL that is the dashboard itself is said to be so.
    """
    url = serving_url()
    if isinstance(exc, ClientError) and exc.status_code is not None and serving_url_is_dashboard(url):
        show_dashboard_url_error(url)
    elif not isinstance(exc, ClientError):
        st.error(f"Unexpected error talking to the model server: {exc}", icon=":material/error:")
    elif exc.status_code is None and (proc := embedded_server_starting(url)) is not None:
        st.info(f"The embedded server (pid {proc.pid}) is starting: it imports TensorFlow and loads the "
                "newest versions, which takes a few seconds. Try again shortly; the Serving page shows "
                "its log.",
                icon=":material/hourglass_top:")
    elif exc.status_code is None:
        if is_local_url(url):
            command = start_command(url_port(url), model_name(), base_path())
            where = "with Start below" if on_serving_page else "on the Serving page"
            todo = f"Start it {where} or run `{command}`, or fix the server URL."
        else:
            todo = "Check that the server runs there and that the URL on the Serving page is right."
        st.error(f"{exc.message} ({exc.url}). {todo}", icon=":material/cloud_off:")
    else:
        st.error(str(exc), icon=":material/error:")
