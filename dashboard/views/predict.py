"""Predict: send input rows to the model server and see how close its answers are to the truth.

Rows come from an editable table (the tutorial's [1, 2] and [5, 7] to start), random rows or
a CSV. A request goes to the latest version, a chosen AVAILABLE version or a label, in row
(``instances``) or columnar (``inputs``) format. The answer is shown next to the noiseless
value ``x @ w0 + b0`` and the residual, as charts, and as the exact JSON exchanged with
ready-to-copy curl and Python snippets. Two versions can answer the same rows side by side.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts, utils
from pipeline import config, registry, server_process
from pipeline.client import (
    PredictResult,
    ServingError,
    available_versions,
    curl_command,
    python_snippet,
    served_version,
    signature_names,
)
from pipeline.data import X_HIGH, X_LOW, true_values

ROWS_KEY, EDITOR_KEY, CSV_KEY = "predict_rows", "predict_editor", "predict_csv"
CSV_LOADED_KEY, RESULT_KEY, COMPARE_KEY = "predict_csv_loaded", "predict_result", "predict_compare"
LATEST, LABEL = "latest", "label"
FORMATS = {"row": "row (instances)", "columnar": "columnar (inputs)"}
MAX_RANDOM_ROWS = 10_000


def set_rows(rows: pd.DataFrame) -> None:
    """Replace the input table (dropping pending edits, which belong to the old table)."""
    st.session_state[ROWS_KEY] = rows.reset_index(drop=True)
    st.session_state.pop(EDITOR_KEY, None)


def random_rows(count: int, rng: np.random.Generator | None = None) -> pd.DataFrame:
    """``count`` rows drawn uniformly from the training data's range, rounded for reading."""
    rng = rng or np.random.default_rng()
    values = np.round(rng.uniform(X_LOW, X_HIGH, size=(count, 2)), 3)
    return pd.DataFrame(values, columns=list(utils.FEATURES))


def true_weights(version: int | None) -> tuple[list[float], float, str]:
    """The true ``w0``, ``b0`` the served version was trained against (its run record, read
    from this machine's model folder when the server is local), else the project defaults;
    and where they came from, for the caption."""
    if version is not None and server_process.is_local_url(utils.serving_url()):
        record = registry.read_run_record(utils.base_path() / str(version)) or {}
        true = record.get("true") or {}
        if len(true.get("w") or []) == 2 and true.get("b") is not None:
            return [float(v) for v in true["w"]], float(true["b"]), f"version {version}'s run record"
    return list(config.TRUE_W), config.TRUE_B, "the project defaults"


def served(target: dict[str, Any]) -> int | None:
    """The version a request to ``target`` reaches (an explicit one, else from the metadata)."""
    if "version" in target:
        return int(target["version"])
    try:
        return served_version(utils.get_client().metadata(utils.model_name(), **target))
    except ServingError:
        return None


def send(rows: list[list[float]], target: dict[str, Any], signature: str, fmt: str) -> PredictResult:
    """One predict call for ``rows`` with the page's choices (raises ServingError)."""
    data = {"instances": rows} if fmt == "row" else {"inputs": rows}
    signature_name = None if signature == "serving_default" else signature
    return utils.get_client().predict(utils.model_name(), signature_name=signature_name, **target, **data)


def render_inputs() -> tuple[pd.DataFrame, str | None]:
    """The rows table, random rows and CSV upload; returns the edited rows and a CSV problem."""
    if ROWS_KEY not in st.session_state:
        st.session_state[ROWS_KEY] = pd.DataFrame(utils.DEFAULT_ROWS, columns=list(utils.FEATURES))
    problem = None
    upload = st.file_uploader("Rows from a CSV file (two numeric columns, header optional)", type=["csv"],
                              key=CSV_KEY)
    if upload is not None:
        try:
            parsed = utils.parse_rows_csv(upload.getvalue())
            if st.session_state.get(CSV_LOADED_KEY) != upload.file_id:
                set_rows(parsed)
                st.session_state[CSV_LOADED_KEY] = upload.file_id
        except ValueError as exc:
            problem = str(exc)
            st.error(problem, icon=":material/table_view:")
    column = st.column_config.NumberColumn(format="%.4g", required=True)
    edited = st.data_editor(st.session_state[ROWS_KEY], num_rows="dynamic", hide_index=True, key=EDITOR_KEY,
                            column_config={"x1": column, "x2": column})
    count_col, add_col, reset_col = st.columns([2, 2, 2], vertical_alignment="bottom")
    count = count_col.number_input("Random rows", min_value=1, max_value=MAX_RANDOM_ROWS, value=5,
                                   key="predict_random_count")
    if add_col.button(f"Add {int(count)} random rows", key="predict_add_random", icon=":material/casino:"):
        set_rows(pd.concat([edited, random_rows(int(count))], ignore_index=True))
        st.rerun()
    if reset_col.button("Reset to the tutorial's rows", key="predict_reset", icon=":material/undo:"):
        set_rows(pd.DataFrame(utils.DEFAULT_ROWS, columns=list(utils.FEATURES)))
        st.rerun()
    return edited, problem


def render_options(versions: list[int], reachable: bool) -> tuple[dict[str, Any], str, str]:
    """Version or label, signature and format; returns (target kwargs, signature, format).
    Signatures are read from the metadata only when the server answered the status call, so
    a down server is reported once, not once per question."""
    target_col, sig_col, fmt_col = st.columns(3)
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
    names = ["serving_default"]
    if reachable and target.get("label") != "":
        try:
            names = signature_names(utils.get_client().metadata(utils.model_name(), **target)) or names
        except ServingError as exc:
            utils.show_serving_error(exc)
    signature = sig_col.selectbox("Signature", names, key="predict_signature")
    fmt = fmt_col.radio("Request format", list(FORMATS), format_func=FORMATS.get, key="predict_format",
                        horizontal=True)
    return target, signature, fmt


def render_result(outcome: dict[str, Any]) -> None:
    """Predictions next to the truth, charts, the exact JSON exchanged and snippets."""
    result: PredictResult = outcome["result"]
    x, predicted = np.asarray(outcome["rows"]), outcome["predicted"]
    w, b, source = outcome["true"]
    true = true_values(x, w, b)
    residual = np.asarray(predicted) - true
    table = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "predicted": predicted, "true (x·w0 + b0)": true,
                          "residual": residual})
    m1, m2, m3 = st.columns(3)
    m1.metric("Round trip", f"{result.latency_s * 1000:.1f} ms")
    m2.metric("RMSE vs true", f"{float(np.sqrt(np.mean(residual ** 2))):.4g}")
    m3.metric("Max |residual|", f"{float(np.max(np.abs(residual))):.4g}")
    st.caption(f"Answered by {outcome['target']} · true values use w0 = {w}, b0 = {b:g} from {source}.")
    st.dataframe(table, hide_index=True, key="predict_table")
    left, right = st.columns(2)
    left.plotly_chart(charts.predicted_vs_true_figure(true, predicted), key="predict_chart_scatter")
    right.plotly_chart(charts.points_on_true_plane_figure(x, predicted, w, b), key="predict_chart_plane")
    request_tab, response_tab, curl_tab, python_tab = st.tabs(["Request", "Response", "curl", "Python"])
    request_tab.caption(f"POST {result.url}")
    request_tab.code(json.dumps(result.request), language="json", wrap_lines=True)
    response_tab.caption(f"HTTP {result.status_code} in {result.latency_s * 1000:.1f} ms")
    response_tab.code(json.dumps(result.response), language="json", wrap_lines=True)
    curl_tab.code(curl_command(result.url, result.request), language="bash")
    python_tab.code(python_snippet(result.url, result.request), language="python")


def keep_outcome(key: str, build: Callable[[], dict]) -> None:
    """Store what ``build`` returns under ``key``; on a server error or an answer that is not
    one prediction per row, drop the old outcome and show a readable message instead."""
    try:
        st.session_state[key] = build()
    except ServingError as exc:
        st.session_state.pop(key, None)
        utils.show_serving_error(exc)
    except ValueError as exc:
        st.session_state.pop(key, None)
        st.warning(f"The server answered, but not with one prediction per row: {exc}")


def render_compare(versions: list[int], rows: list[list[float]] | None, signature: str, fmt: str) -> None:
    """The same rows sent to two versions, plotted side by side."""
    st.subheader("Compare two versions")
    if len(versions) < 2:
        st.info("Comparing needs two AVAILABLE versions. Train another version on the Train page, and have "
                "the server keep two loaded: on the Serving page set 'Versions kept loaded' to 2 or more "
                "and restart the embedded server (TF Serving: "
                "`model_version_policy { latest { num_versions: 2 } }`).")
        return
    a_col, b_col, go_col = st.columns([2, 2, 2], vertical_alignment="bottom")
    first = a_col.selectbox("First version", versions, index=1, key="compare_a")
    second = b_col.selectbox("Second version", versions, index=0, key="compare_b")
    if go_col.button("Compare", key="predict_compare_send", disabled=rows is None, icon=":material/compare:"):
        def compare() -> dict:
            answers = {v: send(rows, {"version": v}, signature, fmt) for v in (first, second)}
            return {"rows": rows, "true": true_weights(second),
                    "predicted": {v: utils.prediction_values(r.values, len(rows))
                                  for v, r in answers.items()},
                    "latency": {v: r.latency_s for v, r in answers.items()}}

        keep_outcome(COMPARE_KEY, compare)
    outcome = st.session_state.get(COMPARE_KEY)
    if outcome:
        x = np.asarray(outcome["rows"])
        w, b, _ = outcome["true"]
        true = true_values(x, w, b)
        labelled = {f"version {v}": p for v, p in outcome["predicted"].items()}
        st.plotly_chart(charts.compare_versions_figure(true, labelled), key="predict_chart_compare")
        table = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "true (x·w0 + b0)": true, **labelled})
        if len(labelled) == 2:
            (la, pa), (lb, pb) = labelled.items()
            table[f"{lb} − {la}"] = np.asarray(pb) - np.asarray(pa)
        st.dataframe(table, hide_index=True, key="predict_compare_table")
        st.caption(" · ".join(f"version {v}: {s * 1000:.1f} ms" for v, s in outcome["latency"].items()))


st.title("Predict")
st.caption(f"Model `{utils.model_name()}` at {utils.serving_url()}")
try:
    versions, reachable = available_versions(utils.get_client().model_status(utils.model_name())), True
except ServingError as exc:
    versions, reachable = [], False
    utils.show_serving_error(exc)

edited, csv_problem = render_inputs()
target, signature, fmt = render_options(versions, reachable)
try:
    rows: list[list[float]] | None = utils.check_rows(edited)
except ValueError as exc:
    rows = None
    st.error(str(exc), icon=":material/table_view:")
blocked = rows is None or csv_problem is not None or target.get("label") == ""
if st.button("Send", key="predict_send", type="primary", disabled=blocked, icon=":material/send:"):
    def predict() -> dict:
        result = send(rows, target, signature, fmt)
        version = served(target)
        answered_by = f"label {target['label']}" if "label" in target else "the latest version"
        if "version" in target:
            answered_by = f"version {version}"
        elif version is not None:
            answered_by += f" (version {version})"
        return {"rows": rows, "result": result, "target": answered_by, "true": true_weights(version),
                "predicted": utils.prediction_values(result.values, len(rows))}

    keep_outcome(RESULT_KEY, predict)
if RESULT_KEY in st.session_state:
    render_result(st.session_state[RESULT_KEY])
st.divider()
render_compare(versions, None if blocked else rows, signature, fmt)
