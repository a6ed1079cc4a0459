"""The dashboard's entry point (`streamlit run dashboard/app.py`): a router over four pages.

Train → Models → Serving → Predict follows the loop a user runs. Starting it also starts the
embedded model server once per dashboard process when SERVING_URL is local and silent.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run` puts only dashboard/ on the path
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboard.utils import autostart_server_once  # noqa: E402

VIEWS = Path(__file__).parent / "views"

st.set_page_config(page_title="Linear model · TF Serving", page_icon=":material/hub:", layout="wide")
if not st.session_state.get("autostart_done"):
    autostart_server_once()
    st.session_state["autostart_done"] = True

pages = [
    st.Page(VIEWS / "train.py", title="Train", icon=":material/model_training:", default=True),
    st.Page(VIEWS / "models.py", title="Models", icon=":material/inventory_2:"),
    st.Page(VIEWS / "serving.py", title="Serving", icon=":material/dns:"),
    st.Page(VIEWS / "predict.py", title="Predict", icon=":material/query_stats:"),
]
st.navigation(pages).run()
