"""The dashboard's entry point (`streamlit run dashboard/app.py`): a router over the pages.

Home tells the story; Train → Models → Serving → Predict follows the loop a user runs. Before any
page runs, the launch is checked (`dashboard/launch.py`): started without `.streamlit/config.toml`
(from another folder) it fixes what a script may fix and refuses to run on an open address, with
telemetry on or on the model server's port. Starting it also starts the embedded model server once
per dashboard process when SERVING_URL is local and silent. The project is installed
(`pip install -e .`, done by `make run`), so `dashboard` and `pipeline` import from anywhere.
"""

import os
from pathlib import Path

import streamlit as st

from dashboard import launch
from dashboard.utils import autostart_server_once, settings

VIEWS = Path(__file__).parent / "views"
# A local file: an emoji or material page_icon makes the browser fetch the icon from a CDN.
FAVICON = Path(__file__).parent / "static" / "favicon.png"

# A 220 px sidebar (Streamlit's default is 300) leaves a laptop window or a projector at 800 px a
# usable page; Streamlit itself collapses the sidebar only below 768 px.
SIDEBAR_PX = 220
st.set_page_config(page_title="Linear model · TF Serving", page_icon=str(FAVICON), layout="wide",
                   initial_sidebar_state=SIDEBAR_PX)
launch.apply_runtime_fixes(st.get_option, st.set_option)
options = {k: st.get_option(k) for k in launch.CHECKED}
allow_open = os.environ.get(launch.ALLOW_OPEN_ENV, "") == "1"
if problems := launch.launch_problems(options, settings().rest_port, allow_open):
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
    st.Page(VIEWS / "deploy.py", title="Deploy", icon=":material/rocket_launch:"),
    st.Page(VIEWS / "batch.py", title="Batch", icon=":material/table_rows:"),
]
st.navigation(pages).run()
