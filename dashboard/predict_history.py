"""The Predict page's request history: record every request, list them, replay one, share a view
as a link (``?version=3&rows=1,2;5,7``) and export chosen requests as a version's warm-up file.

The history itself lives on disk (`pipeline/client/history.py`, under the model's base path), so
it survives a dashboard restart and is shared by every tab; this module is its UI.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import clients, messages, session, tutorial
from pipeline.client import history, warmup
from pipeline.client.errors import ClientError
from pipeline.client.rest import PredictResult
from pipeline.store.versions import list_versions

SHOWN = 50
"""Entries listed on the page (the file keeps up to history.MAX_ENTRIES)."""
SHARE_MAX_ROWS = 20
"""Rows a shared link carries; a view with more shares its version only."""
APPLIED_KEY = "predict_shared_view_applied"
TARGET_KEY = "predict_target"


def record(target: dict[str, Any], request: dict[str, Any], rows: int, *, result: PredictResult | None = None,
           error: ClientError | None = None, version: int | None = None, transport: str = "REST") -> None:
    """Keep one request (answered or failed) in the model's history; a folder that cannot be
    written is said once as a caption, never blocks the request."""
    try:
        history.record_request(
            session.base_path(), transport=transport,
            url=result.url if result else (error.url if error else ""),
            model=session.model_name(), target=target, request=request, rows=rows,
            response=result.response if result else None,
            status=result.status_code if result else (error.status_code if error else None),
            latency_s=result.latency_s if result else None, version=version,
            error=str(error) if error else None)
    except OSError as exc:
        st.caption(f"This request was not kept in the history ({exc}).")


def rows_param(rows: np.ndarray) -> str:
    """Rows as a compact URL value: ``1,2;5,7``."""
    return ";".join(",".join(f"{v:g}" for v in row) for row in np.asarray(rows, dtype=float))


def parse_rows_param(text: str) -> pd.DataFrame:
    """The rows of a shared link; ``ValueError`` naming the problem."""
    rows = []
    for part in text.split(";"):
        cells = part.split(",")
        if len(cells) != 2:
            raise ValueError(f"{part!r} is not two numbers")
        values = [float(c) for c in cells]
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"{part!r} is not two finite numbers")
        rows.append(values)
    if not rows or len(rows) > SHARE_MAX_ROWS:
        raise ValueError(f"a link carries 1 to {SHARE_MAX_ROWS} rows")
    return pd.DataFrame(rows, columns=list(tutorial.FEATURES))


def view_params(target: dict[str, Any], rows: np.ndarray | None) -> dict[str, str]:
    """The query parameters that reproduce a view: version (or label) and rows when few."""
    params: dict[str, str] = {}
    if "version" in target:
        params["version"] = str(target["version"])
    elif target.get("label"):
        params["label"] = str(target["label"])
    if rows is not None and 0 < len(rows) <= SHARE_MAX_ROWS:
        params["rows"] = rows_param(rows)
    return params


def share_view(target: dict[str, Any], rows: np.ndarray) -> None:
    """Put the view just sent into the address bar, so copying the URL shares it."""
    st.query_params.clear()
    st.query_params.update(view_params(target, rows))


def apply_shared_view(versions: list[int], set_rows: Callable[[pd.DataFrame], None]) -> None:
    """Once per session, take rows and version from the page's URL (a shared link)."""
    if st.session_state.get(APPLIED_KEY):
        return
    st.session_state[APPLIED_KEY] = True
    params = st.query_params
    if "rows" in params:
        try:
            set_rows(parse_rows_param(params["rows"]))
        except ValueError as exc:
            st.warning(f"The link's rows were not used: {exc}.")
    if "version" in params:
        version = params["version"]
        if version.isdigit() and int(version) in versions:
            st.session_state[TARGET_KEY] = int(version)
        else:
            st.warning(f"The link asks for version {version}, which is not AVAILABLE here: using the latest.")
    elif "label" in params:
        st.session_state[TARGET_KEY] = "label"
        st.session_state["predict_label"] = params["label"]


def link_for(entry: dict[str, Any]) -> str:
    """A link to the Predict page showing an entry's version and rows (when few)."""
    rows = history.request_rows(entry)
    params = view_params(entry.get("target") or {}, np.asarray(rows) if rows else None)
    base = (st.context.url or f"http://127.0.0.1:{st.get_option('server.port')}/predict").split("?")[0]
    return base + ("?" + urlencode(params, safe=",;") if params else "")


def target_text(target: dict[str, Any]) -> str:
    """``version 3``, ``label stable`` or ``latest``."""
    if "version" in target:
        return f"version {target['version']}"
    return f"label {target['label']}" if "label" in target else "latest"


def entry_label(entry: dict[str, Any]) -> str:
    """One line naming an entry in a picker: time, rows, target, outcome."""
    outcome = "OK" if not entry.get("error") else "failed"
    return (f"{entry['time'][11:19]} · {entry.get('rows')} rows · {target_text(entry.get('target') or {})} · "
            f"{outcome}")


def entries_table(entries: list[dict[str, Any]]) -> pd.DataFrame:
    """What a tester scans: when, how, to what, which version answered, size, speed, outcome."""
    return pd.DataFrame([{
        "time": pd.Timestamp(e["time"]).tz_convert(None).strftime("%Y-%m-%d %H:%M:%S"),
        "transport": e.get("transport", "REST"), "target": target_text(e.get("target") or {}),
        "version": e.get("version"), "rows": e.get("rows"), "latency ms": e.get("latency_ms"),
        "outcome": "OK" if not e.get("error") else str(e["error"])[:120],
    } for e in entries])


def _send_again(entry: dict[str, Any]) -> PredictResult:
    """The kept request sent again over its own transport (raises ClientError)."""
    target = entry.get("target") or {}
    if entry.get("transport") != "gRPC":
        return clients.get_client().predict_body(session.model_name(), entry["request"], **target)
    spec = entry["request"].get("model_spec") or {}
    answer = clients.get_grpc_client().predict(session.model_name(), entry["request"]["inputs"],
                                             version=target.get("version"), label=target.get("label"),
                                             signature=spec.get("signature_name") or "serving_default")
    return PredictResult(url=entry.get("url", ""), request=entry["request"], status_code=0,
                         response={"model_spec": {"name": answer.model, "version": answer.version,
                                                  "signature_name": answer.signature},
                                   "outputs": answer.outputs}, latency_s=answer.latency_s)


def replay(entry: dict[str, Any]) -> None:
    """Send a kept request again, exactly as it was, and say whether the answer is the same."""
    transport = entry.get("transport") or "REST"
    try:
        result = _send_again(entry)
    except ClientError as exc:
        record(entry.get("target") or {}, entry["request"], entry.get("rows", 0), error=exc,
               transport=transport)
        messages.show_serving_error(exc)
        return
    record(entry.get("target") or {}, result.request, entry.get("rows", 0), result=result,
           version=entry.get("version"), transport=transport)
    same = result.response == entry.get("response")
    status = "gRPC OK" if transport == "gRPC" else f"HTTP {result.status_code}"
    st.success(f"Replayed over {transport} in {result.latency_s * 1000:.1f} ms ({status}): "
               + ("the same answer as before." if same else "the answer differs from the one kept."),
               icon=":material/replay:")
    if not same:
        st.json(result.response, expanded=False)


def export_form(entries: list[dict[str, Any]]) -> None:
    """Chosen requests → ``<version>/assets.extra/tf_serving_warmup_requests``."""
    on_disk = [v.version for v in reversed(list_versions(session.base_path()))]
    keepable = [e for e in entries if history.request_rows(e)]
    if not on_disk or not keepable:
        st.caption("Export as a warm-up file needs a version on this machine and a kept request.")
        return
    labels = {e["id"]: entry_label(e) for e in keepable}
    with st.form("history_warmup"):
        chosen = st.multiselect("Requests", list(labels), format_func=labels.get, key="history_warmup_pick")
        version = st.selectbox("Into version", on_disk, key="history_warmup_version",
                               format_func=lambda v: f"version {v}")
        go = st.form_submit_button("Write warm-up file", icon=":material/local_fire_department:")
    if go:
        bodies = [e["request"] for e in keepable if e["id"] in chosen]
        if not bodies:
            st.warning("Choose at least one request.")
            return
        with st.spinner("Writing the warm-up file (in a separate process)…"):
            try:
                path = warmup.export_warmup(bodies, session.base_path() / str(version), session.model_name())
            except (ValueError, OSError) as exc:
                st.error(str(exc))
                return
        st.success(f"Wrote {len(bodies)} request(s) to `{path}`: TF Serving replays them when it loads "
                   f"version {version}.", icon=":material/check_circle:")


def render(versions: list[int]) -> None:
    """The history section of the Predict page."""
    st.subheader("Request history")
    entries = history.list_requests(session.base_path(), limit=SHOWN)
    if not entries:
        st.caption("Every request this page sends is kept here (on disk, in the model folder's hidden "
                   "`.history/`), with its answer, version and latency.")
        return
    st.caption(f"The newest {len(entries)} requests to `{session.model_name()}` "
               f"(up to {history.MAX_ENTRIES} are kept in `{history.history_path(session.base_path())}`).")
    st.dataframe(entries_table(entries), hide_index=True, key="history_table")
    by_id = {e["id"]: e for e in entries}
    pick_col, replay_col = st.columns([4, 1], vertical_alignment="bottom")
    chosen = pick_col.selectbox("Request", list(by_id), key="history_pick",
                                format_func=lambda i: entry_label(by_id[i]))
    entry = by_id[chosen]
    if replay_col.button("Replay", key="history_replay", disabled=not entry.get("request"),
                         icon=":material/replay:"):
        replay(entry)
    st.caption("Link to this view (version and rows):")
    st.code(link_for(entry), language=None)
    with st.expander("Export requests as a warm-up file"):
        export_form(entries)
