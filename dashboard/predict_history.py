"""The Predict page's request history: record every request, list them, replay one, share a view
as a link and export chosen requests as a version's warm-up file.

A link carries everything that makes the view: the model, the version or label, signature,
transport, format and, when small, the inputs (``rows=1,2;5,7`` for the tutorial's model, else
``inputs=`` as JSON); opened, it fills the page and sends once (``send=1``). The history itself lives
on disk (`pipeline/client/history.py`, under the model's base path), so it survives a dashboard
restart and is shared by every tab; this module is its UI.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import clients, messages, session
from pipeline.client import history, warmup
from pipeline.client.errors import ClientError
from pipeline.client.grpc import as_exchange
from pipeline.client.rest import PredictResult
from pipeline.client.signatures import Signature, typed_array
from pipeline.store.versions import list_versions

SHOWN = 50
"""Entries listed on the page (the file keeps up to history.MAX_ENTRIES)."""
SHARE_MAX_ROWS = 20
"""Rows a shared link carries; a view with more shares its options only."""
SHARE_MAX_CHARS = 2_000
"""Longest ``inputs=`` JSON a link carries."""
APPLIED_KEY = "predict_shared_view_applied"
PICK_KEY = "history_pick"
TARGET_KEY = "predict_target"


def record(target: dict[str, Any], request: dict[str, Any], rows: int, *, result: PredictResult | None = None,
           error: ClientError | None = None, version: int | None = None, transport: str = "REST",
           url: str | None = None) -> None:
    """Keep one request (answered or failed) in the model's history; a folder that cannot be
    written is said once as a caption, never blocks the request. The history's picker moves to it."""
    try:
        history.record_request(
            session.base_path(), transport=transport,
            url=result.url if result else (url or (error.url if error else "")),
            model=session.model_name(), target=target, request=request, rows=rows,
            response=result.response if result else None,
            status=result.status_code if result else (error.status_code if error else None),
            latency_s=result.latency_s if result else None, version=version,
            error=str(error) if error else None)
    except OSError as exc:
        st.caption(f"This request was not kept in the history ({exc}).")
    st.session_state.pop(PICK_KEY, None)  # the picker shows the newest entry, this one


def rows_param(rows: Any) -> str:
    """The tutorial's rows as a compact URL value: ``1,2;5,7``."""
    return ";".join(",".join(f"{v:g}" for v in row) for row in np.asarray(rows, dtype=float))


def parse_rows_param(text: str, width: int = 2) -> list[list[float]]:
    """The rows of a tutorial link; ``ValueError`` naming the problem."""
    rows = []
    for part in text.split(";"):
        cells = part.split(",")
        if len(cells) != width:
            raise ValueError(f"{part!r} is not {width} numbers")
        values = [float(c) for c in cells]
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"{part!r} is not {width} finite numbers")
        rows.append(values)
    if not rows or len(rows) > SHARE_MAX_ROWS:
        raise ValueError(f"a link carries 1 to {SHARE_MAX_ROWS} rows")
    return rows


@dataclass
class LinkView:
    """What a shared link asks for: options (applied to the widgets), the signature, and the inputs
    as a small body (``{"instances": ...}``, ``{"inputs": ...}`` or ``{"examples": ...}``)."""

    body: dict[str, Any] | None = None
    signature: str | None = None
    send: bool = False
    problems: list[str] = field(default_factory=list)


def view_params(model: str, target: dict[str, Any], *, signature: str = "serving_default",
                transport: str = "REST", fmt: str = "row", body: dict[str, Any] | None = None,
                tutorial_model: bool = False, default_model: str | None = None) -> dict[str, str]:
    """The query parameters that reproduce a view: the model, version or label, signature,
    transport, format and the inputs when small, and ``send=1``."""
    params: dict[str, str] = {} if model == default_model else {"model": model}
    if "version" in target:
        params["version"] = str(target["version"])
    elif target.get("label"):
        params["label"] = str(target["label"])
    if signature != "serving_default":
        params["signature"] = signature
    if transport != "REST":
        params["transport"] = transport
    if fmt != "row":
        params["format"] = fmt
    inputs = _body_inputs(body)
    rows = next(iter(inputs.values()), None) if inputs else None
    if isinstance(rows, dict) and len(rows) == 1:  # columnar or gRPC: {"inputs": rows}
        rows = next(iter(rows.values()))
    if tutorial_model and isinstance(rows, list) and 0 < len(rows) <= SHARE_MAX_ROWS:
        params["rows"] = rows_param(rows)
    elif inputs is not None and len(text := json.dumps(inputs, separators=(",", ":"))) <= SHARE_MAX_CHARS:
        params["inputs"] = text
    params["send"] = "1"
    return params


def _body_inputs(body: dict[str, Any] | None) -> dict[str, Any] | None:
    """The inputs of a kept body as a link carries them: ``{"instances": ...}`` / ``{"inputs": ...}``
    / ``{"examples": ...}`` (the same keys a REST body uses)."""
    if not body:
        return None
    for key in ("instances", "inputs", "examples"):
        if key in body:
            return {key: body[key]}
    return None


def read_link() -> LinkView | None:
    """Once per link, what the page's URL asks for: the options go straight into the widgets'
    state (version, label, transport, format); the signature and inputs are returned."""
    params = st.query_params
    link_key = json.dumps({k: params.get(k) for k in params if k != "model"}, sort_keys=True)
    asks = ("rows", "inputs", "version", "label", "send", "transport", "format", "signature")
    if not any(k in params for k in asks) or st.session_state.get(APPLIED_KEY) == link_key:
        return None
    st.session_state[APPLIED_KEY] = link_key
    view = LinkView(send=params.get("send") == "1", signature=params.get("signature"))
    if "version" in params:
        version = params["version"]
        if version.isdigit():
            st.session_state[TARGET_KEY] = int(version)
        else:
            view.problems.append(f"the version {version!r} is not a number: using the latest")
    elif "label" in params:
        st.session_state[TARGET_KEY] = "label"
        st.session_state["predict_label"] = params["label"]
    if params.get("transport") in ("REST", "gRPC"):
        st.session_state["predict_transport"] = params["transport"]
    if params.get("format") in ("row", "columnar"):
        st.session_state["predict_format"] = params["format"]
    if "rows" in params:
        try:
            view.body = {"instances": parse_rows_param(params["rows"])}
        except ValueError as exc:
            view.problems.append(f"the link's rows were not used: {exc}")
    elif "inputs" in params:
        try:
            carried = json.loads(params["inputs"])
            if not isinstance(carried, dict) or not carried:
                raise ValueError("not an object")
            view.body = carried
        except ValueError as exc:
            view.problems.append(f"the link's inputs were not used ({exc})")
    return view


def link_for(entry: dict[str, Any], tutorial_model: bool) -> str:
    """A link to the Predict page showing an entry's model, target, options and inputs."""
    body = entry.get("request") or {}
    spec = body.get("model_spec") or {}
    signature = body.get("signature_name") or spec.get("signature_name") or "serving_default"
    url = entry.get("url", "")
    fmt = "columnar" if ("inputs" in body and entry.get("transport") != "gRPC") else "row"
    params = view_params(entry.get("model") or session.model_name(), entry.get("target") or {},
                         signature=signature, transport=entry.get("transport") or "REST", fmt=fmt,
                         body=body if ":" in url or entry.get("transport") == "gRPC" else None,
                         tutorial_model=tutorial_model, default_model=session.settings().model_name)
    if not body:
        params.pop("send", None)
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
    rows = entry.get("rows") or 0
    return (f"{entry['time'][11:19]} · {rows:,} row{'s' if rows != 1 else ''} · "
            f"{target_text(entry.get('target') or {})} · "
            f"{entry.get('transport', 'REST')} · {outcome}")


def entries_table(entries: list[dict[str, Any]]) -> pd.DataFrame:
    """What a tester scans: when, how, to what, which version answered, size, speed, outcome."""
    return pd.DataFrame([{
        "time": pd.Timestamp(e["time"]).tz_convert(None).strftime("%Y-%m-%d %H:%M:%S"),
        "transport": e.get("transport", "REST"), "target": target_text(e.get("target") or {}),
        "version": e.get("version"), "rows": e.get("rows"), "latency ms": e.get("latency_ms"),
        "outcome": "OK" if not e.get("error") else str(e["error"])[:120],
    } for e in entries])


def _verb(entry: dict[str, Any]) -> str:
    tail = str(entry.get("url", "")).rsplit(":", 1)[-1]
    return tail if tail in ("classify", "regress") else "predict"


def _send_again(entry: dict[str, Any], signatures: dict[str, Signature]) -> PredictResult:
    """The kept request sent again over its own transport (raises ClientError)."""
    target, body, model = entry.get("target") or {}, entry["request"], session.model_name()
    client = clients.get_client()
    if entry.get("transport") != "gRPC":
        verb = _verb(entry)
        if verb == "predict":
            return client.predict_body(model, body, **target)
        call = client.classify if verb == "classify" else client.regress
        return call(model, body.get("examples") or [], context=body.get("context"),
                    signature_name=body.get("signature_name"), **target)
    name = (body.get("model_spec") or {}).get("signature_name") or "serving_default"
    signature = signatures.get(name)
    if signature is None:
        raise ClientError(f"The model has no signature {name!r} now", url="", hint="Send a new request.")
    if signature.takes_examples:
        call = clients.get_grpc_client().classify if signature.method == "classify" \
            else clients.get_grpc_client().regress
        done = call(model, body.get("examples") or [], context=body.get("context"), signature=name,
                    version=target.get("version"), label=target.get("label"))
        return as_exchange(entry.get("url", ""), body, done)
    inputs = body.get("inputs") or {}
    if not isinstance(inputs, dict):  # kept by an earlier dashboard: the rows of the only input
        inputs = {next(iter(signature.inputs)): inputs}
    try:
        arrays = {k: typed_array(signature.inputs[k], v) for k, v in inputs.items()}
    except (KeyError, ValueError) as exc:
        raise ClientError(f"The kept request does not fit signature {name!r} now: {exc}", url="") from None
    answer = clients.get_grpc_client().predict_arrays(model, arrays, version=target.get("version"),
                                                      label=target.get("label"), signature=name)
    return as_exchange(entry.get("url", ""), body, answer)


def replay(entry: dict[str, Any], signatures: dict[str, Signature]) -> None:
    """Send a kept request again, exactly as it was, and say whether the answer is the same."""
    transport = entry.get("transport") or "REST"
    try:
        result = _send_again(entry, signatures)
    except ClientError as exc:
        record(entry.get("target") or {}, entry["request"], entry.get("rows", 0), error=exc,
               transport=transport, url=entry.get("url"))
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
    keepable = [e for e in entries if e.get("request") and not e.get("error")]
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
        picked = [e for e in keepable if e["id"] in chosen]
        if not picked:
            st.warning("Choose at least one request.")
            return
        requests = [warmup.request_of_entry(e["request"], _verb(e), e.get("transport") or "REST")
                    for e in picked]
        with st.spinner("Writing the warm-up file…"):
            try:
                path = warmup.export_warmup(requests, session.base_path() / str(version),
                                            session.model_name())
            except (ValueError, OSError) as exc:
                st.error(str(exc))
                return
        st.success(f"Wrote {len(picked)} request(s) to `{path}`: TF Serving replays them when it loads "
                   f"version {version}.", icon=":material/check_circle:")


def render(signatures: dict[str, Signature], tutorial_model: bool) -> None:
    """The history section of the Predict page; its picker shows the newest entry after a Send."""
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
    if st.session_state.get(PICK_KEY) not in by_id:
        st.session_state[PICK_KEY] = entries[0]["id"]
    pick_col, replay_col = st.columns([4, 1], vertical_alignment="bottom")
    chosen = pick_col.selectbox("Request", list(by_id), key=PICK_KEY,
                                format_func=lambda i: entry_label(by_id[i]))
    entry = by_id[chosen]
    kept = bool(entry.get("request"))
    if replay_col.button("Replay", key="history_replay", disabled=not kept, icon=":material/replay:",
                         help=None if kept else "This request's body was too large to keep."):
        replay(entry, signatures)
    if not kept:
        size = entry.get("request_bytes", 0) / 1024
        limit = history.MAX_BODY_BYTES // 1024
        st.caption(f"This request ({entry.get('rows', 0):,} rows, {size:,.0f} KB of JSON) cannot be "
                   f"replayed: the history keeps bodies up to {limit} KB (about 1,500 rows of two numbers). "
                   "Send the rows again from the table, or score them in batch.")
    st.caption("Link to this view (model, version, options and, when small, the inputs; it sends when "
               "opened):")
    st.code(link_for(entry, tutorial_model), language=None)
    with st.expander("Export requests as a warm-up file"):
        export_form(entries)
