"""The dashboard's entry point (`streamlit run dashboard/app.py`): a router over the pages.

Home tells the story; Train → Models → Serving → Predict follows the loop a user runs. Before any
page runs, the launch is checked (`dashboard/launch.py`): started without `.streamlit/config.toml`
(from another folder) it fixes what a script may fix and refuses to run on an open address, with
telemetry on or on the model server's port. Starting it also starts the embedded model server once
per dashboard process when SERVING_URL is local and silent.

`pip install -r requirements.txt` (run in the checkout; `make run` does it) installs the project
itself (`-e .`), so `dashboard` and `pipeline` import from anywhere; Streamlit puts only
`dashboard/` on `sys.path`. This file therefore imports nothing of the project, nor any package
beyond Streamlit, before it can say what is wrong: a missing project or package, or a bad setting
in the environment, shows a message with the command that fixes it (and says it in the terminal)
instead of Streamlit's redacted "This app has encountered an error".
"""

import os
import shlex
import sys
from pathlib import Path

import streamlit as st

CHECKOUT = Path(__file__).resolve().parent.parent
VIEWS = Path(__file__).parent / "views"
# A local file: an emoji or material page_icon makes the browser fetch the icon from a CDN.
FAVICON = Path(__file__).parent / "static" / "favicon.png"
PROJECT_PACKAGES = ("dashboard", "pipeline")


def in_checkout(arguments: str) -> str:
    """`cd <checkout> && <this Python> <arguments>`: a command for the Python that runs Streamlit."""
    return f"cd {shlex.quote(str(CHECKOUT))} && {shlex.quote(sys.executable)} {arguments}"


def import_problem(error: ImportError) -> str:
    """What a failed import means for the user, and the command that fixes it."""
    top = (error.name or "").split(".")[0]
    python = f"the Python that runs Streamlit (`{sys.executable}`)"
    if isinstance(error, ModuleNotFoundError) and top in PROJECT_PACKAGES:
        what = (f"The project is not installed in {python}: `import {error.name}` fails. "
                "`requirements.txt` installs it (its last line, `-e .`).")
    elif isinstance(error, ModuleNotFoundError) and top:
        what = f"The package `{top}` is missing from {python}."
    else:
        what = f"An import fails in {python}: {error}. A package may not match its pinned version."
    return (f"{what}\n\nInstall the pinned requirements, from the checkout:\n\n"
            f"`{in_checkout('-m pip install -r requirements.txt')}`\n\nthen stop the dashboard (Ctrl-C) "
            f"and start it again: `{in_checkout('-m streamlit run dashboard/app.py')}` (or `make run`).")


@st.cache_resource(show_spinner=False)
def _tell_terminal(text: str) -> None:
    """Print `text` to the terminal once per dashboard process (cached by its text)."""
    print(text.replace("`", ""), file=sys.stderr, flush=True)


def cannot_start(problem: str) -> None:
    """Show why the dashboard cannot start instead of any page, say it in the terminal, stop this run."""
    st.title("The dashboard cannot start")
    st.error(problem, icon=":material/error:")
    _tell_terminal(problem)
    st.stop()


# A 220 px sidebar (Streamlit's default is 300) leaves a laptop window or a projector at 800 px a
# usable page; Streamlit itself collapses the sidebar only below 768 px.
SIDEBAR_PX = 220
st.set_page_config(page_title="Linear model · TF Serving", page_icon=str(FAVICON), layout="wide",
                   initial_sidebar_state=SIDEBAR_PX)
try:
    from dashboard import launch, model_picker
    from dashboard.server_state import autostart_server_once
    from dashboard.session import settings
except ImportError as error:
    cannot_start(import_problem(error))

launch.apply_runtime_fixes(st.get_option, st.set_option)
try:
    rest_port = settings().rest_port
except ValueError as error:
    cannot_start(f"{error}.\n\nFix or unset that variable in the environment the dashboard starts from "
                 "(`Settings.from_env` in `pipeline/settings.py` lists them all), then start it again.")
options = {k: st.get_option(k) for k in launch.CHECKED}
allow_open = os.environ.get(launch.ALLOW_OPEN_ENV, "") == "1"
if problems := launch.launch_problems(options, rest_port, allow_open):
    st.title("Started without its safety settings")
    st.error(launch.refusal_text(problems), icon=":material/gpp_bad:")
    launch.tell_terminal_once(launch.refusal_text(problems))
    st.stop()
if not st.session_state.get("autostart_done"):
    autostart_server_once()
    st.session_state["autostart_done"] = True

pages = [
    st.Page(VIEWS / "home.py", title="Home", icon=":material/home:", default=True),
    st.Page(VIEWS / "train.py", title="Train", icon=":material/model_training:"),
    st.Page(VIEWS / "models.py", title="Models", icon=":material/inventory_2:"),
    st.Page(VIEWS / "serving.py", title="Serving", icon=":material/dns:"),
    st.Page(VIEWS / "predict.py", title="Predict", icon=":material/query_stats:"),
    st.Page(VIEWS / "traffic.py", title="Traffic", icon=":material/receipt_long:"),
    st.Page(VIEWS / "deploy.py", title="Deploy", icon=":material/rocket_launch:"),
    st.Page(VIEWS / "batch.py", title="Batch", icon=":material/table_rows:"),
    st.Page(VIEWS / "load.py", title="Load", icon=":material/speed:"),
]
# The page links carry the session's model (?model=NAME), which the built-in menu would drop.
current = st.navigation(pages, position="hidden")
model_picker.navigation(pages)
try:
    current.run()
except ImportError as error:  # a page's own import (pages import their packages when they run)
    cannot_start(import_problem(error))
