"""Traffic: every request the model server answered for the chosen model, whoever sent it.

curl, a Java or gRPC client, a batch job or this dashboard: the server logs each request it
answers (`logging_config`; the embedded server logs every request of every model by default) and
this page reads those logs, newest first, refreshing while it is open. Filters narrow the list;
picking rows in the table pauses the refresh so they stay put. What is picked (or, with no rows
picked, everything the filters show) can be replayed on two versions or labels of the running
server, request by request, with the differences sorted largest first; saved as a version's
warm-up file; or downloaded as TFRecord or JSON. One request opens on the Predict page.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import streamlit as st

from dashboard import clients, messages, model_picker, predict_compare, session, traffic_charts, traffic_view
from pipeline.client.errors import ClientError
from pipeline.client.rest import available_versions
from pipeline.store import traffic
from pipeline.store.versions import list_versions
from pipeline.traffic import export
from pipeline.traffic.logs import Logged
from pipeline.traffic.replay import DEFAULT_TOLERANCE, GrpcSender, RestSender, Target, replay
from pipeline.traffic.select import FAILED, Filter, select

REFRESH_S = 2.0
SHOWN = 500
TABLE_KEY, SNAPSHOT_KEY, RESULT_KEY = "traffic_table", "traffic_snapshot", "traffic_replay"
EXTRA_KEY = "traffic_extra_logs"
WINDOWS = {"last 5 minutes": timedelta(minutes=5), "last hour": timedelta(hours=1),
           "last 24 hours": timedelta(days=1), "everything": None}
ANY = "any"


@st.cache_data(ttl=10, show_spinner=False)
def served_versions(url: str, model: str) -> list[str]:
    """The model's AVAILABLE versions, newest first (none when the server does not answer)."""
    try:
        return [str(v) for v in available_versions(clients.client_for(url).model_status(model))]
    except ClientError:
        return []


def served_targets() -> list[str]:
    """What a replay can be sent to: the AVAILABLE versions, the model's labels in the embedded
    server's config, `latest` and `recorded` (the answers the log kept)."""
    versions = served_versions(session.serving_url(), session.model_name())
    return [*versions, *predict_compare.known_labels(), "latest", "recorded"]


def render_filters(entries: list[Logged]) -> Filter:
    """The filters row; the versions offered are those seen in the logs."""
    api_col, transport_col, status_col, version_col, window_col = st.columns(5)
    api = api_col.selectbox("API", [ANY, "predict", "classify", "regress", "multi_inference"],
                            key="traffic_api")
    transport = transport_col.selectbox("Transport", [ANY, "REST", "gRPC"], key="traffic_transport")
    status = status_col.selectbox("Status", [ANY, "OK", FAILED], key="traffic_status")
    seen = sorted({e.version for e in entries if e.version is not None}, reverse=True)
    version = version_col.selectbox("Version", [ANY, *seen], key="traffic_version",
                                    format_func=lambda v: v if v == ANY else f"version {v}")
    window = window_col.selectbox("Time", list(WINDOWS), index=len(WINDOWS) - 1, key="traffic_window")
    since = datetime.now(UTC) - WINDOWS[window] if WINDOWS[window] is not None else None
    return Filter(api=None if api == ANY else api, transport=None if transport == ANY else transport,
                  status=None if status == ANY else status, version=None if version == ANY else version,
                  since=since)


def snapshot(paths: list[str]) -> tuple[list[Logged], str]:
    """The logged requests, read again unless rows are picked in the table (then the table stays
    as it was, so the picked rows keep their place); and a note when it is paused."""
    picked = _picked_rows()
    kept = st.session_state.get(SNAPSHOT_KEY)
    if picked and kept is not None and kept[0] == paths:
        return kept[1], (f"Paused while {len(picked)} row(s) are picked: clear the selection to see new "
                         "requests.")
    entries, summary = traffic_view.read(paths)
    st.session_state[SNAPSHOT_KEY] = (paths, entries, summary.describe() if summary.damaged else "",
                                      traffic_view.left_out_text(summary))
    return entries, ""


def _picked_rows() -> list[int]:
    state = st.session_state.get(TABLE_KEY)
    try:
        return list(state["selection"]["rows"]) if state else []
    except (KeyError, TypeError):
        return []


def render_replay(chosen: list[Logged], scope: str) -> None:
    """Replay `chosen` on two targets; the result stays until the next replay."""
    targets = served_targets()
    a_col, b_col, how_col, tolerance_col = st.columns(4)
    a = a_col.selectbox("A", targets, index=min(1, len(targets) - 1), key="traffic_a",
                        accept_new_options=True,
                        help="A version, a label, latest, or recorded (the answers the log kept).")
    b = b_col.selectbox("B", targets, index=0, key="traffic_b", accept_new_options=True)
    transport = how_col.radio("Over", ["REST", "gRPC"], horizontal=True, key="traffic_over")
    tolerance = tolerance_col.number_input("Tolerance", min_value=0.0, value=DEFAULT_TOLERANCE, format="%g",
                                           key="traffic_tolerance",
                                           help="Largest absolute difference that still counts as agreeing.")
    if st.button(f"Replay {len(chosen)} request(s) ({scope})", key="traffic_replay_go", disabled=not chosen,
                 icon=":material/compare_arrows:"):
        try:
            first, second = Target.parse(str(a)), Target.parse(str(b))
        except ValueError as exc:
            st.error(str(exc))
            return
        sender = RestSender(clients.get_client()) if transport == "REST" else \
            GrpcSender(clients.get_grpc_client())
        progress = st.progress(0.0, text="Replaying…")
        result = replay(chosen, first, second, sender, tolerance=tolerance,
                        on_progress=lambda done, total: progress.progress(done / total,
                                                                          text=f"Replaying {done}/{total}"))
        progress.empty()
        st.session_state[RESULT_KEY] = result
    if (result := st.session_state.get(RESULT_KEY)) is not None:
        render_replay_result(result)


def render_replay_result(result) -> None:
    s = result.summary
    st.caption(f"Replayed {s.requests} request(s) over {result.transport}: A = {result.a}, B = {result.b}.")
    share, largest, a_ms, b_ms = st.columns(4)
    share.metric(f"Agreeing within {s.tolerance:g}", f"{s.share_agreeing:.0%}",
                 f"{s.agreeing} of {s.requests}", delta_color="off", delta_arrow="off")
    comparable = s.largest != float("inf")
    largest.metric("Largest difference", f"{s.largest:.4g}" if comparable else "n/a",
                   None if comparable else "a side failed or differs in kind", delta_color="off",
                   delta_arrow="off", help="The largest absolute difference between A's and B's values over "
                   "every request; n/a when a request cannot be compared value by value (one side failed, "
                   "or the answers have other outputs or shapes).")
    for column, side, failed, name in ((a_ms, "a", s.failed_a, result.a), (b_ms, "b", s.failed_b, result.b)):
        median, p95 = s.latency(side), s.latency(side, 95)
        column.metric(f"Latency {side.upper()} ({name})",
                      "no answer" if median is None else f"{median:.1f} ms",
                      f"{failed} failed" if failed else None, delta_color="inverse", delta_arrow="off",
                      help=None if p95 is None else f"median; 95th percentile {p95:.1f} ms")
    labels = [f"{i + 1}" for i in range(len(result.rows))]
    left, right = st.columns(2)
    left.plotly_chart(traffic_charts.differences_figure(labels, [r.difference for r in result.rows],
                                                        s.tolerance), key="traffic_chart_diff")
    right.plotly_chart(traffic_charts.latency_figure(s.latencies_a, s.latencies_b, str(result.a),
                                                     str(result.b)), key="traffic_chart_latency")
    st.dataframe(traffic_view.replay_table(result), hide_index=True, key="traffic_replay_table")


def render_warmup(chosen: list[Logged]) -> None:
    """Write the OK requests of `chosen` as a version's warm-up file."""
    on_disk = [v.version for v in reversed(list_versions(session.base_path()))]
    if not on_disk:
        st.caption("A warm-up file goes into a version folder on this machine; this model has none here.")
        return
    version = st.selectbox("Into version", on_disk, key="traffic_warmup_version",
                           format_func=lambda v: f"version {v}")
    if st.button("Write warm-up file", key="traffic_warmup_go", disabled=not chosen,
                 icon=":material/local_fire_department:"):
        try:
            path, count, skipped = export.write_warmup(chosen, session.base_path() / str(version))
        except (ValueError, OSError) as exc:
            st.error(f"Could not write the warm-up file: {exc}")
            return
        left_out = f" ({len(skipped)} not answered OK left out)" if skipped else ""
        st.success(f"Wrote {count} request(s) to `{path}`{left_out}: TF Serving replays them when it loads "
                   f"version {version}.", icon=":material/check_circle:")


def render_downloads(chosen: list[Logged]) -> None:
    model = session.model_name()
    left, right = st.columns(2)
    left.download_button("TFRecord (PredictionLog)",
                         data=lambda: export.as_tfrecord(export.whole_records(chosen)),
                         file_name=f"{model}-requests.tfrecord", mime="application/octet-stream",
                         key="traffic_download_tfrecord", disabled=not chosen, icon=":material/download:")
    right.download_button("JSON", data=lambda: export.json_text(chosen), file_name=f"{model}-requests.json",
                          mime="application/json", key="traffic_download_json", disabled=not chosen,
                          icon=":material/download:")


def render_open(chosen: list[Logged]) -> None:
    """Pick one request and open it on the Predict page."""
    openable = [e for e in chosen if e.api != "multi_inference"][:SHOWN]
    if not openable:
        st.caption("No request here that the Predict page can send (multi-inference is gRPC only).")
        return
    by_id = {e.id: e for e in openable}
    chosen_id = st.selectbox("Request", list(by_id), key="traffic_open_pick",
                             format_func=lambda i: traffic_view.choice_label(by_id[i]))
    params = traffic_view.predict_link_params(by_id[chosen_id])
    if params is None:
        st.caption("This request can no longer be read (its log file was removed).")
        return
    st.page_link("views/predict.py", label="Open in Predict", icon=":material/query_stats:",
                 query_params=params)
    if "inputs" not in params:
        st.caption("Its inputs are too large for a link: Predict opens with its version and options only.")


def render_actions(shown: list[Logged]) -> None:
    picked = [shown[i] for i in _picked_rows() if i < len(shown)]
    chosen, scope = (picked, "picked") if picked else (shown, "all shown")
    st.caption(f"Acting on {len(chosen)} request(s): " + ("the rows picked in the table." if picked else
                                                           "everything shown (pick rows to narrow it)."))
    replay_tab, warmup_tab, download_tab, open_tab = st.tabs(
        ["Replay on two versions", "Save as warm-up file", "Download", "Open in Predict"])
    with replay_tab:
        render_replay(chosen, scope)
    with warmup_tab:
        render_warmup(chosen)
    with download_tab:
        render_downloads(chosen)
    with open_tab:
        render_open(chosen)


def render_no_logs(paths: list[str]) -> None:
    st.info(f"No request logged for `{session.model_name()}` yet. The embedded server logs every request "
            f"it answers (files named `{paths[0]}*`), whoever sends it: send one from the Predict page, "
            "curl or any client. Another server logs when its models.config gives the model a "
            "logging_config; point this page at its files under **Log files** below.",
            icon=":material/receipt_long:")
    st.code('logging_config {\n  log_collector_config { type: "file" filename_prefix: "/logs/'
            f'{session.model_name()}/requests" }}\n  sampling_config {{ sampling_rate: 1.0 }}\n}}',
            language=None)


def render_settings() -> None:
    run_dir = session.settings().run_dir
    with st.expander("Log files"):
        st.text_input("Also read logs from", key=EXTRA_KEY, placeholder="/logs/my_model/requests",
                      help="A log file, a folder of them, or a logging_config filename_prefix.")
        st.caption(f"The embedded server's request logs: {traffic_view.usage_text(run_dir)}")
        with st.form("traffic_cap"):
            mib = st.number_input("Keep per model (MiB)", min_value=traffic.MIN_MAX_BYTES // traffic.MiB,
                                  value=traffic.max_bytes(run_dir) // traffic.MiB, step=64,
                                  key="traffic_cap_mib")
            if st.form_submit_button("Keep this much"):
                try:
                    removed = traffic.set_max_bytes(run_dir, int(mib) * traffic.MiB)
                except (ValueError, OSError) as exc:
                    st.error(str(exc))
                else:
                    st.success(f"Keeping {int(mib)} MiB per model: {len(removed)} oldest file(s) removed "
                               "now; the embedded server keeps to it from its next start.")


st.title("Traffic")
model_picker.render()
messages.show_flash()
live = st.toggle(f"Refresh every {REFRESH_S:g} s", value=True, key="traffic_live",
                 help="New requests appear as they are logged. Picking rows pauses the refresh.")


@st.fragment(run_every=REFRESH_S if live else None)
def live_traffic() -> None:
    paths = traffic_view.sources(session.model_name(), st.session_state.get(EXTRA_KEY, ""))
    entries, paused = snapshot(paths)
    damage = st.session_state[SNAPSHOT_KEY][2]
    if not entries:
        render_no_logs(paths)
        if damage:
            st.warning(f"Read {damage}.", icon=":material/broken_image:")
        return
    where = render_filters(entries)
    shown = select(entries, where, SHOWN)
    st.caption(f"{len(shown)} of {len(entries)} logged request(s), newest first"
               + (f" (the newest {SHOWN})" if len(shown) == SHOWN else "") + ". " + paused + " "
               + st.session_state[SNAPSHOT_KEY][3])
    if damage:
        st.warning(f"Read {damage}: damaged records are skipped.", icon=":material/broken_image:")
    if shown:
        st.plotly_chart(traffic_charts.timeline_figure([e.time for e in shown], [e.latency_ms for e in shown],
                                                       [e.ok for e in shown]), key="traffic_chart_timeline")
    st.dataframe(traffic_view.requests_table(shown), hide_index=True, key=TABLE_KEY, on_select="rerun",
                 selection_mode="multi-row")
    render_actions(shown)


live_traffic()
render_settings()
