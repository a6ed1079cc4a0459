"""Predict: send input rows to the model server and see how close its answers are to the truth.

Rows come from an editable table (the tutorial's [1, 2] and [5, 7] to start), random rows or
a CSV (up to 50,000 rows; larger files go to batch scoring). A request goes to the latest
version, a chosen AVAILABLE version or a label, in row (``instances``) or columnar (``inputs``)
format. The answer is shown next to the noiseless value ``x @ w0 + b0`` and the residual, as
charts (sampled beyond 2,000 points), and as the JSON exchanged (collapsed, downloadable) with
ready-to-copy curl and Python snippets. An answer stays tied to the rows, options and version
that made it: change them, or lose the version, and it is marked stale. Every request is kept in
the request history (replay, share as a link, export as a warm-up file). Two versions can
answer the same rows side by side.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import (
    charts,
    clients,
    messages,
    model_picker,
    predict_history,
    predict_requests,
    session,
    tutorial,
)
from pipeline.client import local_server
from pipeline.client.errors import ClientError
from pipeline.client.rest import PredictResult, available_versions, signature_names
from pipeline.client.snippets import (
    curl_command,
    curl_file_command,
    grpc_snippet,
    python_file_snippet,
    python_snippet,
)
from pipeline.client.urls import is_local_url, model_url
from pipeline.store.versions import list_versions
from pipeline.training.data import X_HIGH, X_LOW, true_values

ROWS_KEY, EDITOR_KEY, CSV_KEY = "predict_rows", "predict_editor", "predict_csv"
CSV_LOADED_KEY, RESULT_KEY, COMPARE_KEY = "predict_csv_loaded", "predict_result", "predict_compare"
LATEST, LABEL = "latest", "label"
FORMATS = {"row": "row (instances)", "columnar": "columnar (inputs)"}
TRANSPORTS = ("REST", "gRPC")
LATENCY_KEY = "predict_latency_by_transport"
MAX_RANDOM_ROWS = 10_000
# Charts draw at most this many points (a fixed random sample); tables and metrics use all rows.
MAX_PLOT_POINTS = 2_000
# The 3-D view draws fewer: WebGL without a GPU (software rendering) takes seconds per thousand.
MAX_3D_POINTS = 500
# Bodies with more rows are shown as their first rows, the whole JSON being a download.
PREVIEW_ROWS = 20


def set_rows(rows: pd.DataFrame) -> None:
    """Replace the input table (dropping pending edits, which belong to the old table)."""
    st.session_state[ROWS_KEY] = rows.reset_index(drop=True)
    st.session_state.pop(EDITOR_KEY, None)


def random_rows(count: int, rng: np.random.Generator | None = None) -> pd.DataFrame:
    """``count`` rows drawn uniformly from the training data's range, rounded for reading."""
    rng = rng or np.random.default_rng()
    values = np.round(rng.uniform(X_LOW, X_HIGH, size=(count, 2)), 3)
    return pd.DataFrame(values, columns=list(tutorial.FEATURES))


def render_inputs() -> tuple[pd.DataFrame, str | None]:
    """The rows table, random rows and CSV upload; returns the edited rows and a CSV problem."""
    if ROWS_KEY not in st.session_state:
        st.session_state[ROWS_KEY] = pd.DataFrame(tutorial.DEFAULT_ROWS, columns=list(tutorial.FEATURES))
    problem = None
    st.caption(f"Up to {tutorial.MAX_INTERACTIVE_ROWS:,} rows per request here; charts show a sample of "
               f"{MAX_PLOT_POINTS:,} points. For larger files use batch scoring: {tutorial.BATCH_HINT}")
    upload = st.file_uploader(f"Rows from a CSV file (two numeric columns, header optional, up to "
                              f"{tutorial.MAX_INTERACTIVE_ROWS:,} rows)", type=["csv"], key=CSV_KEY)
    if upload is not None:
        try:
            parsed = tutorial.parse_rows_csv(upload.getvalue())
            if st.session_state.get(CSV_LOADED_KEY) != upload.file_id:
                set_rows(parsed)
                st.session_state[CSV_LOADED_KEY] = upload.file_id
        except ValueError as exc:
            problem = str(exc)
            st.error(problem, icon=":material/table_view:")
    # Not `required`: the browser would drop a half-filled new row silently; check_rows names it.
    column = st.column_config.NumberColumn(format="%.4g")
    edited = st.data_editor(st.session_state[ROWS_KEY], num_rows="dynamic", hide_index=True, key=EDITOR_KEY,
                            column_config={"x1": column, "x2": column})
    st.caption(f"{len(edited):,} row{'s' if len(edited) != 1 else ''} in the table")
    count_col, add_col, reset_col = st.columns([2, 2, 2], vertical_alignment="bottom")
    count = count_col.number_input("Random rows", min_value=1, max_value=MAX_RANDOM_ROWS, value=5,
                                   key="predict_random_count")
    if add_col.button(f"Add {int(count):,} random rows", key="predict_add_random", icon=":material/casino:"):
        set_rows(pd.concat([edited, random_rows(int(count))], ignore_index=True))
        st.rerun()
    if reset_col.button("Reset to the tutorial's rows", key="predict_reset", icon=":material/undo:"):
        set_rows(pd.DataFrame(tutorial.DEFAULT_ROWS, columns=list(tutorial.FEATURES)))
        st.session_state.pop(RESULT_KEY, None)  # its answers belong to the rows just dropped
        st.session_state.pop(COMPARE_KEY, None)
        st.rerun()
    return edited, problem


def render_options(versions: list[int], reachable: bool) -> tuple[dict[str, Any], str, str, bool]:
    """Version or label, signature, format and transport; returns (target kwargs, signature,
    format, target ok); the transport is read from ``st.session_state["predict_transport"]``.
    Signatures are read from the metadata only when the server answered the status call, so
    a down server is reported once, not once per question; an unknown label is reported here
    once and blocks Send (which would only repeat the same error)."""
    target_col, sig_col, fmt_col, transport_col = st.columns([3, 3, 3, 2])
    shown = {LATEST: "latest", LABEL: "a label…"}
    choice = target_col.selectbox("Version", [LATEST, *versions, LABEL], key="predict_target",
                                  format_func=lambda c: shown.get(c, f"version {c}"),
                                  help="'latest' is the highest AVAILABLE version, as TF Serving picks it.")
    target: dict[str, Any] = {}
    if choice == LABEL:
        label = target_col.text_input("Label", key="predict_label", placeholder="e.g. stable")
        target["label"] = label.strip()
    elif choice != LATEST:
        target["version"] = int(choice)
    names, target_ok = ["serving_default"], target.get("label") != ""
    if reachable and target_ok:
        try:
            names = signature_names(clients.get_client().metadata(session.model_name(), **target)) or names
        except ClientError as exc:
            target_ok = "label" not in target
            messages.show_serving_error(exc)
    signature = sig_col.selectbox("Signature", names, key="predict_signature")
    transport = transport_col.radio("Transport", TRANSPORTS, key="predict_transport", horizontal=True,
                                    help=f"REST at {session.serving_url()}, or gRPC at "
                                    f"{session.settings().grpc_target} (PredictionService/Predict, the "
                                    "official stubs; the first gRPC call loads TensorFlow's protos, a few "
                                    "seconds).")
    fmt = fmt_col.radio("Request format", list(FORMATS), format_func=FORMATS.get, key="predict_format",
                        horizontal=True, disabled=transport == "gRPC",
                        help="REST only: gRPC sends the rows as one TensorProto.")
    return target, signature, fmt, target_ok


def sample_index(count: int, limit: int = MAX_PLOT_POINTS) -> np.ndarray:
    """Indices of the points a chart draws: all of them up to ``limit``, else a fixed random
    sample of ``limit`` (the same one on every rerun), in row order."""
    if count <= limit:
        return np.arange(count)
    return np.sort(np.random.default_rng(0).choice(count, size=limit, replace=False))


def body_preview(body: dict[str, Any], rows: int) -> str:
    """The JSON of ``body`` when it is small, else its first :data:`PREVIEW_ROWS` rows with a note."""
    if rows <= PREVIEW_ROWS:
        return json.dumps(body)
    short = {k: (v[:PREVIEW_ROWS] if isinstance(v, list) else v) for k, v in body.items()}
    return f"// first {PREVIEW_ROWS} of {rows:,} rows; download the whole body\n" + json.dumps(short)


def render_exchange(outcome: dict[str, Any], rows: int) -> None:
    """The request and response, collapsed, with downloads and copyable snippets: curl and
    requests for REST, the official PredictionServiceStub for gRPC (beside each other)."""
    result: PredictResult = outcome["result"]
    grpc = outcome.get("transport") == "gRPC"
    title = f"Request and response, curl and Python ({rows:,} rows)"
    with st.expander(title, expanded=rows <= PREVIEW_ROWS):
        request_tab, response_tab, curl_tab, python_tab, grpc_tab = st.tabs(
            ["Request", "Response", "curl", "Python", "Python (gRPC)"])
        request_tab.caption(f"{'gRPC' if grpc else 'POST'} {result.url}")
        request_tab.code(body_preview(result.request, rows), language="json", wrap_lines=True)
        status = "gRPC OK" if grpc else f"HTTP {result.status_code}"
        response_tab.caption(f"{status} in {result.latency_s * 1000:.1f} ms")
        response_tab.code(body_preview(result.response, rows), language="json", wrap_lines=True)
        rest_url = outcome.get("rest_url") or result.url
        rest_body = outcome.get("rest_body") or result.request
        target = outcome.get("target_spec") or {}
        small = rows <= PREVIEW_ROWS
        if small:
            curl_tab.code(curl_command(rest_url, rest_body), language="bash")
            python_tab.code(python_snippet(rest_url, rest_body), language="python")
        else:
            curl_tab.code(curl_file_command(rest_url), language="bash")
            python_tab.code(python_file_snippet(rest_url), language="python")
        grpc_tab.code(grpc_snippet(session.settings().grpc_target, session.model_name(),
                                   np.asarray(outcome["rows"]).tolist() if small else None,
                                   version=target.get("version"), label=target.get("label"),
                                   signature=outcome.get("signature") or "serving_default",
                                   rows_file=None if small else "request.json"), language="python")
        left, right = st.columns(2)
        left.download_button("Download request.json", json.dumps(result.request), "request.json",
                             mime="application/json", key="predict_download_request",
                             icon=":material/download:")
        right.download_button("Download response.json", json.dumps(result.response), "response.json",
                              mime="application/json", key="predict_download_response",
                              icon=":material/download:")


def render_result(outcome: dict[str, Any]) -> None:
    """Predictions next to the truth, charts (sampled), the exchange collapsed."""
    result: PredictResult = outcome["result"]
    x, predicted = np.asarray(outcome["rows"]), np.asarray(outcome["predicted"], dtype=float)
    w, b, source = outcome["true"]
    true = true_values(x, w, b)
    residual = predicted - true
    finite = np.isfinite(predicted)
    if not finite.all():
        version = outcome.get("version")
        which = "the served version" if version is None else f"version {version}"
        st.error(f"The server answered NaN or infinity for {int((~finite).sum()):,} of {len(predicted):,} "
                 f"rows: {which} did not learn (a diverged run). Train again with a smaller learning rate "
                 "and serve that version.",
                 icon=":material/warning:")
    m1, m2, m3 = st.columns(3)
    m1.metric(f"Round trip ({outcome.get('transport', 'REST')})", f"{result.latency_s * 1000:.1f} ms")
    m2.metric("RMSE vs true", f"{float(np.sqrt(np.mean(residual ** 2))):.4g}")
    m3.metric("Max |residual|", f"{float(np.max(np.abs(residual))):.4g}")
    st.caption(f"Answered by {outcome['target']} · {len(x):,} rows · true values use w0 = {w}, b0 = {b:g} "
               f"from {source}.")
    if len(latency := st.session_state.get(LATENCY_KEY, {})) > 1:
        st.caption("Last round trip by transport: "
                   + " · ".join(f"{t} {s * 1000:.1f} ms" for t, s in sorted(latency.items())))
    table = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "predicted": predicted, "true (x·w0 + b0)": true,
                          "residual": residual})
    st.dataframe(table, hide_index=True, key="predict_table")
    shown = sample_index(len(x))
    shown = shown[finite[shown]]
    shown_3d = shown[sample_index(len(shown), MAX_3D_POINTS)]
    if len(shown) < len(x):
        of_what = " of the finite answers" if not finite.all() else ""
        st.caption(f"Charts show {len(shown):,} of {len(x):,} points (a random sample{of_what}; the 3-D view "
                   f"{len(shown_3d):,}); the table and metrics use all rows.")
    left, right = st.columns(2)
    left.plotly_chart(charts.predicted_vs_true_figure(true[shown], predicted[shown]),
                      key="predict_chart_scatter")
    right.plotly_chart(charts.points_on_true_plane_figure(x[shown_3d], predicted[shown_3d], w, b),
                       key="predict_chart_plane")
    render_exchange(outcome, len(x))


def stale_reasons(outcome: dict[str, Any], key: str, versions: list[int], reachable: bool) -> list[str]:
    """Why a kept answer no longer matches the page: other rows or options, or its version gone."""
    reasons = []
    if outcome.get("key") != key:
        reasons.append(f"the rows or options changed since it was sent ({len(outcome['rows']):,} rows then)")
    version = outcome.get("version")
    if reachable and version is not None and version not in versions:
        reasons.append(f"version {version} is no longer AVAILABLE (deleted or unloaded)")
    return reasons


def keep_outcome(key: str, build: Callable[[], dict]) -> None:
    """Store what ``build`` returns under ``key``; on a server error or an answer that is not
    one prediction per row, drop the old outcome and show a readable message instead."""
    try:
        st.session_state[key] = build()
    except ClientError as exc:
        st.session_state.pop(key, None)
        messages.show_serving_error(exc)
    except ValueError as exc:
        st.session_state.pop(key, None)
        st.warning(f"The server answered, but not with one prediction per row: {exc}")


def compare_hint(versions: list[int]) -> str:
    """Why comparing is not possible yet, and the one step that fixes it."""
    on_disk = len(list_versions(session.base_path())) if is_local_url(session.serving_url()) else None
    kept = int(st.session_state.get("serving_loaded_versions", local_server.LOADED_VERSIONS))
    if on_disk is not None and on_disk < 2:
        have = "one version" if on_disk == 1 else "no version"
        return (f"Comparing needs two AVAILABLE versions and this model has {have} on disk: train another "
                "on the Train page.")
    if kept >= 2 and on_disk is not None:
        return (f"Comparing needs two AVAILABLE versions; {len(versions)} is AVAILABLE now. The server keeps "
                f"the newest {kept} loaded: wait for the newer version to load, or check the Serving page "
                "for a version that failed to load.")
    return ("Comparing needs two AVAILABLE versions. Have the server keep two loaded: on the Serving page "
            "set 'Versions kept loaded' to 2 and restart the embedded server (TF Serving: "
            "`model_version_policy { latest { num_versions: 2 } }`).")


def render_compare(versions: list[int], rows: np.ndarray | None, signature: str, fmt: str) -> None:
    """The same rows sent to two versions, plotted side by side."""
    st.subheader("Compare two versions")
    if len(versions) < 2:
        st.info(compare_hint(versions))
        return
    a_col, b_col, go_col = st.columns([2, 2, 2], vertical_alignment="bottom")
    first = a_col.selectbox("First version", versions, index=1, key="compare_a")
    second = b_col.selectbox("Second version", versions, index=0, key="compare_b")
    if go_col.button("Compare", key="predict_compare_send", disabled=rows is None, icon=":material/compare:"):
        def compare() -> dict:
            answers = {v: predict_requests.send(rows, {"version": v}, signature, fmt, v)
                       for v in (first, second)}
            return {"rows": rows, "true": predict_requests.true_weights(second),
                    "predicted": {v: tutorial.prediction_values(r.values, len(rows))
                                  for v, r in answers.items()},
                    "latency": {v: r.latency_s for v, r in answers.items()}}

        keep_outcome(COMPARE_KEY, compare)
    outcome = st.session_state.get(COMPARE_KEY)
    if outcome:
        x = np.asarray(outcome["rows"])
        w, b, _ = outcome["true"]
        true = true_values(x, w, b)
        labelled = {f"version {v}": np.asarray(p) for v, p in outcome["predicted"].items()}
        shown = sample_index(len(x))
        sampled = {k: p[shown] for k, p in labelled.items()}
        st.plotly_chart(charts.compare_versions_figure(true[shown], sampled), key="predict_chart_compare")
        table = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "true (x·w0 + b0)": true, **labelled})
        if len(labelled) == 2:
            (la, pa), (lb, pb) = labelled.items()
            table[f"{lb} − {la}"] = pb - pa
        st.dataframe(table, hide_index=True, key="predict_compare_table")
        st.caption(" · ".join(f"version {v}: {s * 1000:.1f} ms" for v, s in outcome["latency"].items()))


def main() -> None:
    st.title("Predict")
    model_picker.render()
    st.caption(f"Model `{session.model_name()}` at {session.serving_url()}")
    try:
        statuses = clients.get_client().model_status(session.model_name())
        versions, reachable = available_versions(statuses), True
    except ClientError as exc:
        versions, reachable = [], False
        messages.show_serving_error(exc)
    predict_history.apply_shared_view(versions, set_rows)
    edited, csv_problem = render_inputs()
    target, signature, fmt, target_ok = render_options(versions, reachable)
    try:
        rows: np.ndarray | None = tutorial.check_rows(edited)
    except ValueError as exc:
        rows = None
        st.error(str(exc), icon=":material/table_view:")
    transport = st.session_state.get("predict_transport", "REST")
    key = predict_requests.inputs_key(rows, target, signature, fmt if transport == "REST" else "", transport)
    blocked = rows is None or csv_problem is not None or not target_ok
    if st.button("Send", key="predict_send", type="primary", disabled=blocked, icon=":material/send:"):
        def predict() -> dict:
            if transport == "gRPC":
                result, version = predict_requests.send_grpc(rows, target, signature)
            else:
                version = predict_requests.served(target)
                result = predict_requests.send(rows, target, signature, fmt, version)
            answered_by = f"label {target['label']}" if "label" in target else "the latest version"
            if "version" in target:
                answered_by = f"version {version}"
            elif version is not None:
                answered_by += f" (version {version})"
            st.session_state.setdefault(LATENCY_KEY, {})[transport] = result.latency_s
            rest_body = {"instances" if fmt == "row" else "inputs": rows.tolist()}
            if signature != "serving_default":
                rest_body = {"signature_name": signature, **rest_body}
            return {"rows": rows, "result": result, "target": answered_by,
                    "true": predict_requests.true_weights(version),
                    "predicted": tutorial.prediction_values(result.values, len(rows)), "key": key,
                    "version": version, "transport": transport, "signature": signature, "target_spec": target,
                    "rest_url": model_url(session.serving_url(), session.model_name(), verb="predict",
                                          **target),
                    "rest_body": rest_body}

        keep_outcome(RESULT_KEY, predict)
        if RESULT_KEY in st.session_state:
            predict_history.share_view(target, rows)
    if RESULT_KEY in st.session_state:
        outcome = st.session_state[RESULT_KEY]
        if reasons := stale_reasons(outcome, key, versions, reachable):
            st.warning("This answer is stale: " + "; ".join(reasons) + ". Press Send for a fresh one.",
                       icon=":material/history:")
        render_result(outcome)
    st.divider()
    render_compare(versions, None if blocked else rows, signature, fmt)
    st.divider()
    predict_history.render(versions)


main()
