"""Models: the versions on disk next to what the model server says about them, and every run.

Disk is the source of truth for what exists (``pipeline.store.versions.list_versions``); the server only adds
each version's serving state, so with the server down the page still lists every version
(state "unknown") and says why. Deleting renames the version away first, so the server stops
seeing it at once. The run history includes failed and cancelled runs.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import charts, utils
from pipeline import model_dir
from pipeline.client.errors import ClientError
from pipeline.demo import MAX_DEMO_VERSIONS
from pipeline.runs.process import seed_demo_in_process
from pipeline.runs.report import flat_params, param_names, run_row, short_time
from pipeline.store import records as run_records
from pipeline.store import versions as store

UNKNOWN = "unknown"
NOT_LOADED = "not loaded"


def serving_states() -> tuple[dict[int, str], str]:
    """``({version: state}, state for versions the server did not mention)``.

    A server that answers but has no version of the model (TF Serving's 404 "Could not find
    any versions") is not an outage: its versions are "not loaded". A server that cannot be
    reached leaves every state "unknown", with a warning saying what happened.
    """
    try:
        statuses = utils.get_client().model_status(utils.model_name())
    except ClientError as exc:
        if exc.status_code == 404:
            st.info(f"The model server has no version of `{utils.model_name()}` loaded yet: {exc}")
            return {}, NOT_LOADED
        st.warning(f"Serving states are unknown: {exc}")
        return {}, UNKNOWN
    states = {}
    for entry in statuses:
        try:
            states[int(entry["version"])] = str(entry.get("state", UNKNOWN))
        except (KeyError, TypeError, ValueError):
            continue
    return states, NOT_LOADED


def version_row(info: store.VersionInfo, state: str) -> dict[str, Any]:
    """One line of the versions table: what the version is, how good it is, how it is served."""
    record = info.run_record or {}
    cfg = record.get("config") or {}
    learned = record.get("learned") or {}
    errors = record.get("errors") or {}
    return {
        "version": info.version,
        "state": state,
        "created": short_time(info.created),
        "samples": cfg.get("samples"),
        "epochs": cfg.get("epochs"),
        "noise": cfg.get("noise"),
        "learned w": ", ".join(f"{v:.4f}" for v in learned.get("w", [])),
        "learned b": learned.get("b"),
        "max |learned − true|": errors.get("vs_true"),
        "max |learned − OLS|": errors.get("vs_ols"),
        "size (KiB)": round(info.size_bytes / 1024, 1),
        "run": record.get("id", ""),
    }


@st.cache_data(show_spinner="Reading the SavedModel (the first time loads TensorFlow)…", max_entries=64)
def signature_text(version_path: str, created: str) -> str:
    """``saved_model_cli show`` text of the version's serving_default signature; cached per
    version (``created`` tells a re-used version number apart from the deleted one)."""
    return model_dir.read_signature(version_path).cli_text()


def versions_section(versions: list[store.VersionInfo]) -> dict[int, str]:
    states, default = serving_states()
    table = pd.DataFrame([version_row(v, states.get(v.version, default)) for v in reversed(versions)])
    st.dataframe(table.set_index("version"), key="versions_table", placeholder="–",
                 column_config={"learned b": st.column_config.NumberColumn(format="%.4f"),
                                "max |learned − true|": st.column_config.NumberColumn(format="%.4f"),
                                "max |learned − OLS|": st.column_config.NumberColumn(format="%.4f")})
    extra = sorted(set(states) - {v.version for v in versions})
    if extra:
        st.caption(f"The server also reports version(s) {', '.join(map(str, extra))}, which are no longer "
                   "on disk (they are being unloaded, or the server reads another folder).")
    return {v.version: states.get(v.version, default) for v in versions}


def signature_section(by_number: dict[int, store.VersionInfo]) -> None:
    st.subheader("Signature")
    numbers = sorted(by_number, reverse=True)
    chosen = st.selectbox("Version", numbers, key="models_sig_version", format_func=lambda n: f"version {n}")
    if st.toggle("Show its serving_default signature (as `saved_model_cli show` prints it)",
                 key="models_sig_show"):
        info = by_number[chosen]
        try:
            st.code(signature_text(str(info.path), info.created), language="text")
        except ValueError as exc:
            st.error(f"Cannot read the signature of version {chosen}: {exc}")


def compare_section(by_number: dict[int, store.VersionInfo]) -> None:
    st.subheader("Compare two versions")
    numbers = sorted(n for n, v in by_number.items() if (v.run_record or {}).get("learned"))
    if len(numbers) < 2:
        st.caption("Comparing needs two versions with recorded weights.")
        return
    left, right = st.columns(2)
    a = left.selectbox("First", numbers, index=len(numbers) - 2, key="models_cmp_a",
                       format_func=lambda n: f"version {n}")
    b = right.selectbox("Second", numbers, index=len(numbers) - 1, key="models_cmp_b",
                        format_func=lambda n: f"version {n}")
    ra, rb = by_number[a].run_record or {}, by_number[b].run_record or {}
    pa, pb = flat_params(ra["learned"]), flat_params(rb["learned"])
    ta, tb = flat_params(ra.get("true")), flat_params(rb.get("true"))
    if len(pa) != len(pb):
        st.info(f"Versions {a} and {b} have different numbers of inputs; their weights cannot be compared.")
        return
    table = pd.DataFrame({"parameter": param_names(len(pa) - 1), f"version {a}": pa, f"version {b}": pb,
                          f"version {b} − version {a}": [y - x for x, y in zip(pa, pb, strict=True)]})
    same_truth = ta == tb and ta is not None
    if same_truth:
        table["true"] = ta
    else:
        table[f"true ({a})"], table[f"true ({b})"] = ta, tb
    st.dataframe(table.set_index("parameter"), key="compare_table",
                 column_config={c: st.column_config.NumberColumn(format="%.4f") for c in table.columns[1:]})
    if not same_truth:
        st.caption("These versions were trained on data with different true weights.")
    pair = [(f"version {a}", ra["learned"]), (f"version {b}", rb["learned"])]
    st.plotly_chart(charts.compare_versions_weights_figure(pair, rb.get("true") if same_truth else None),
                    key="compare_chart")


def delete_section(numbers: list[int], states: dict[int, str]) -> None:
    st.subheader("Delete a version")
    version = st.selectbox("Version to delete", sorted(numbers, reverse=True), index=None,
                           key="models_del_version", format_func=lambda n: f"version {n}",
                           placeholder="Choose a version")
    if version is None:
        return
    if states.get(version) == "AVAILABLE":
        st.warning(f"Version {version} is being served right now; the server unloads it within seconds "
                   "(and serves the newest remaining version, if its policy says so).")
    confirmed = st.checkbox(f"Yes, delete version {version} from disk for good", key="models_del_confirm")
    if st.button(f"Delete version {version}", key="models_del_button", disabled=not confirmed,
                 type="primary"):
        try:
            store.delete_version(utils.base_path(), version)
        except (ValueError, OSError) as exc:
            st.error(f"Could not delete version {version}: {exc}")
            return
        for key in ("models_del_version", "models_del_confirm"):
            st.session_state.pop(key, None)
        utils.flash(f"Deleted version {version}.")
        st.rerun()


def history_section() -> None:
    st.subheader("Run history")
    records = run_records.list_runs(utils.base_path())
    if not records:
        st.caption("No runs recorded yet.")
        return
    counts = pd.Series([r.get("status", "unknown") for r in records]).value_counts()
    st.caption(" · ".join(f"{n} {status}" for status, n in counts.items()))
    st.dataframe(pd.DataFrame([run_row(r) for r in records]).set_index("run"), key="runs_table",
                 placeholder="–",
                 column_config={"max |learned − true|": st.column_config.NumberColumn(format="%.4f"),
                                "max |learned − OLS|": st.column_config.NumberColumn(format="%.4f"),
                                "fit time (s)": st.column_config.NumberColumn(format="%.2f")})
    if sum(1 for r in records if r.get("errors")) >= 2:
        st.plotly_chart(charts.run_errors_figure(records), key="runs_errors_chart")


def empty_folder() -> None:
    """What an empty model folder means, and a one-click way to fill it for a demo."""
    st.info(f"There are no versions under `{utils.base_path()}` yet. A version is a numbered folder with "
            "a SavedModel, written when a training run is exported; the model server serves the newest. "
            "Train one on the Train page, or seed demo data: three small runs exported as versions 1-3, plus "
            "a cancelled and a failed run for the history (about 10 seconds).")
    count = st.number_input("Demo versions", 1, MAX_DEMO_VERSIONS, 3, key="models_demo_count")
    if st.button("Seed demo data", key="models_seed_demo", type="primary", icon=":material/science:"):
        try:
            with st.spinner("Training demo versions…"):
                lines = seed_demo_in_process(utils.base_path(), int(count))
        except (ValueError, OSError, subprocess.SubprocessError) as exc:
            st.error(f"Could not seed demo data: {exc}")
            return
        utils.flash("Seeded demo data:\n\n" + "\n".join(f"- {line}" for line in lines))
        st.rerun()


def main() -> None:
    st.title("Models")
    st.caption(f"Model `{utils.model_name()}` · folder `{utils.base_path()}` · server {utils.serving_url()}")
    utils.show_flash()
    versions = store.list_versions(utils.base_path())
    if not versions:
        empty_folder()
    else:
        st.subheader("Versions")
        states = versions_section(versions)
        by_number = {v.version: v for v in versions}
        signature_section(by_number)
        compare_section(by_number)
        delete_section(list(by_number), states)
    history_section()


main()
