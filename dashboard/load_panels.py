"""The Load page's result panels: one run (live or finished), two runs side by side, and the
batching comparison. They only read run folders (`pipeline.loadtest.job`, `pipeline.loadtest.batching`)
and draw; the page script (`dashboard/views/load.py`) owns the widgets that start things.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import load_charts
from pipeline.loadtest import batching, job

STATUS_ICONS = {"done": ":material/check_circle:", "stopped": ":material/stop_circle:",
                "failed": ":material/error:", "running": ":material/speed:"}


def levels_frame(levels: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The levels as the table under the charts: one row per level, errors by kind in one cell."""
    rows = []
    for lv in sorted(levels, key=load_charts.x_of):
        kinds = ", ".join(f"{k}: {v:,}" for k, v in lv.get("error_kinds", {}).items())
        rows.append({
            "level": f"{lv['rate']:g} req/s" if lv.get("rate") else lv["concurrency"],
            "req/s": round(lv["requests_per_second"], 1), "OK/s": round(lv["ok_per_second"], 1),
            **{f"{q} ms": load_charts.rounded(lv.get(f"{q}_ms")) for q in ("p50", "p90", "p99", "max")},
            "errors": lv["errors"], "by kind": kinds, "clients answered": lv.get("clients_connected"),
            "ceiling req/s": load_charts.rounded(lv.get("generator_ceiling_rps")),
            "note": "stopped mid-level" if lv.get("partial") else ""})
    return pd.DataFrame(rows)


def run_title(state: job.RunState) -> str:
    """``20260101T101010-ab12cd · linear_model · REST · 1,8,32 · done``: a run in a list."""
    spec = state.spec
    levels = ",".join(f"{r:g}/s" for r in spec.rates) if spec.rates else ",".join(map(str, spec.concurrency))
    tag = f" · {spec.tags['batching']}" if spec.tags.get("batching") else ""
    return f"{state.started or state.name} · {spec.model} · {spec.transport} · {levels}{tag} · {state.status}"


def render_status(state: job.RunState) -> None:
    """How the run went, in one message (with the first error example when every request failed)."""
    icon = STATUS_ICONS.get(state.status, ":material/info:")
    if state.running:
        st.info(f"Running: {state.phase or 'starting'}", icon=icon)
    elif state.status == "done":
        st.success(f"Done: {len(state.result.levels)} level(s) measured" +
                   (f" ({state.message})" if state.message else "") + ".", icon=icon)
    elif state.status == "stopped":
        st.warning(f"Stopped: {state.message}.", icon=icon)
    else:
        st.error(f"The load test failed: {state.message}", icon=icon)
    for warning in dict.fromkeys(state.result.warnings):
        st.warning(warning, icon=":material/warning:")
    for skipped in state.result.skipped:
        st.warning(skipped, icon=":material/block:")


def render_progress(state: job.RunState) -> None:
    """The level being measured: seconds into its window and counts so far."""
    level = state.progress
    if not level:
        return
    done = min(1.0, float(level.get("seconds", 0)) / max(float(level.get("of", 1)), 1e-9))
    st.progress(done, text=f"{level['label']}: {level.get('seconds', 0):.1f} of {level.get('of', 0):g} s · "
                           f"{level.get('ok', 0):,} OK · {level.get('errors', 0):,} errors")


def render_levels(levels: Sequence[dict[str, Any]], p99_target_ms: float | None, key: str) -> None:
    """Throughput, latency and errors against the level, the table, and the server's breakdown."""
    if not levels:
        st.caption("The first level's numbers appear here when it has been measured.")
        return
    left, middle, right = st.columns(3)
    left.plotly_chart(load_charts.throughput_figure({"this run": levels}), key=f"{key}_throughput")
    middle.plotly_chart(load_charts.latency_figure({"this run": levels}, p99_target_ms), key=f"{key}_latency")
    right.plotly_chart(load_charts.errors_figure(levels), key=f"{key}_errors")
    st.dataframe(levels_frame(levels), hide_index=True, key=f"{key}_table")
    examples = {k: v for lv in levels for k, v in lv.get("error_examples", {}).items()}
    for kind, text in examples.items():
        st.caption(f"**{kind}**: {text}")
    render_breakdown(levels, key)


def render_breakdown(levels: Sequence[dict[str, Any]], key: str) -> None:
    """The server's own account of the same windows, from its Prometheus metrics."""
    st.markdown("**Server breakdown** (from the server's Prometheus metrics, same windows as above)")
    with_server = [lv for lv in levels if lv.get("server")]
    if not with_server:
        st.caption("No breakdown: the server exports no Prometheus metrics at its REST URL (the embedded "
                   "server does with `--enable_prometheus`; TF Serving with a `--monitoring_config_file`).")
        return
    st.plotly_chart(load_charts.breakdown_figure(with_server), key=f"{key}_breakdown")
    labels = [f"{lv['rate']:g} req/s" if lv.get("rate") else f"concurrency {lv['concurrency']}"
              for lv in with_server]
    chosen = st.selectbox("Breakdown of level", range(len(with_server)), index=len(with_server) - 1,
                          format_func=lambda i: labels[i], key=f"{key}_breakdown_level")
    st.dataframe(load_charts.breakdown_frame(with_server[chosen]), hide_index=True,
                 key=f"{key}_breakdown_table")
    missing = with_server[chosen]["server"].get("missing", [])
    if missing:
        st.caption("Not exposed by this server: " + ", ".join(missing) + ". A stage appears here as soon as "
                   "the server exports it (TF Serving's names first, see the README).")


def render_pair(first: job.RunState, second: job.RunState, p99_target_ms: float | None) -> None:
    """Two saved runs on the same axes, and their tables side by side."""
    pair = (("A", first), ("B", second))
    runs = {name: [lv.to_json() for lv in state.result.levels] for name, state in pair}
    left, right = st.columns(2)
    left.plotly_chart(load_charts.throughput_figure(runs, ceiling=False), key="load_pair_throughput")
    right.plotly_chart(load_charts.latency_figure(runs, p99_target_ms), key="load_pair_latency")
    for name, state, column in (("A", first, left), ("B", second, right)):
        column.caption(f"**{name}**: {run_title(state)}")
        column.dataframe(levels_frame(runs[name]), hide_index=True, key=f"load_pair_table_{name}")


def render_comparison(folder: Path, comparison: batching.Comparison) -> None:
    """The batching comparison: settings and their levels, the chart, and the recommendation."""
    if comparison.status == "running":
        st.info(f"Comparing: {comparison.phase or 'starting'}", icon=":material/speed:")
    elif comparison.status == "done":
        st.success("Comparison done.", icon=":material/check_circle:")
    elif comparison.status == "stopped":
        st.warning(f"Comparison stopped: {comparison.message}.", icon=":material/stop_circle:")
    else:
        st.error(f"The comparison failed: {comparison.message}", icon=":material/error:")
    if comparison.restored:
        st.caption(comparison.restored + ".")
    rows = []
    for result in comparison.results:
        best = max(result.levels, key=lambda lv: lv.ok_per_second, default=None)
        rows.append({"setting": result.setting.label, "status": result.status,
                     "best OK/s": None if best is None else best.ok_per_second,
                     "at": None if best is None else best.label,
                     "p99 ms there": None if best is None else best.p99_ms,
                     "errors": sum(lv.errors for lv in result.levels)})
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="load_cmp_table")
    measured = [(r.setting.label, [lv.to_json() for lv in r.levels]) for r in comparison.results if r.levels]
    if measured:
        figure = load_charts.comparison_figure(measured, comparison.p99_target_ms)
        st.plotly_chart(figure, key="load_cmp_chart")
    rec = comparison.recommendation
    if rec is None or comparison.status == "running":
        return
    if rec.setting is None:
        st.warning(f"No recommendation: {rec.reason}", icon=":material/block:")
        return
    st.success(f"Recommended: {rec.reason}.", icon=":material/recommend:")
    if rec.setting.enabled:
        st.markdown("`batching_parameters_file` (start the server with " + f"`{rec.flags}`):")
        st.code(rec.parameters_text, language="text")
    else:
        st.markdown(f"Leave batching off: `{rec.flags}` (no `batching_parameters_file`).")
