"""The model picker: one per page, in the sidebar, and kept in the URL as ``?model=NAME``.

A page calls :func:`render` first. The model of the URL wins (a link opens that model, even one
the dashboard has never seen); without one, the session keeps the model picked last (at first the
default, ``MODEL_NAME``). The picker lists what :mod:`dashboard.model_sources` gathers (the
server's listing when it offers one, the embedded server's models.config, a models.config the user
names, names typed earlier) and takes any other name typed into it, which is remembered. The page
links of the sidebar (:func:`navigation`) carry the model, so switching pages keeps it in the URL
without an extra browser-history entry; picking another model is one entry, so Back returns to
the model before.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import streamlit as st

from dashboard import model_sources, tutorial
from dashboard.session import MODEL_KEY, model_name, serving_url, settings
from pipeline.client import local_server
from pipeline.client.errors import ClientError
from pipeline.client.rest import ServingClient
from pipeline.client.signatures import read_signatures
from pipeline.store.versions import validate_model_name

QUERY_PARAM = "model"
PICK_KEY = "model_picker"
CONFIG_INPUT = "model_picker_config_input"
CONFIG_KEY = "model_picker_config"
PROBLEM_KEY = "model_picker_problem"
LIST_TIMEOUT_S = 1.0
"""A listing is a nicety: a server that does not answer within this is not asked to list."""


@st.cache_data(ttl=10, show_spinner=False)
def server_models(url: str) -> list[str] | None:
    """The server's own list of models (our listing extension), ``None`` when it has none (a real
    TF Serving) or does not answer; asked at most every 10 s per URL."""
    try:
        return ServingClient(url, timeout=LIST_TIMEOUT_S).list_models()
    except ClientError:
        return None


def config_file() -> Path | None:
    """The models.config the user named: the picker's field, else ``MODEL_CONFIG_FILE``."""
    chosen = st.session_state.get(CONFIG_KEY)
    if chosen:
        return Path(chosen)
    return settings().model_config_file


def choices(current: str) -> tuple[model_sources.ModelChoices, str | None]:
    """The names to offer, and a problem with the user's models.config (``None`` if fine)."""
    s = settings()
    embedded = model_sources.config_model_names_or_none(s.run_dir / local_server.MODELS_CONFIG_NAME)
    config, problem = [], None
    if (path := config_file()) is not None:
        try:
            config = model_sources.read_config_names(path)
        except ValueError as exc:
            problem = f"Models from your models.config were not added: {exc}."
    found = model_sources.gather(default=s.model_name, current=current, server=server_models(serving_url()),
                                 embedded=embedded or (), config=config,
                                 typed=model_sources.remembered(s.run_dir))
    return found, problem


def _apply_link() -> None:
    """Take the model of the URL (a link, or Back to an earlier pick) into the session."""
    wanted = st.query_params.get(QUERY_PARAM)
    if not wanted or wanted == model_name():
        return
    try:
        st.session_state[MODEL_KEY] = validate_model_name(wanted)
        st.session_state.pop(PROBLEM_KEY, None)
    except ValueError as exc:
        st.session_state[PROBLEM_KEY] = f"The link's model was not opened: {exc}."


def _picked() -> None:
    """The picker changed: open that model (a typed name is checked, then remembered)."""
    name = str(st.session_state.get(PICK_KEY) or "").strip()
    try:
        validate_model_name(name)
    except ValueError as exc:
        st.session_state[PROBLEM_KEY] = f"Model not changed: {exc}."
        return
    st.session_state.pop(PROBLEM_KEY, None)
    st.session_state[MODEL_KEY] = name
    st.query_params[QUERY_PARAM] = name
    with contextlib.suppress(OSError):  # remembering is a convenience; the model is open either way
        model_sources.remember(settings().run_dir, name)


def _config_named() -> None:
    st.session_state[CONFIG_KEY] = str(st.session_state.get(CONFIG_INPUT) or "").strip()


def link_params() -> dict[str, str]:
    """The query parameters that keep the session's model in a link (none for the default)."""
    name = model_name()
    return {} if name == settings().model_name else {QUERY_PARAM: name}


def navigation(pages: list[st.Page]) -> None:
    """The sidebar's page links, each carrying the session's model (``?model=NAME``)."""
    _apply_link()
    params = link_params() or None
    for page in pages:
        st.sidebar.page_link(page, query_params=params)


def render() -> str:
    """The sidebar's model picker; returns the model this page works on."""
    _apply_link()
    current = model_name()
    if st.query_params.get(QUERY_PARAM) != current and link_params():
        st.query_params[QUERY_PARAM] = current  # a link opened without ?model= shows the model it is on
    found, config_problem = choices(current)
    st.session_state[PICK_KEY] = current
    st.sidebar.selectbox(
        "Model", found.names, key=PICK_KEY, on_change=_picked, accept_new_options=True,
        help="The models this dashboard knows: from the server when it can list them, the embedded "
        "server's models.config, your models.config (below) and names typed here. Type any other name "
        "to open it; the URL keeps it (?model=NAME), so a link opens the same model.")
    # the box shows the name alone (the sidebar is narrow); the whole name and its origin go here
    origin = found.origin(current)
    st.sidebar.caption(f"`{current}`" + (f": {origin}" if origin else ""))
    if problem := st.session_state.get(PROBLEM_KEY):
        st.sidebar.error(problem, icon=":material/error:")
    with st.sidebar.expander("Models from a models.config"):
        st.session_state.setdefault(CONFIG_INPUT, str(config_file() or ""))
        st.text_input("models.config file", key=CONFIG_INPUT, on_change=_config_named,
                      placeholder="/path/to/models.config",
                      help="The ModelServerConfig a TF Serving was started with (--model_config_file): "
                      "its model names join the list. Default: MODEL_CONFIG_FILE.")
        if config_problem:
            st.error(config_problem, icon=":material/description:")
    return current


@st.cache_data(ttl=10, show_spinner=False)
def _inputs_if_not_tutorial(url: str, model: str) -> str | None:
    """The inputs of ``model``'s serving_default when they are not the tutorial's (``None`` when
    they are, or the server cannot say)."""
    try:
        signatures = read_signatures(ServingClient(url, timeout=LIST_TIMEOUT_S).metadata(model))
    except ClientError:
        return None
    signature = signatures.get("serving_default") or next(iter(signatures.values()), None)
    if signature is None or tutorial.is_tutorial(signature):
        return None
    return ", ".join(f"{k} {s.describe()}" for k, s in signature.inputs.items()) or "no inputs"


def other_kind_of_model() -> str | None:
    """Why training is not offered for the session's model: it serves another kind of model than the
    tutorial's (training stays the tutorial's linear regression); ``None`` when training fits."""
    model, default = model_name(), settings().model_name
    if model == default or (inputs := _inputs_if_not_tutorial(serving_url(), model)) is None:
        return None
    return (f"`{model}` serves another kind of model ({inputs}): training here would export the tutorial's "
            f"linear regression as its next version. Training is for the tutorial's model: pick "
            f"`{default}`, or type a new name, in the sidebar.")
