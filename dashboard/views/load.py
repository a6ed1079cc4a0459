"""Load: how many requests per second the served model takes, how fast it answers, where the time goes.

For the model picked in the sidebar, pick the version, signature, request (an example built from
the signature, one from the request history, or JSON) and transport; a sweep of concurrency
levels runs in a child process (`pipeline.loadtest.job`, its state in a run folder) while a
fragment draws throughput, latency percentiles and errors against the level as each level ends,
and beside them the server's own breakdown of the same windows from its Prometheus metrics. Stop
ends a run at once. A server that is not on this machine is loaded only after an explicit
confirmation. Runs are kept, and two can be drawn together. For the embedded server, batching
settings are compared (the server restarted once per setting, then restored) and the best one
under a p99 target is recommended with its `batching_parameters_file`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import streamlit as st

from dashboard import clients, load_panels, messages, model_picker, server_state, session
from pipeline.client import history
from pipeline.client.errors import ClientError
from pipeline.client.rest import available_versions
from pipeline.client.signatures import read_signatures
from pipeline.client.urls import bind_host, is_local_url, url_port
from pipeline.loadtest import batching, job
from pipeline.loadtest.spec import LoadSpec, parse_levels
from pipeline.loadtest.target import example_body, replayable

RUN_KEY, CMP_KEY, PAIR_KEY = "load_run", "load_batching", "load_pair"
POLL_S = 1.0
LATEST, LABEL = "latest", "label"
SOURCES = {"example": "An example built from the signature",
           "history": "A request from the request history", "json": "JSON I give"}
NONE = "—"


def runs_root() -> Path:
    return job.runs_root(session.settings().run_dir)


def comparisons_root() -> Path:
    return runs_root() / "batching"


def server_facts() -> tuple[list[int], dict[str, Any] | None, ClientError | None]:
    """AVAILABLE versions, the metadata of the latest, and the error to show (None when fine)."""
    client = clients.get_client()
    try:
        versions = available_versions(client.model_status(session.model_name()))
        return versions, client.metadata(session.model_name()), None
    except ClientError as exc:
        return [], None, exc


def history_bodies() -> list[dict[str, Any]]:
    """Answered REST requests kept in the model's request history, newest first."""
    return [e for e in history.list_requests(session.base_path()) if replayable(e)]


def render_request(metadata: dict[str, Any] | None,
                   signature: str) -> tuple[dict[str, Any] | None, str, str | None]:
    """The request source; returns ``(body or None for the built example, description, problem)``."""
    source = st.radio("Request", list(SOURCES), format_func=SOURCES.get, key="load_source", horizontal=True)
    if source == "example":
        try:
            shown = example_body(metadata, signature) if metadata else None
        except ValueError as exc:
            return None, "", str(exc)
        if shown is not None:
            st.caption(f"`{json.dumps(shown)[:300]}`")
        return None, "", None
    if source == "history":
        entries = history_bodies()
        if not entries:
            return None, "", "The request history has no answered REST request yet: send one from Predict."

        def describe(i: int) -> str:
            entry = entries[i]
            return f"{entry['time'][:19]} · {entry.get('rows')} rows · {json.dumps(entry['request'])[:80]}"

        chosen = st.selectbox("History entry", range(len(entries)), key="load_history_entry",
                              format_func=describe)
        entry = entries[chosen]
        return entry["request"], f"request history entry {entry['id']}", None
    text = st.text_area("Request body (JSON)", key="load_json", height=120,
                        placeholder='{"instances": [[1.0, 2.0], [5.0, 7.0]]}')
    try:
        body = json.loads(text or "")
    except ValueError as exc:
        return None, "", f"The request body is not JSON: {exc}"
    if not isinstance(body, dict):
        return None, "", 'The request body must be a JSON object such as {"instances": [[1.0, 2.0]]}.'
    return body, "JSON given on the Load page", None


def remote_hosts(transport: str) -> list[str]:
    """The targets of this load that are not on this machine."""
    targets = [session.serving_url()] + ([session.settings().grpc_target] if transport == "gRPC" else [])
    return [t for t in targets if not is_local_url(t)]


def render_form(versions: list[int], metadata: dict[str, Any] | None, running: bool) -> None:
    """What to load and how hard; starts a run on Run."""
    version_col, sig_col, transport_col = st.columns([2, 2, 2])
    shown = {LATEST: "latest", LABEL: "a label…"}
    choice = version_col.selectbox("Version", [LATEST, *versions, LABEL], key="load_version",
                                   format_func=lambda c: shown.get(c, f"version {c}"))
    label = version_col.text_input("Label", key="load_label") if choice == LABEL else None
    names = list(read_signatures(metadata)) if metadata else []
    names = names or ["serving_default"]
    signature = sig_col.selectbox("Signature", names, key="load_signature")
    where = f"REST at {session.serving_url()}, or gRPC at {session.settings().grpc_target}."
    transport = transport_col.radio("Transport", ["REST", "gRPC"], key="load_transport", horizontal=True,
                                    help=where)
    body, source, problem = render_request(metadata, signature)
    levels_col, duration_col, warmup_col, target_col = st.columns(4)
    levels_text = levels_col.text_input("Concurrency levels", value="1,2,4,8,16,32", key="load_levels",
                                        help="Closed loop: this many clients, each sending its next request "
                                        "as soon as the last is answered.")
    duration = duration_col.number_input("Seconds per level", 0.5, 600.0, 5.0, key="load_duration")
    warmup = warmup_col.number_input("Warm-up seconds", 0.0, 60.0, 1.0, key="load_warmup")
    target_col.number_input("p99 target (ms)", 0.1, 60_000.0, 50.0, key="load_p99_target",
                            help="Drawn on the latency chart; the batching comparison recommends within it.")
    with st.expander("More settings"):
        more = st.columns(4)
        rates_text = more[0].text_input(
            "Open-loop rates (req/s)", key="load_rates", placeholder="e.g. 100,500",
            help="Instead of concurrency levels: requests sent on a schedule; the largest concurrency level "
            "caps the requests in flight.")
        workers = more[1].number_input("Load generator processes (0: one per CPU)", 0, 64, 0,
                                       key="load_workers")
        timeout = more[2].number_input("Request timeout (s)", 0.1, 600.0, 30.0, key="load_timeout")
        ceiling = more[3].number_input(
            "Generator ceiling seconds (0: skip)", 0.0, 60.0, 1.0, key="load_ceiling",
            help="Per level, what this load generator reaches against a server that does nothing; a level "
            "within 80% of it is flagged.")
    remote = remote_hosts(transport)
    confirmed = True
    if remote:
        hosts = ", ".join(sorted({urlsplit(t if '://' in t else f'//{t}').hostname or t for t in remote}))
        confirmed = st.checkbox(f"I may put load on {hosts}: it is not this machine",
                                key="load_confirm_remote",
                                help="A load test can slow or stop a server other people use.")
    try:
        levels = parse_levels(levels_text)
        rates = parse_levels(rates_text, what="rate", integer=False) if rates_text.strip() else ()
    except ValueError as exc:
        st.error(str(exc), icon=":material/tune:")
        levels, rates = (), ()
    if problem:
        st.error(problem, icon=":material/description:")
    blocked = running or not levels or problem is not None or not confirmed or metadata is None
    if st.button("Run", key="load_run_button", type="primary", disabled=blocked, icon=":material/speed:"):
        spec = LoadSpec(
            url=session.serving_url(), model=session.model_name(),
            grpc=session.settings().grpc_target if transport == "gRPC" else None,
            version=int(choice) if choice not in (LATEST, LABEL) else None, label=label or None,
            signature=signature, body=body, body_source=source, concurrency=levels, rates=rates,
            duration_s=float(duration), warmup_s=float(warmup), timeout_s=float(timeout),
            workers=int(workers), ceiling_s=float(ceiling))
        try:
            st.session_state[RUN_KEY] = str(job.start_run(runs_root(), spec))
        except OSError as exc:
            st.error(f"Could not start the load test: {exc}", icon=":material/error:")
            return
        st.rerun()


def current_run() -> Path | None:
    """The run this session shows: its own, else (a new session) one still running."""
    if RUN_KEY not in st.session_state:
        running = next((f for f in reversed(job.run_folders(runs_root())) if job.read_run(f).running), None)
        st.session_state[RUN_KEY] = str(running) if running else None
    folder = st.session_state.get(RUN_KEY)
    return Path(folder) if folder and Path(folder).is_dir() else None


@st.fragment(run_every=POLL_S)
def live_run(folder: Path) -> None:
    """A running sweep, redrawn every second until it ends."""
    state = job.read_run(folder)
    if not state.running:
        st.rerun(scope="app")
    load_panels.render_status(state)
    load_panels.render_progress(state)
    if st.button("Stop", key="load_stop", icon=":material/stop:"):
        job.stop_run(folder)
        st.rerun(scope="app")
    levels = [lv.to_json() for lv in state.result.levels]
    load_panels.render_levels(levels, st.session_state.get("load_p99_target"), "live")


def render_saved(current: Path | None) -> None:
    """Every saved run; pick one to see it again, or two to draw them together."""
    states = [job.read_run(f) for f in reversed(job.run_folders(runs_root()))]
    finished = [s for s in states if not s.running and s.result.levels]
    st.subheader("Saved runs")
    if not finished:
        st.caption(f"Finished runs are kept in `{runs_root()}` (the newest {job.KEEP_RUNS}).")
        return
    titles = {str(s.folder): load_panels.run_title(s) for s in finished}
    left, right = st.columns(2)
    first = left.selectbox("Run A", list(titles), format_func=titles.get, key="load_pair_a")
    second = right.selectbox("Run B", [NONE, *titles], format_func=lambda f: titles.get(f, NONE),
                             key="load_pair_b")
    chosen = next(s for s in finished if str(s.folder) == first)
    if second == NONE:
        if current is not None and chosen.folder == current:
            st.caption("Run A is the run shown above: pick run B to draw the two together.")
            return
        load_panels.render_levels([lv.to_json() for lv in chosen.result.levels],
                                  st.session_state.get("load_p99_target"), "saved")
        return
    other = next(s for s in finished if str(s.folder) == second)
    load_panels.render_pair(chosen, other, st.session_state.get("load_p99_target"))


def embedded_server() -> batching.EmbeddedServer | None:
    """The embedded server at the page's URL, as the comparison restarts it (None if it is not ours)."""
    proc, url, s = server_state.server_status(), session.serving_url(), session.settings()
    if not (proc.running and is_local_url(url) and proc.port == url_port(url)):
        return None
    grpc_port = flag_value(proc.command, "--port") or ""
    return batching.EmbeddedServer(proc.port, session.model_name(), session.base_path(), s.run_dir,
                                   host=proc.host or bind_host(url),
                                   grpc_port=int(grpc_port) if grpc_port.isdigit() else s.grpc_port)


def flag_value(command: tuple[str, ...] | list[str], flag: str) -> str | None:
    """The value of ``flag`` in a command line (``--flag V`` or ``--flag=V``), else None."""
    for index, arg in enumerate(command):
        if arg == flag and index + 1 < len(command):
            return command[index + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


SETTING_COLUMNS = ["batching", "max_batch_size", "batch_timeout_micros", "num_batch_threads"]


def settings_from(frame: pd.DataFrame) -> list[batching.BatchingSetting]:
    """The comparison's settings from the editor; ``ValueError`` naming a bad row."""
    found = []
    for number, row in enumerate(frame.to_dict("records"), start=1):
        try:
            setting = batching.BatchingSetting(
                bool(row["batching"]), int(row["max_batch_size"]), int(row["batch_timeout_micros"]),
                int(row["num_batch_threads"]))
            setting.check()
        except (TypeError, ValueError):
            raise ValueError(f"row {number} of the settings is not a usable batching setting") from None
        if setting not in found:
            found.append(setting)
    if not found:
        raise ValueError("give at least one setting")
    return found


def render_batching(running_sweep: bool) -> None:
    """Compare batching settings on the embedded server and recommend one."""
    st.subheader("Batching: compare settings on the embedded server")
    folder = st.session_state.get(CMP_KEY)
    if folder is None:
        running = [f for f in batching.comparison_folders(comparisons_root())
                   if (c := batching.read_comparison(f)) is not None and c.status == "running"]
        folder = st.session_state[CMP_KEY] = str(running[-1]) if running else None
    comparison = batching.read_comparison(folder) if folder else None
    if comparison is not None and comparison.status == "running":
        live_comparison(Path(folder))
        return
    server = embedded_server()
    if server is None:
        st.info("The comparison restarts the embedded server once per setting, so it needs the embedded "
                "server running at this page's URL (start it on the Serving page).", icon=":material/dns:")
    else:
        st.caption(f"Restarts the embedded server on {server.url} once per setting (only "
                   f"`{session.model_name()}` is served meanwhile; about 15 s each to load), runs the levels "
                   "below on each, then restarts it with the command line it had. Every flag is explicit.")
        defaults = pd.DataFrame([{"batching": s.enabled, "max_batch_size": s.max_batch_size,
                                  "batch_timeout_micros": s.batch_timeout_micros,
                                  "num_batch_threads": s.num_batch_threads}
                                 for s in batching.DEFAULT_SETTINGS])
        edited = st.data_editor(defaults, num_rows="dynamic", hide_index=True, key="load_cmp_settings")
        levels_col, duration_col = st.columns(2)
        levels_text = levels_col.text_input("Concurrency levels", value="8,32", key="load_cmp_levels")
        duration = duration_col.number_input("Seconds per level", 0.5, 120.0, 3.0, key="load_cmp_duration")
        try:
            settings, levels = settings_from(edited), parse_levels(levels_text)
        except ValueError as exc:
            st.error(str(exc), icon=":material/tune:")
            settings, levels = [], ()
        if st.button("Compare batching settings", key="load_cmp_run", disabled=running_sweep or not settings,
                     icon=":material/compare_arrows:"):
            transport = st.session_state.get("load_transport", "REST")
            grpc = server.grpc_target if transport == "gRPC" else None
            spec = LoadSpec(url=server.url, model=server.model_name, grpc=grpc, concurrency=levels,
                            duration_s=float(duration), warmup_s=1.0, ceiling_s=0.0)
            target = float(st.session_state.get("load_p99_target", 50.0))
            started = batching.start_comparison(comparisons_root(), server, settings, spec, target)
            st.session_state[CMP_KEY] = str(started)
            st.rerun()
    if comparison is not None:
        load_panels.render_comparison(Path(folder), comparison)


@st.fragment(run_every=POLL_S)
def live_comparison(folder: Path) -> None:
    comparison = batching.read_comparison(folder)
    if comparison is None or comparison.status != "running":
        st.rerun(scope="app")
    if st.button("Stop the comparison", key="load_cmp_stop", icon=":material/stop:"):
        batching.request_stop(folder)
    load_panels.render_comparison(folder, comparison)


def main() -> None:
    model_picker.render()
    st.title("Load")
    s, model = session.settings(), session.model_name()
    st.caption(f"How many requests per second `{model}` takes at {session.serving_url()} (gRPC "
               f"{s.grpc_target}), how fast it answers, and where the time goes in the server. The same tool "
               "runs from the command line: `python -m pipeline.loadtest --help`.")
    versions, metadata, problem = server_facts()
    if problem is not None:
        messages.show_serving_error(problem)
        st.caption("A load test needs the model's signature from the server: the saved runs are below.")
    folder = current_run()
    state = job.read_run(folder) if folder is not None else None
    running = state is not None and state.running
    render_form(versions, metadata, running)
    if state is not None:
        st.subheader("This run")
        if running:
            live_run(folder)
        else:
            load_panels.render_status(state)
            load_panels.render_levels([lv.to_json() for lv in state.result.levels],
                                      st.session_state.get("load_p99_target"), "run")
    st.divider()
    render_saved(folder)
    st.divider()
    render_batching(running)


main()
