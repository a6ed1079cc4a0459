"""Deploy: one version answering the same inputs through every route.

For the tutorial's model, the server over REST and gRPC, the `.tflite` model in LiteRT, the TF.js
model inside the viewer's browser and the Java client each predict the tutorial's `[1, 2]`,
`[5, 7]` plus random rows; the table shows every answer, how far each is from the SavedModel's
(the REST answer), and how long it took. Any other model answers its own example (its warm-up
request, else one built from its signature) over REST and gRPC, and in LiteRT when the version has
a `.tflite`; the browser and Java routes say why they cannot feed it when they cannot. A version
without `.tflite` / TF.js files gets a Convert button (a child process; a model that does not
convert says why); the files can be downloaded, and each route has a snippet to copy.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import clients, deploy_any, messages, model_picker, session, tutorial
from dashboard import deploy_routes as routes
from dashboard.components import tfjs_predict
from pipeline.client.errors import ClientError
from pipeline.client.rest import available_versions
from pipeline.client.signatures import (
    NUMPY_DTYPES,
    Signature,
    check_inputs,
    example_inputs,
    read_signatures,
    rest_body,
)
from pipeline.client.snippets import (
    curl_command,
    grpc_examples_snippet,
    grpc_predict_snippet,
    grpc_python_snippet,
)
from pipeline.client.urls import is_local_url, model_url
from pipeline.client.warmup_records import read_warmup_requests
from pipeline.model_dir import version_dirs

RESULTS_KEY, SEED_KEY, CONVERSION_KEY = "deploy_results", "deploy_seed", "deploy_conversion"
MAX_RANDOM_ROWS = 1000


def versions_on_disk() -> dict[int, Path]:
    """The model's version folders on this machine (empty when the base path does not exist)."""
    try:
        return version_dirs(session.base_path())
    except OSError:
        return {}


def render_files(version: int, path: Path) -> None:
    """Sizes of the version's files, a Convert button for missing exports, and downloads."""
    st.subheader("Files")
    where = {"SavedModel (saved_model.pb + variables/)": "TF Serving, our server, KServe, Spark",
             "model.tflite": "LiteRT: Android, iOS, edge devices, Python",
             "tfjs/ (model.json + shards)": "TensorFlow.js: browsers, Node"}
    sizes = routes.file_sizes(path)
    st.dataframe(pd.DataFrame([{"file": name, "bytes": size, "runs on": where[name]}
                               for name, size in sizes.items()]),
                 hide_index=True, key="deploy_files",
                 column_config={"bytes": st.column_config.NumberColumn(format="%d")})
    missing = routes.missing_formats(path)
    if missing:
        st.warning(f"Version {version} has no {' and no '.join(missing)} export yet.",
                   icon=":material/build:")
    label = f"Convert version {version}" if missing else f"Convert version {version} again"
    if st.button(label, key="deploy_convert", icon=":material/sync:",
                 type="primary" if missing else "secondary",
                 help="Runs `python -m pipeline.formats` in a child process; the SavedModel is never "
                      "changed."):
        with st.spinner(f"Converting version {version} to .tflite and TF.js in a child process…"):
            outcome = routes.convert_version(session.base_path(), version, missing or ["tflite", "tfjs"])
        st.session_state[CONVERSION_KEY] = (version, outcome)
        st.rerun()
    converted = st.session_state.get(CONVERSION_KEY)
    if converted and converted[0] == version:
        outcome = converted[1]
        for line in outcome.written:
            st.success(line, icon=":material/check_circle:")
        for failure in outcome.failures:
            st.error(f"Conversion failed: {failure} The SavedModel and the served version are unchanged.",
                     icon=":material/error:")
    render_downloads(version, path)


def render_downloads(version: int, path: Path) -> None:
    """Download buttons for the `.tflite` file and a zip of the TF.js model, when they exist."""
    row = st.container(horizontal=True)  # buttons as wide as their labels, wrapped when narrow
    tflite = path / "model.tflite"
    if tflite.is_file():
        row.download_button("Download model.tflite", tflite.read_bytes(), key="deploy_download_tflite",
                            file_name=f"{session.model_name()}-{version}.tflite",
                            mime="application/octet-stream", icon=":material/download:")
    if (path / "tfjs" / "model.json").is_file():
        from pipeline.formats.errors import FormatError
        from pipeline.formats.tfjs import zip_tfjs

        try:
            row.download_button("Download the TF.js model (zip)", zip_tfjs(path), key="deploy_download_tfjs",
                                file_name=f"{session.model_name()}-{version}-tfjs.zip",
                                mime="application/zip", icon=":material/download:")
        except FormatError as error:
            row.error(str(error), icon=":material/error:")


def render_rows() -> list[list[float]]:
    """The tutorial's two rows plus a chosen number of seeded random rows."""
    st.subheader("Rows")
    count_col, new_col = st.columns([3, 2], vertical_alignment="bottom")
    count = count_col.number_input("Random rows besides the tutorial's [1, 2] and [5, 7]", min_value=0,
                                   max_value=MAX_RANDOM_ROWS, value=5, key="deploy_random_count")
    st.session_state.setdefault(SEED_KEY, 0)
    if new_col.button("New random rows", key="deploy_new_rows", icon=":material/casino:"):
        st.session_state[SEED_KEY] += 1
    return routes.tutorial_and_random_rows(int(count), st.session_state[SEED_KEY])


def server_routes(version: int, path: Path, rows: list[list[float]]) -> list[routes.RouteAnswer]:
    """REST, gRPC, LiteRT and Java answers for these rows (run once per click, kept for reruns)."""
    url, model = session.serving_url(), session.model_name()
    return [routes.rest_route(clients.get_client(), model, version, rows),
            routes.grpc_route(session.settings().grpc_target, model, version, rows),
            routes.litert_route(path, rows),
            routes.java_route(url, model, version, rows)]


def browser_route(path: Path, rows: list[list[float]]) -> routes.RouteAnswer:
    """The TF.js model run by the custom component in the viewer's browser (or why it cannot run)."""
    if problem := tfjs_predict.browser_route_problem():
        st.info(problem, icon=":material/extension_off:")
        return routes.RouteAnswer(routes.TFJS, skipped=problem)
    source = path / "tfjs" / "model.json"
    if not source.is_file():
        return routes.RouteAnswer(routes.TFJS,
                                  skipped="this version has no TF.js model yet: convert it above")
    from pipeline.formats.errors import FormatError

    try:
        model_json = tfjs_predict.publish_model(path)
    except FormatError as error:
        return routes.RouteAnswer(routes.TFJS, error=str(error))
    answer = tfjs_predict.predict_in_browser(model_json, rows, source.stat().st_mtime, key="deploy_tfjs")
    if answer is None:
        return routes.RouteAnswer(routes.TFJS,
                                  skipped="waiting for your browser to load TF.js and run the model…")
    if answer.error or answer.predictions is None:
        return routes.RouteAnswer(routes.TFJS, error=f"in your browser: {answer.error}")
    how = f"warm call in your browser (TF.js {answer.tfjs_version}, {answer.backend} backend)"
    return routes.RouteAnswer(routes.TFJS, answer.predictions, answer.latency_ms, how)


def reference_answer(answers: list[routes.RouteAnswer]) -> routes.RouteAnswer | None:
    """The SavedModel's own answer, as the server gives it: REST, else gRPC; None when neither
    answered (the server is down), so the other routes have nothing to be compared with."""
    return next((a for route in (routes.REST, routes.GRPC) for a in answers
                 if a.route == route and a.predictions), None)


def summary_rows(answers: list[routes.RouteAnswer]) -> list[dict]:
    """One row per route: what happened, latency, and its distance from the SavedModel's answer
    (REST's, else gRPC's). A number that does not exist is NaN (drawn as "–"), never "None"."""
    reference = reference_answer(answers)
    agrees = f"agrees within {routes.RTOL:g}"
    table = []
    for answer in answers:
        row = {"route": answer.route, "status": "answered", "latency ms": _number(answer.latency_ms),
               "max |Δ| vs SavedModel": math.nan, "max relative Δ": math.nan, agrees: "",
               "timed": answer.timed}
        if answer.predictions is None:
            row["status"] = "failed" if answer.error else "not run"
            row["timed"] = answer.error or answer.skipped or ""
        elif reference is None:
            row[agrees] = "no SavedModel answer"
        elif answer is not reference:
            diff = routes.compare(reference.predictions, answer.predictions)
            row.update({"max |Δ| vs SavedModel": diff.max_abs, "max relative Δ": diff.max_rel,
                        agrees: "yes" if diff.agrees else "NO"})
        else:
            row.update({"max |Δ| vs SavedModel": 0.0, "max relative Δ": 0.0, agrees: "reference"})
        table.append(row)
    return table


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


def render_answers(rows: list[list[float]], answers: list[routes.RouteAnswer], version: int) -> None:
    """The predictions table, the per-route summary and the same numbers as JSON."""
    frame = pd.DataFrame(rows, columns=list(tutorial.FEATURES))
    for answer in answers:
        if answer.predictions is not None:
            frame[answer.route] = answer.predictions
    precise = st.column_config.NumberColumn(format="%.7g")
    st.dataframe(frame, hide_index=True, key="deploy_predictions",
                 column_config={a.route: precise for a in answers})
    render_summary(answers)
    document = {"version": version, "rows": rows,
                "predictions": {a.route: a.predictions for a in answers if a.predictions is not None}}
    with st.expander("The same numbers as JSON"), st.container(key="deploy_json"):
        st.code(json.dumps(document), language="json", wrap_lines=True)


def render_summary(answers: list[routes.RouteAnswer]) -> None:
    """One row per route (latency, differences from the reference) and each route's error."""
    st.dataframe(pd.DataFrame(summary_rows(answers)), hide_index=True, key="deploy_summary", placeholder="–",
                 column_config={"latency ms": st.column_config.NumberColumn(format="%.2f"),
                                "max |Δ| vs SavedModel": st.column_config.NumberColumn(format="%.2e"),
                                "max relative Δ": st.column_config.NumberColumn(format="%.2e")})
    reference = reference_answer(answers)
    if reference is None and any(a.predictions is not None for a in answers):
        st.caption("The model server answered neither over REST nor gRPC, so there is no SavedModel answer "
                   "to compare the other routes with; their answers are shown as they are. Start the server "
                   "(Serving page), then **Ask every route again**.")
    elif reference is not None and reference.route != routes.REST:
        st.caption("REST did not answer: the routes are compared with the SavedModel's answer over "
                   f"{reference.route}.")
    for answer in answers:
        if answer.error:
            st.error(f"{answer.route}: {answer.error}", icon=":material/error:")


def render_snippets(version: int, rows: list[list[float]]) -> None:
    """A short snippet per route, for the version and rows on this page."""
    st.subheader("Use it yourself")
    url, name = session.serving_url(), session.model_name()
    rest, grpc, litert, tfjs, java = st.tabs(["REST (curl)", "gRPC (Python)", "LiteRT (Kotlin, Python)",
                                              "TF.js (JavaScript)", "Java"])
    rest.code(curl_command(model_url(url, name, version, verb="predict"), {"instances": rows[:2]}),
              language="bash")
    grpc.code(grpc_python_snippet(session.settings().grpc_target, name, [[1.0, 2.0], [5.0, 7.0]],
                                  version=version), language="python")
    litert.code(KOTLIN_SNIPPET, language="kotlin")
    tflite = session.base_path() / str(version) / "model.tflite"
    litert.code(f'from pipeline.formats.tflite import LiteRTModel\n'
                f'LiteRTModel("{tflite}").predict([[1, 2], [5, 7]])', language="python")
    tfjs.code(TFJS_SNIPPET.format(name=name, version=version), language="javascript")
    command = " ".join(routes.java_command(url, name, version, rows[:2])[:4])
    java.code(f"{command} '[[1,2],[5,7]]'", language="bash")


KOTLIN_SNIPPET = """// Android: implementation("com.google.ai.edge.litert:litert:1.0.1")
// and model.tflite (the download above) in src/main/assets/
val model = context.assets.openFd("model.tflite").use { fd ->
    FileInputStream(fd.fileDescriptor).channel
        .map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
}
val interpreter = Interpreter(model)
val rows = arrayOf(floatArrayOf(1f, 2f), floatArrayOf(5f, 7f))
interpreter.resizeInput(0, intArrayOf(rows.size, 2))
val predictions = Array(rows.size) { FloatArray(1) }
interpreter.run(rows, predictions)
"""
TFJS_SNIPPET = """// @tensorflow/tfjs 4.22.0 from npm; the model from the zip above (or the version's tfjs/)
import * as tf from "@tensorflow/tfjs";

const model = await tf.loadGraphModel("{name}-{version}-tfjs/model.json");
const y = model.execute(tf.tensor2d([[1, 2], [5, 7]]));
console.log(await y.array());
"""


def version_signature(version: int) -> Signature | None:
    """The version's serving_default signature as the server tells it (``None`` if it cannot)."""
    try:
        metadata = clients.get_client().metadata(session.model_name(), version=version)
    except ClientError:
        return None
    found = read_signatures(metadata)
    return found.get("serving_default") or next(iter(found.values()), None)


def example_of(signature: Signature, path: Path | None) -> tuple[dict | None, list | None, str]:
    """The inputs (or tf.Examples) every route answers: the version's warm-up request when the
    folder is here and has one, else one built from the signature."""
    if path is not None and is_local_url(session.serving_url()):
        for request in read_warmup_requests(path):
            if request.signature != signature.name:
                continue
            if signature.takes_examples and request.examples:
                return None, request.examples, "the version's warm-up request"
            try:
                check_inputs(signature, request.inputs, rows=True)
            except ValueError:
                continue
            return request.inputs, None, "the version's warm-up request"
    if signature.takes_examples:
        return None, [{"x": 1.0}], "a float feature x (the signature names no features)"
    return example_inputs(signature, rows=2), None, "the signature (two examples)"


def render_any(version: int, path: Path | None, signature: Signature) -> None:
    """Any model: its example through REST, gRPC and LiteRT; the other routes say why not."""
    inputs, examples, source = example_of(signature, path)
    st.subheader("Every route, the same example")
    st.caption(f"Signature `{signature.name}` ({signature.method}) · started from {source}:")
    body = {"examples": examples} if examples is not None else rest_body(inputs or {}, "row", signature.name)
    st.code(json.dumps(body)[:2000], language="json", wrap_lines=True)
    model = session.model_name()
    key = json.dumps([model, version, body, str(path)], default=str)
    stored = st.session_state.get(RESULTS_KEY)
    again = st.button("Ask every route again", key="deploy_run", icon=":material/refresh:")
    reason = deploy_any.single_numeric_input(signature)
    rows = next(iter((inputs or {}).values()), None)
    if again or not stored or stored[0] != key:
        with st.spinner("Asking the server (REST, gRPC), LiteRT and the Java client…"):
            rest, _ = deploy_any.rest_any(clients.get_client(), model, version, signature, inputs, examples)
            grpc = deploy_any.grpc_any(clients.get_grpc_client(), model, version, signature, inputs, examples)
            if reason:
                why = f"not for this model: {reason}"
                java = routes.RouteAnswer(routes.JAVA, skipped=why)
            else:
                java = routes.java_route(session.serving_url(), model, version, rows)
            stored = (key, [rest, grpc, deploy_any.litert_any(path, signature, inputs), java])
        st.session_state[RESULTS_KEY] = stored
    if reason:
        tfjs = routes.RouteAnswer(routes.TFJS, skipped=f"not for this model: {reason}")
    elif path is None:
        tfjs = routes.RouteAnswer(routes.TFJS, skipped="the version's folder is not on this machine")
    else:
        tfjs = browser_route(path, rows)
    answers = [*stored[1][:3], tfjs, stored[1][3]]
    st.caption("Each answer is all numeric outputs, output by output; Δ is measured against REST.")
    render_summary(answers)
    st.subheader("Use it yourself")
    rest_tab, grpc_tab = st.tabs(["REST (curl)", "gRPC (Python)"])
    rest_tab.code(curl_command(model_url(session.serving_url(), model, version, verb=signature.method), body),
                  language="bash")
    if signature.takes_examples:
        grpc_tab.code(grpc_examples_snippet(session.settings().grpc_target, model, signature.method,
                                            examples or [], version=version, signature=signature.name),
                      language="python")
    else:
        dtypes = {k: NUMPY_DTYPES.get(s.dtype, "float32") for k, s in signature.inputs.items()}
        grpc_tab.code(grpc_predict_snippet(session.settings().grpc_target, model, dtypes, inputs,
                                           version=version, signature=signature.name), language="python")


def main() -> None:
    st.title("Deploy")
    model_picker.render()
    st.caption("One version, every route: TF Serving over REST and gRPC, TensorFlow Lite (LiteRT), "
               "TensorFlow.js in your browser, and a Java client, answering the same inputs.")
    messages.show_flash()
    versions = versions_on_disk()
    served: list[int] = []
    if not versions:
        try:
            served = available_versions(clients.get_client().model_status(session.model_name()))
        except ClientError as exc:
            messages.show_serving_error(exc)
    if not versions and not served:
        st.info(f"No versions in {session.base_path()} yet and none served: train one on the Train page (or "
                "`make demo`), or pick a model the server serves.", icon=":material/inventory_2:")
        return
    numbers = sorted(versions or served, reverse=True)
    newest = numbers[0]
    version = st.selectbox("Version", numbers, index=0, key="deploy_version",
                           format_func=lambda v: f"version {v}" + (" (newest)" if v == newest else ""))
    path = versions.get(version)
    signature = version_signature(version)
    if path is None or (signature is not None and not tutorial.is_tutorial(signature)):
        if path is not None:
            render_files(version, path)
        else:
            st.caption(f"The folder of version {version} is not on this machine ({session.base_path()}): its "
                       "files, LiteRT and TF.js routes need it; the server answers over REST and gRPC.")
        if signature is None:
            st.info("The server does not say this version's signature, so the page cannot build its inputs.",
                    icon=":material/help:")
            return
        render_any(version, path, signature)
        return
    render_files(version, path)
    rows = render_rows()

    st.subheader("Every route, the same rows")
    key = json.dumps([str(path), rows, sorted(routes.file_sizes(path).items())])
    stored = st.session_state.get(RESULTS_KEY)
    again = st.button("Ask every route again", key="deploy_run", icon=":material/refresh:",
                      help="The routes answer by themselves when the version or the rows change; this "
                           "asks them again, e.g. for fresh latencies or after restarting the server.")
    if again or not stored or stored[0] != key:
        with st.spinner("Asking the server (REST, gRPC), LiteRT and the Java client…"):
            stored = (key, server_routes(version, path, rows))
        st.session_state[RESULTS_KEY] = stored
    answers = stored[1]
    answers = [*answers[:3], browser_route(path, rows), *answers[3:]]
    render_answers(rows, answers, version)
    render_snippets(version, rows)


main()
