"""Predict: explore any model the server serves, driven by its signatures.

The model is picked in the sidebar (``?model=NAME``). For the chosen version (or label) and
signature, the page reads the metadata and offers the editor that fits the inputs (a table of
examples, pictures, typed fields, tf.Example features for classify/regress, JSON for anything
else), prefilled with a valid example: the tutorial's rows for its model, else the version's
warm-up request when the model folder is on this machine, else one built from the signature. Send
goes over REST (row or columnar format) or gRPC; every output is shown by kind, and the tutorial's
model keeps its truth, residual and 3-D views. An answer stays tied to what made it: change the
inputs or options, or lose the version, and it is marked stale. Below: what-if sweeps, two
versions side by side, and the request history (replay, share as a link, export as warm-up).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import (
    clients,
    example_editor,
    messages,
    model_picker,
    predict_compare,
    predict_exchange,
    predict_history,
    predict_inputs,
    predict_outputs,
    predict_requests,
    predict_tutorial,
    session,
    tutorial,
    what_if,
)
from dashboard.predict_requests import FORMATS, TRANSPORTS, Answer, Request
from pipeline.client import local_server
from pipeline.client.errors import ClientError
from pipeline.client.rest import available_versions, served_version
from pipeline.client.signatures import (
    Signature,
    check_inputs,
    example_inputs,
    inputs_of_body,
    read_signatures,
)
from pipeline.client.urls import is_local_url
from pipeline.client.warmup_records import read_warmup_requests
from pipeline.store.versions import list_versions
from pipeline.training.data import X_HIGH, X_LOW

RESULT_KEY, SCOPE_KEY, PREFILL_KEY = "predict_result", "predict_scope", "predict_prefill"
LATENCY_KEY = "predict_latency_by_transport"
LATEST, LABEL = "latest", "label"


def render_target(versions: list[int]) -> dict[str, Any] | None:
    """Version or label; ``None`` while a label is still to be typed."""
    shown = {LATEST: "latest", LABEL: "a label…"}
    if st.session_state.get("predict_target") not in (LATEST, LABEL, *versions):
        st.session_state.pop("predict_target", None)  # a version of another model, or gone
    choice = st.selectbox("Version", [LATEST, *versions, LABEL], key="predict_target",
                          format_func=lambda c: shown.get(c, f"version {c}"),
                          help="'latest' is the highest AVAILABLE version, as TF Serving picks it.")
    if choice == LABEL:
        label = st.text_input("Label", key="predict_label", placeholder="e.g. stable").strip()
        return {"label": label} if label else None
    return {} if choice == LATEST else {"version": int(choice)}


def read_model(model: str, target: dict[str, Any] | None, reachable: bool
               ) -> tuple[dict[str, Signature], int | None, bool]:
    """The signatures of the version ``target`` reaches, that version, and whether Send may go
    (an unknown label is reported here once and blocks it). The tutorial's model keeps its
    signature when the server cannot be asked, so its table is there before the server is."""
    fallback = {"serving_default": tutorial.SIGNATURE} if model == session.settings().model_name else {}
    if not reachable or target is None:
        return fallback, None, target is not None
    try:
        metadata = clients.get_client().metadata(model, **target)
    except ClientError as exc:
        messages.show_serving_error(exc)
        return fallback, None, "label" not in target
    return read_signatures(metadata) or fallback, served_version(metadata), True


def warmup_prefill(version: int | None, signature: Signature) -> dict[str, Any] | None:
    """The first warm-up request of the served version that fits ``signature`` (model folder on
    this machine only): ``{"inputs": ...}`` or ``{"examples": ...}``."""
    if version is None or not is_local_url(session.serving_url()):
        return None
    for request in read_warmup_requests(session.base_path() / str(version)):
        if request.signature != signature.name:
            continue
        if signature.takes_examples and request.examples:
            return {"examples": request.examples}
        if not signature.takes_examples and request.inputs:
            try:
                check_inputs(signature, request.inputs, rows=True)
            except ValueError:
                continue
            return {"inputs": request.inputs}
    return None


def link_prefill(body: dict[str, Any], signature: Signature) -> dict[str, Any] | None:
    """A shared link's inputs (a small body) for ``signature``; a warning when they do not fit."""
    try:
        if signature.takes_examples:
            return {"examples": example_editor.check_body(body)}
        inputs, fmt = inputs_of_body(body, signature)
        if set(inputs) != set(signature.inputs) and len(inputs) == len(signature.inputs) == 1:
            inputs = {next(iter(signature.inputs)): next(iter(inputs.values()))}
        check_inputs(signature, inputs, rows=fmt == "row")
    except ValueError as exc:
        st.warning(f"The link's inputs were not used: {exc}", icon=":material/link_off:")
        return None
    st.session_state["predict_format"] = fmt
    return {"inputs": inputs}


def prefill(model: str, signature: Signature, version: int | None, link: predict_history.LinkView | None,
            tutorial_model: bool) -> None:
    """Fill the editors for a new model, signature or link: the link's inputs, else the
    tutorial's rows for its model, else the version's warm-up request, else the signature's own."""
    scope = (model, signature.name)
    if st.session_state.get(SCOPE_KEY) == scope and not (link and link.body):
        return
    found, source = None, "the signature"
    if link and link.body:
        found, source = link_prefill(link.body, signature), "the link"
    if found is None and tutorial_model:
        found, source = {"inputs": tutorial.default_inputs()}, "the tutorial"
    if found is None and (found := warmup_prefill(version, signature)) is not None:
        source = f"version {version}'s warm-up requests"
    if found is None:
        found = {"examples": None} if signature.takes_examples else {"inputs": example_inputs(signature)}
    if signature.takes_examples:
        example_editor.reset(found.get("examples"))
    else:
        first_look = SCOPE_KEY not in st.session_state and not (link and link.body)
        predict_inputs.reset(found["inputs"], signature, tutorial_model, keep_table=first_look)
    st.session_state[SCOPE_KEY] = scope
    st.session_state[PREFILL_KEY] = (found, source)
    for key in (RESULT_KEY, predict_compare.COMPARE_KEY, what_if.RESULT_KEY):
        st.session_state.pop(key, None)  # answers of another model or signature


def compare_hint(versions: list[int], tutorial_model: bool) -> str:
    """Why comparing is not possible yet, and the one step that fixes it."""
    on_disk = len(list_versions(session.base_path())) if is_local_url(session.serving_url()) else None
    kept = int(st.session_state.get("serving_loaded_versions", local_server.LOADED_VERSIONS))
    if on_disk is not None and on_disk < 2:
        have = "one version" if on_disk == 1 else "no version"
        todo = ("train another on the Train page" if tutorial_model else
                "add another version to its folder (or compare two labels)")
        return f"Comparing needs two AVAILABLE versions and this model has {have} on disk: {todo}."
    if kept >= 2 and on_disk is not None:
        return (f"Comparing needs two AVAILABLE versions; {len(versions)} is AVAILABLE now. The server keeps "
                f"the newest {kept} loaded: wait for the newer version to load, or check the Serving page "
                "for a version that failed to load.")
    return ("Comparing needs two AVAILABLE versions. Have the server keep two loaded: on the Serving page "
            "set 'Versions kept loaded' to 2 and restart the embedded server (TF Serving: "
            "`model_version_policy { latest { num_versions: 2 } }`).")


def stale_reasons(answer: Answer, key: str, versions: list[int], reachable: bool) -> list[str]:
    """Why a kept answer no longer matches the page: other inputs or options, or its version gone."""
    reasons = []
    if answer.key != key:
        reasons.append(f"the inputs or options changed since it was sent ({answer.request.rows:,} rows then)")
    if reachable and answer.version is not None and answer.version not in versions:
        reasons.append(f"version {answer.version} is no longer AVAILABLE (deleted or unloaded)")
    return reasons


def send(request: Request) -> None:
    """Send, keep the answer (or drop the old one and say why)."""
    try:
        answer = predict_requests.send(request)
    except ClientError as exc:
        st.session_state.pop(RESULT_KEY, None)
        messages.show_serving_error(exc)
        return
    except ValueError as exc:
        st.session_state.pop(RESULT_KEY, None)
        st.warning(f"The server answered, but not as the signature says: {exc}")
        return
    st.session_state[RESULT_KEY] = answer
    st.session_state.setdefault(LATENCY_KEY, {})[request.transport] = answer.result.latency_s


def render_answer(answer: Answer, edited: predict_inputs.Edited, tutorial_model: bool) -> None:
    if tutorial_model and tutorial.is_tutorial(answer.request.signature):
        try:
            predict_tutorial.render_result(answer)
        except ValueError as exc:
            st.warning(f"The server answered, but not with one prediction per row: {exc}")
    else:
        st.metric(f"Round trip ({answer.request.transport})", f"{answer.result.latency_s * 1000:.1f} ms")
        st.caption(f"Answered by {answer.answered_by} · {answer.request.rows:,} example"
                   f"{'s' if answer.request.rows != 1 else ''} · signature `{answer.request.signature.name}`")
        predict_outputs.render_outputs(answer, edited.frame if edited.rows == answer.request.rows else None)
    if len(latency := st.session_state.get(LATENCY_KEY, {})) > 1:
        st.caption("Last round trip by transport: "
                   + " · ".join(f"{t} {s * 1000:.1f} ms" for t, s in sorted(latency.items())))
    predict_exchange.render_exchange(answer)


def main() -> None:
    st.title("Predict")
    model = model_picker.render()
    st.caption(f"Model `{model}` at {session.serving_url()}")
    try:
        versions, reachable = available_versions(clients.get_client().model_status(model)), True
    except ClientError as exc:
        versions, reachable = [], False
        messages.show_serving_error(exc)
    link = predict_history.read_link()
    for problem in (link.problems if link else []):
        st.warning(f"From the link: {problem}.", icon=":material/link_off:")
    target_col, sig_col, fmt_col, transport_col = st.columns([3, 3, 3, 2])
    with target_col:
        target = render_target(versions)
    signatures, version, target_ok = read_model(model, target, reachable)
    if not signatures:
        st.info(f"The signatures of `{model}` cannot be read, so the page cannot say what it takes. Check "
                "the model name in the sidebar and that the server serves it (the Serving page shows its "
                "versions).", icon=":material/help:")
        return
    if link and link.signature in signatures:
        st.session_state["predict_signature"] = link.signature
    if st.session_state.get("predict_signature") not in signatures:
        st.session_state.pop("predict_signature", None)
    name = sig_col.selectbox("Signature", list(signatures), key="predict_signature",
                             format_func=lambda n: f"{n} ({signatures[n].method})")
    signature = signatures[name]
    transport = transport_col.radio("Transport", TRANSPORTS, key="predict_transport", horizontal=True,
                                    help=f"REST at {session.serving_url()}, or gRPC at "
                                    f"{session.settings().grpc_target} (PredictionService/Predict with typed "
                                    "tensors and TF Serving's own protos, read without loading TensorFlow).")
    tutorial_model = tutorial.is_tutorial(signature)
    prefill(model, signature, version, link, tutorial_model)
    found, source = st.session_state[PREFILL_KEY]
    if signature.takes_examples:
        edited = example_editor.render(signature.method, source.endswith("warm-up requests"))
    else:
        takes = ", ".join(f"`{k}` {s.describe()}" for k, s in signature.inputs.items())
        st.caption(f"Inputs of `{name}`: {takes} · started from {source}.")
        edited = predict_inputs.render(signature, found["inputs"], tutorial_model,
                                       (X_LOW, X_HIGH) if tutorial_model else (0.0, 1.0))
    fixed = signature.takes_examples or transport == "gRPC" or edited.columnar_only
    if edited.columnar_only:
        st.session_state["predict_format"] = "columnar"
    fmt = fmt_col.radio("Request format", list(FORMATS), format_func=FORMATS.get, key="predict_format",
                        horizontal=True, disabled=fixed,
                        help="REST only: gRPC sends typed tensors; classify/regress send tf.Examples; inputs "
                        "without a batch dimension go columnar.")
    blocked = edited.problem is not None or not target_ok or target is None
    request = None if blocked else Request(model, target or {}, signature, transport, fmt, edited.inputs,
                                           edited.examples, edited.context, edited.rows)
    clicked = st.button("Send", key="predict_send", type="primary", disabled=request is None,
                        icon=":material/send:")
    if request is not None and (clicked or (link and link.send)):
        send(request)
    if st.session_state.pop("predict_dropped_answers", False):
        st.session_state.pop(RESULT_KEY, None)  # its answers belong to the rows just dropped
        st.session_state.pop(predict_compare.COMPARE_KEY, None)
    if isinstance(answer := st.session_state.get(RESULT_KEY), Answer):
        key = request.key() if request is not None else ""
        if reasons := stale_reasons(answer, key, versions, reachable):
            st.warning("This answer is stale: " + "; ".join(reasons) + ". Press Send for a fresh one.",
                       icon=":material/history:")
        render_answer(answer, edited, tutorial_model)
    st.divider()
    what_if.render(request, edited, tutorial_model)
    st.divider()
    predict_compare.render(versions, request, tutorial_model, compare_hint(versions, tutorial_model))
    st.divider()
    predict_history.render(signatures, tutorial_model)


main()
