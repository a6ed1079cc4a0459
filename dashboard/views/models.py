"""Models: the versions on disk next to what the model server says about them, labels, and every run.

Disk is the source of truth for what exists (``pipeline.store.versions.list_versions``); the server
only adds each version's serving state and load error, so with the server down the page still lists
every version (state "unknown") and says why. Deleting renames the version away first, so the
server stops seeing it at once; its number is never given out again. Labels (``stable``,
``canary``) are written to the embedded server's ``models.config``
(:mod:`pipeline.store.serving_config`). Actions run in ``on_click`` callbacks, before the page is
drawn, so a page never shows the state from before the click next to the state after it. The run
history includes failed and cancelled runs and marks deleted versions. The ``formats`` column says
which other deployment formats (``.tflite``, TF.js) each version has.

When the model folder does not exist on this machine (the server runs in a cluster and reads a
volume), the versions come from the server instead (:mod:`dashboard.remote_versions`:
``model_version_status`` and ``metadata``), the page says so, and the actions that need the folder
(delete, labels, demo data) are not offered.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import charts, clients, messages, model_picker, server_state, session
from dashboard.remote_versions import RemoteModel, load_error, read_remote_model, signature_summary
from pipeline import model_dir
from pipeline.client import local_server
from pipeline.client.errors import ClientError
from pipeline.client.rest import signature_rows, state_words
from pipeline.demo import MAX_DEMO_VERSIONS
from pipeline.runs.conversions import format_errors, format_summary
from pipeline.runs.process import seed_demo_in_process
from pipeline.runs.report import RUN_COLUMN_FORMATS, param_names, run_row, short_time
from pipeline.store import records as run_records
from pipeline.store import serving_config
from pipeline.store import versions as store

UNKNOWN = "unknown"
NOT_LOADED = "not loaded"
AVAILABLE = "AVAILABLE"
REMOVE = "remove"
SUGGESTED_LABELS = ("stable", "canary")
CONFIG_POLL_FLAG = "--model_config_file_poll_wait_seconds"


def serving_states() -> tuple[dict[int, dict[str, Any]], str]:
    """``({version: model_version_status entry}, state for versions the server did not mention)``.

    A server that answers but has no version of the model (TF Serving's 404 "Could not find
    any versions") is not an outage: its versions are "not loaded". A server that cannot be
    reached leaves every state "unknown", with a warning saying what happened.
    """
    try:
        statuses = clients.get_client().model_status(session.model_name())
    except ClientError as exc:
        if exc.status_code == 404:
            st.info(f"The model server has no version of `{session.model_name()}` loaded yet: {exc}")
            return {}, NOT_LOADED
        st.warning(f"Serving states are unknown: {exc}")
        return {}, UNKNOWN
    states = {}
    for entry in statuses:
        try:
            states[int(entry["version"])] = entry
        except (KeyError, TypeError, ValueError):
            continue
    return states, NOT_LOADED


def state_text(entry: dict[str, Any] | None, default: str) -> str:
    if entry is None:
        return default
    state = str(entry.get("state", UNKNOWN))
    return f"load failed ({state})" if load_error(entry) else state_words(state)


def version_row(info: store.VersionInfo, entry: dict[str, Any] | None, default: str,
                labels: dict[int, list[str]]) -> dict[str, Any]:
    """One line of the versions table: what the version is, how good it is, how it is served.
    A version without a run record (copied in by hand) says so instead of showing blanks."""
    record = info.run_record
    cfg = record.config if record is not None else {}
    learned = record.learned if record is not None else None
    errors = record.errors if record is not None else None
    return {
        "version": info.version,
        "state": state_text(entry, default),
        "labels": ", ".join(sorted(labels.get(info.version, []))),
        "quality": record.quality_level if record is not None else "",
        "created": short_time(info.created),
        "samples": cfg.get("samples"),
        "epochs": cfg.get("epochs"),
        "noise": cfg.get("noise"),
        "learned w1, w2": ", ".join(f"{v:,.4f}" for v in learned.w) if learned is not None else "",
        "learned b": learned.b if learned is not None else None,
        "max |learned − true|": errors.vs_true if errors is not None else None,
        "max |learned − OLS|": errors.vs_ols if errors is not None else None,
        "size (KiB)": round(info.size_bytes / 1024, 1),
        "formats": format_summary(info.formats, record.formats if record is not None else None),
        "load error": load_error(entry),
        "run": (record.id if record is not None else "") or "no run record (not made by a training run here)",
    }


@st.cache_data(show_spinner="Reading the SavedModel (the first time loads TensorFlow)…", max_entries=64)
def signature_text(version_path: str, created: str) -> str:
    """``saved_model_cli show`` text of the version's serving_default signature; cached per
    version (``created`` tells versions at the same path apart)."""
    return model_dir.read_signature(version_path).cli_text()


def config_path() -> Path:
    """The embedded server's models.config (the file its command line names)."""
    return session.settings().run_dir / local_server.MODELS_CONFIG_NAME


def labels_by_version() -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for label, version in serving_config.labels_of(config_path(), session.model_name()).items():
        found.setdefault(version, []).append(label)
    return found


def versions_section(versions: list[store.VersionInfo]) -> dict[int, str]:
    states, default = serving_states()
    labels = labels_by_version()
    table = pd.DataFrame([version_row(v, states.get(v.version), default, labels) for v in reversed(versions)])
    shown_as = {"learned b": "%.4f", "max |learned − true|": "%.4g", "max |learned − OLS|": "%.4g",
               "samples": "localized", "noise": "%g"}
    st.dataframe(table.set_index("version"), key="versions_table", placeholder="–",
                 column_config={c: st.column_config.NumberColumn(format=f) for c, f in shown_as.items()})
    formats_section(versions)
    failed = {n: load_error(e) for n, e in states.items() if load_error(e)}
    on_disk = {v.version for v in versions}
    for number, message in sorted(failed.items()):
        if number in on_disk:
            st.error(f"Version {number} failed to load on the server: {message}", icon=":material/error:")
    # TF Serving keeps reporting versions it unloaded as END: only a version still on its way
    # out (not END) is worth a word once it is gone from disk
    leaving = sorted(n for n, e in states.items() if n not in on_disk and str(e.get("state")) != "END")
    if leaving:
        st.caption(f"The server still reports version(s) {', '.join(map(str, leaving))}, which are no longer "
                   "on disk: they are being unloaded (or the server reads another folder).")
    return {v.version: state_text(states.get(v.version), default) for v in versions}


def formats_section(versions: list[store.VersionInfo]) -> None:
    """Say which versions lack a format because its conversion failed, and how to retry."""
    for info in reversed(versions):
        recorded = info.run_record.formats if info.run_record is not None else None
        for label, message in format_errors(info.formats, recorded).items():
            st.caption(f"Version {info.version} has no {label} model: {message} The SavedModel is served as "
                       "usual. Convert it again on the Deploy page, or with `python -m pipeline.formats "
                       f"--model-base-path {session.base_path()} --version {info.version}`.")


def _keep_valid(key: str, options: list[int]) -> None:
    """Forget a remembered choice that is no longer an option (a deleted version)."""
    if key in st.session_state and st.session_state[key] not in options:
        del st.session_state[key]


def signature_section(by_number: dict[int, store.VersionInfo]) -> None:
    st.subheader("Signature")
    numbers = sorted(by_number, reverse=True)
    _keep_valid("models_sig_version", numbers)
    chosen = st.selectbox("Version", numbers, key="models_sig_version", format_func=lambda n: f"version {n}")
    try:
        rows = signature_rows(clients.get_client().metadata(session.model_name(), version=chosen))
    except ClientError:
        rows = []  # not loaded (or no server): the SavedModel itself is read below
    if rows:
        st.caption(f"Every signature of version {chosen}, as the server reports it:")
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="models_signatures")
    if st.toggle("Show its serving_default signature (as `saved_model_cli show` prints it)",
                 key="models_sig_show"):
        info = by_number[chosen]
        try:
            st.code(signature_text(str(info.path), info.created), language="text")
        except ValueError as exc:
            st.error(f"Cannot read the signature of version {chosen}: {exc}")


def compare_section(by_number: dict[int, store.VersionInfo]) -> None:
    st.subheader("Compare two versions")
    numbers = sorted(n for n, v in by_number.items() if v.run_record is not None and v.run_record.learned)
    if len(numbers) < 2:
        st.caption("Comparing needs two versions with recorded weights.")
        return
    for key in ("models_cmp_a", "models_cmp_b"):
        _keep_valid(key, numbers)
    left, right = st.columns(2)
    a = left.selectbox("First", numbers, index=len(numbers) - 2, key="models_cmp_a",
                       format_func=lambda n: f"version {n}")
    b = right.selectbox("Second", numbers, index=len(numbers) - 1, key="models_cmp_b",
                        format_func=lambda n: f"version {n}")
    if a == b:
        st.info(f"Both sides are version {a}: choose two different versions.")
        return
    ra, rb = by_number[a].run_record, by_number[b].run_record
    pa, pb = ra.learned.flat, rb.learned.flat
    ta = ra.true.flat if ra.true is not None else None
    tb = rb.true.flat if rb.true is not None else None
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
    pair = [(f"version {a}", ra.learned), (f"version {b}", rb.learned)]
    st.plotly_chart(charts.compare_versions_weights_figure(pair, rb.true if same_truth else None),
                    key="compare_chart")


def labels_section(numbers: list[int], states: dict[int, str]) -> None:
    """Point a label at a version in the embedded server's models.config: only at an AVAILABLE
    version, as TF Serving requires (a label on any other version makes it refuse the config)."""
    st.subheader("Labels")
    path = config_path()
    if not path.exists():
        st.caption(f"Labels live in the model server's models.config. The embedded server's is `{path}`; it "
                   "is written when the embedded server starts (Serving page). For another server, add "
                   "`version_labels { key: \"stable\" value: 3 }` to its own config.")
        return
    current = serving_config.labels_of(path, session.model_name())
    if current:
        st.markdown(" · ".join(f"`{k}` → version {v}" for k, v in sorted(current.items())))
    for label, version in sorted(current.items()):
        if states.get(version) != AVAILABLE:
            where = (f"version {version} is {states[version]}" if version in states
                     else f"version {version} is no longer on disk")
            st.warning(f"Label `{label}`: {where}, so requests to `{label}` fail. Point it at an AVAILABLE "
                       "version or remove it.", icon=":material/label_off:")
    available = sorted((n for n in numbers if states.get(n) == AVAILABLE), reverse=True)
    row = st.container(horizontal=True, vertical_alignment="bottom")  # wraps when narrow
    row.selectbox("Label", sorted({*SUGGESTED_LABELS, *current}), key="models_label_name",
                  accept_new_options=True,
                  help="stable, canary, or a name of your own: a letter, then up to 63 letters, digits, "
                  "'_' or '-'.")
    _keep_valid("models_label_version", available)
    row.selectbox("Version", available, key="models_label_version",
                  format_func=lambda n: f"version {n}", placeholder="no version is AVAILABLE",
                  help="Only AVAILABLE versions: TF Serving assigns a label only to a version it has "
                  "loaded.")
    row.button("Set label", key="models_label_set", type="primary", on_click=_set_label, args=(True,),
               disabled=not available)
    if current:
        row.button("Remove label", key="models_label_remove", on_click=_set_label, args=(False,))
    if not available:
        st.caption("No version is AVAILABLE on the server right now (see the states above), so no label can "
                   "be set: TF Serving assigns a label only to a version it has loaded.")
    st.caption("TF Serving assigns a label only to a version it has loaded (AVAILABLE); the embedded server "
               f"keeps the {local_server.LOADED_VERSIONS} newest loaded. Requests name it as "
               f"`/v1/models/{session.model_name()}/labels/<label>:predict`.")


def _reload_note() -> str:
    """What happens next, true for the server that actually runs."""
    command = server_state.server_status().command
    if CONFIG_POLL_FLAG in command:
        seconds = command[command.index(CONFIG_POLL_FLAG) + 1]
        return f"the embedded server re-reads it every {seconds} s"
    return "it takes effect when the model server restarts (Serving page → Restart)"


def _set_label(assign: bool) -> None:
    label = st.session_state.get("models_label_name")
    version = st.session_state.get("models_label_version") if assign else None
    if assign and version is None:
        st.session_state["models_label_error"] = "Could not set the label: no AVAILABLE version is chosen."
        return
    try:
        serving_config.set_label(config_path(), session.model_name(), str(label or ""), version)
    except (ValueError, OSError) as exc:
        st.session_state["models_label_error"] = f"Could not set the label: {exc}"
        return
    what = f"Label `{label}` → version {version}" if assign else f"Removed label `{label}`"
    messages.flash(f"{what} in `{config_path()}`; {_reload_note()}.")


def delete_section(numbers: list[int], states: dict[int, str]) -> None:
    st.subheader("Delete a version")
    _keep_valid("models_del_version", numbers)
    version = st.selectbox("Version to delete", sorted(numbers, reverse=True), index=None,
                           key="models_del_version", format_func=lambda n: f"version {n}",
                           placeholder="Choose a version")
    if version is None:
        return
    if states.get(version) == AVAILABLE:
        st.warning(f"Version {version} is being served right now. A server polling this folder unloads it "
                   "at its next poll (the embedded server: within a second) and serves the newest "
                   "remaining version. Its number is never given to another version.")
    stranded = sorted(k for k, v in serving_config.labels_of(config_path(), session.model_name()).items()
                      if v == version)
    if stranded:
        names = ", ".join(f"`{k}`" for k in stranded)
        st.warning(f"Label(s) {names} point at version {version}: deleted, it would leave them pointing at "
                   "nothing, and requests to them would fail. Choose what happens to them:",
                   icon=":material/label:")
        targets = sorted((n for n in numbers if n != version and states.get(n) == AVAILABLE), reverse=True)
        choices = [*targets, REMOVE]
        _keep_valid("models_del_labels", choices)
        st.radio("Labels of this version", choices, key="models_del_labels", label_visibility="collapsed",
                 format_func=lambda c: f"Remove {names}" if c == REMOVE
                 else f"Move {names} to version {c} (AVAILABLE)")
    confirmed = st.checkbox(f"Yes, delete version {version} from disk for good", key="models_del_confirm")
    st.button(f"Delete version {version}", key="models_del_button", disabled=not confirmed, type="primary",
              on_click=_delete, args=(version, stranded))


def _delete(version: int, labels: list[str]) -> None:
    """Move or remove the version's labels, then delete it, before the page is drawn again; forget
    every choice that named the version."""
    target = st.session_state.get("models_del_labels", REMOVE) if labels else REMOVE
    moved = None if target == REMOVE else int(target)
    try:
        for label in labels:
            serving_config.set_label(config_path(), session.model_name(), label, moved)
    except (ValueError, OSError) as exc:
        st.session_state["models_del_error"] = (f"Version {version} was not deleted: its labels could not be "
                                                f"changed: {exc}")
        return
    try:
        store.delete_version(session.base_path(), version)
    except (ValueError, OSError) as exc:
        st.session_state["models_del_error"] = f"Could not delete version {version}: {exc}"
        return
    for key in ("models_del_version", "models_del_confirm", "models_del_labels", "models_sig_version",
                "models_cmp_a", "models_cmp_b", "models_label_version"):
        st.session_state.pop(key, None)
    names = ", ".join(f"`{k}`" for k in labels)
    done = f"; moved {names} to version {moved}" if moved is not None else f"; removed {names}"
    messages.flash(f"Deleted version {version}{done if labels else ''}.")


def history_section(on_disk: set[int]) -> None:
    st.subheader("Run history")
    records = run_records.list_runs(session.base_path())
    if not records:
        st.caption("No runs recorded yet.")
        return
    counts = pd.Series([str(r.status) for r in records]).value_counts()
    st.caption(" · ".join(f"{n} {status}" for status, n in counts.items()))
    st.dataframe(pd.DataFrame([run_row(r, on_disk) for r in records]).set_index("run"), key="runs_table",
                 placeholder="–",
                 column_config={c: st.column_config.NumberColumn(format=f)
                                for c, f in RUN_COLUMN_FORMATS.items()})
    if sum(1 for r in records if r.errors is not None) >= 2:
        st.plotly_chart(charts.run_errors_figure(records), key="runs_errors_chart")


def empty_folder() -> None:
    """What an empty model folder means, and a one-click way to fill it for a demo."""
    st.info(f"There are no versions under `{session.base_path()}` yet. A version is a numbered folder with "
            "a SavedModel, written when a training run is exported; the model server serves the newest. "
            "Train one on the Train page, or seed demo data: three small runs exported as the next versions "
            "(the first, a short run, on purpose exported although the quality gate warns), plus "
            "a cancelled and a failed run for the history (about 10 seconds).")
    count = st.number_input("Demo versions", 1, MAX_DEMO_VERSIONS, 3, key="models_demo_count")
    if st.button("Seed demo data", key="models_seed_demo", type="primary", icon=":material/science:"):
        try:
            with st.spinner("Training demo versions…"):
                lines = seed_demo_in_process(session.base_path(), int(count))
        except (ValueError, OSError, subprocess.SubprocessError) as exc:
            st.error(f"Could not seed demo data: {exc}")
            return
        messages.flash("Seeded demo data:\n\n" + "\n".join(f"- {line}" for line in lines))
        st.rerun()


def remote_model() -> RemoteModel | None:
    """The model's versions as the server reports them, when its folder is not on this machine;
    ``None`` (with a caption saying why) when the server cannot tell either."""
    try:
        return read_remote_model(clients.get_client(), session.model_name())
    except ClientError as exc:
        st.caption(f"`{session.base_path()}` does not exist on this machine, so the page asked the model "
                   f"server at {session.serving_url()} for the versions instead; it cannot list them: {exc}")
        return None


def remote_versions_section(remote: RemoteModel) -> None:
    """The versions table and signatures of a server whose folder is elsewhere (a cluster)."""
    st.info(f"Versions are read from the model server at {session.serving_url()} (its `model_version_status` "
            f"and `metadata`), because the model folder `{session.base_path()}` is not on this machine: the "
            "server reads its versions from its own disk, e.g. a Kubernetes volume. Deleting versions, "
            "labels, other formats and the run history need the folder, so they are managed where it lives.",
            icon=":material/cloud:")
    st.subheader("Versions (from the server)")
    rows = [{"version": v.version,
             "state": f"load failed ({v.state})" if v.load_error else state_words(v.state),
             "answers requests without a version": v.version == remote.default_version,
             "serving_default": signature_summary(v.metadata) or v.metadata_error,
             "load error": v.load_error} for v in remote.versions]
    st.dataframe(pd.DataFrame(rows).set_index("version"), key="remote_versions_table", placeholder="–")
    for v in remote.versions:
        if v.load_error:
            st.error(f"Version {v.version} failed to load on the server: {v.load_error}",
                     icon=":material/error:")
    loaded = [v for v in remote.versions if v.metadata is not None]
    st.subheader("Signature")
    if not loaded:
        st.caption("No version is AVAILABLE, so the server has no signature to show yet.")
        return
    by_number = {v.version: v for v in loaded}
    _keep_valid("models_remote_sig_version", list(by_number))
    chosen = st.selectbox("Version", list(by_number), key="models_remote_sig_version",
                          format_func=lambda n: f"version {n}")
    st.dataframe(pd.DataFrame(signature_rows(by_number[chosen].metadata)), key="remote_signature_table",
                 hide_index=True)


def main() -> None:
    st.title("Models")
    model_picker.render()
    st.caption(f"Model `{session.model_name()}` · folder `{session.base_path()}` · "
               f"server {session.serving_url()} · TF Serving serves the newest version (policy `latest`) "
               "to requests without a version; "
               "a run the quality gate warns about is not exported unless you ask.")
    messages.show_flash()
    for key in ("models_del_error", "models_label_error"):
        if message := st.session_state.pop(key, None):
            st.error(message)
    if not session.base_path().exists() and (remote := remote_model()) is not None:
        remote_versions_section(remote)
        return
    versions = store.list_versions(session.base_path())
    if not versions:
        empty_folder()
    else:
        st.subheader("Versions")
        states = versions_section(versions)
        by_number = {v.version: v for v in versions}
        signature_section(by_number)
        compare_section(by_number)
        labels_section(list(by_number), states)
        delete_section(list(by_number), states)
    history_section({v.version for v in versions})


main()
