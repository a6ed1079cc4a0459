"""The ``grpc`` section of ``python -m bench``: 1-row Predict over gRPC at 1, 8, 32 and 128 in flight.

Load comes from Debian's ``h2load`` (nghttp2-client), which posts a pre-framed gRPC body (1 flag byte,
4-byte big-endian length, the serialized ``PredictRequest``) with ``content-type: application/grpc``
and ``te: trailers``. In flight = h2load clients x concurrent streams per client (at most 4 clients,
each multiplexing its share, as gRPC clients do). The same h2load measures our REST API (``--h1``,
one request per connection in flight) on the same server process, so the two APIs are compared with
one tool. That server runs with TF Serving's default flags (batching off); a second one started with
``--enable_batching`` (TF Serving's BatchingParameters defaults) is measured over gRPC too, each on
its own row, so the section compares with runs from when batching was this server's default. The
floor is ``bench/grpc_canned.py``: the same grpcio server answering a fixed PredictResponse.
KServe's gRPC endpoint (open inference protocol v2 ``ModelInfer``, its ModelServer on the same
model; ``bench/kserve_grpc.py``) is measured the same way. h2load counts HTTP statuses
only (a gRPC error is HTTP 200 too), so answers are checked separately: 64 concurrent calls through
grpcio must each answer 3.0, and our server's (KServe's) Prometheus count of Predicts answered OK
(predict calls) must have grown by at least h2load's successes.

With ``--before REV`` REV's server (batching off, started in its tree, see ``bench/before.py``) runs
beside ours with default flags and both are measured over gRPC in interleaved rounds at every level;
``÷ before`` is the median of the rounds' paired ratios with their range, and issue 19's "gRPC at 32
in flight at least as fast as before" passes at a median ≥ ``bench.report.BEFORE_PASS`` (0.95).

h2load reports a mean latency, not percentiles; the table shows it.
"""

from __future__ import annotations

import math
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench import contenders as cs
from bench import kserve_grpc
from bench.before import BeforeTree
from bench.inprocess import latest_version_dir
from bench.report import before_check, fmt_range, round_ratios

IN_FLIGHT = (1, 8, 32, 128)
GRPC_PATH = "/tensorflow.serving.PredictionService/Predict"
MAX_CLIENTS = 4
INPUT_NAME = "inputs"


@dataclass(frozen=True)
class H2Result:
    requests: int
    succeeded: int
    rps: float
    mean_ms: float


def h2load_available() -> bool:
    return shutil.which("h2load") is not None


def grpc_frame() -> bytes:
    """The bench's 1-row request ([[1.0, 2.0]] -> 3.0) as one length-prefixed gRPC message."""
    from tensorflow.core.framework import types_pb2
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = cs.MODEL_NAME
    tensor = request.inputs[INPUT_NAME]
    tensor.dtype = types_pb2.DT_FLOAT
    tensor.tensor_shape.dim.add().size = 1
    tensor.tensor_shape.dim.add().size = 2
    tensor.float_val.extend([1.0, 2.0])
    payload = request.SerializeToString()
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


def parse_h2load(text: str) -> H2Result:
    """requests done/succeeded, req/s and the mean request time from h2load's report."""
    finished = re.search(r"finished in [0-9.]+\w+, ([0-9.]+) req/s", text)
    counts = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded", text)
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+([0-9.]+)(us|ms|s)", text)
    if not (finished and counts and mean):
        raise RuntimeError(f"unreadable h2load output: {text[-500:]}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[mean.group(2)]
    return H2Result(int(counts.group(2)), int(counts.group(3)), float(finished.group(1)),
                    float(mean.group(1)) * scale)


def h2load(url: str, body: Path, in_flight: int, duration_s: float, warmup_s: float,
           grpc: bool) -> H2Result:
    """One timed h2load run (after its own warm-up) with `in_flight` requests outstanding."""
    if grpc:
        clients = min(in_flight, MAX_CLIENTS)
        mode = ["-c", str(clients), "-m", str(in_flight // clients),
                "-H", "content-type: application/grpc", "-H", "te: trailers"]
    else:
        mode = ["--h1", "-c", str(in_flight), "-m", "1", "-H", "content-type: application/json"]
    command = ["h2load", "-t", "1", *mode, "-D", f"{duration_s:g}", f"--warm-up-time={warmup_s:g}",
               "-d", str(body), url]
    out = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + warmup_s + 120)
    return parse_h2load(out.stdout + out.stderr)


def check_answers(target: str, count: int = 64) -> int:
    """How many of `count` concurrent grpcio Predicts did NOT answer 3.0 (0 means all correct)."""
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest.FromString(grpc_frame()[5:])
    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

        def one(_: int) -> bool:
            try:
                response = stub.Predict(request, timeout=30)
            except grpc.RpcError:
                return False
            return [list(t.float_val) for t in response.outputs.values()] == [[3.0]]

        with ThreadPoolExecutor(max_workers=16) as pool:
            return sum(not ok for ok in pool.map(one, range(count)))


def _ok_predicts(rest_port: int) -> float:
    """Predicts our server answered OK so far (REST and gRPC), from its Prometheus metrics."""
    import urllib.request

    url = f"http://127.0.0.1:{rest_port}/monitoring/prometheus/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        return ok_count(response.read().decode())


def ok_count(metrics: str) -> float:
    """The OK request count for the bench's model in a Prometheus text export: TF Serving's name
    (``:tensorflow:serving:request_count``) or the one older revisions of this server used
    (``tensorflow_serving_request_count_total``, e.g. a ``--before`` tree); 0 when absent."""
    pattern = (r"^(?::tensorflow:serving:request_count|tensorflow_serving_request_count_total)"
               r"\{model_name=\"" + cs.MODEL_NAME + r"\",status=\"OK\"\} (\S+)$")
    found = re.search(pattern, metrics, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _start_canned(port: int, log_dir: Path, timeout_s: float = cs.START_TIMEOUT_S) -> subprocess.Popen:
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / "grpc-canned.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(cs.REPO / "bench" / "grpc_canned.py"), f"--port={port}"], cwd=cs.REPO,
            env=cs.subprocess_env(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while check_answers(f"127.0.0.1:{port}", 1):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise cs.ContenderError(f"grpc_canned.py did not answer on port {port}")
        time.sleep(0.2)
    return process


def _measure_kserve(base_path: Path, work: Path, log_dir: Path, duration_s: float, warmup_s: float,
                    say: Callable[[str], None], install_timeout_s: float) -> kserve_grpc.KServeGrpc:
    """KServe's gRPC endpoint at every in-flight level (or why it could not be measured)."""
    version_dir = latest_version_dir(base_path)
    if version_dir is None:
        return kserve_grpc.KServeGrpc(unavailable=f"no SavedModel version under {base_path}")

    def point(url: str, body: Path, in_flight: int) -> H2Result:
        return h2load(url, body, in_flight, duration_s, warmup_s, grpc=True)

    return kserve_grpc.measure(version_dir, work, log_dir, IN_FLIGHT, point, say, install_timeout_s)


def run(base_path: Path, work: Path, log_dir: Path, duration_s: float, warmup_s: float,
        say: Callable[[str], None], kserve_install_timeout_s: float = 900.0, kserve: bool = True,
        before: BeforeTree | None = None, rounds: int = 1, before_note: str = "") -> str:
    """Measure ours (gRPC and REST; gRPC again with `--enable_batching`), KServe's gRPC (unless not
    ``kserve``) and the canned floor; with ``before`` (``--before``'s tree) REV's server too, paired
    with ours over gRPC in ``rounds`` rounds; return the report section. ``before_note`` says why
    ``--before`` was given but has no tree."""
    if not h2load_available():
        return ("## 1-row Predict over gRPC\n\n"
                "not measured: `h2load` is absent (apt-get install nghttp2-client)\n")
    body = work / "predict.grpc"
    body.write_bytes(grpc_frame())
    rest_body = work / "one_row.json"
    rest_body.write_bytes(cs.ONE_ROW)
    rows: dict[tuple[str, int], H2Result | str] = {}
    checks: list[str] = []
    paired = (BeforeRun(before.label) if before is not None else
              BeforeRun("before", unavailable=before_note) if before_note else None)
    for batching in (False, True):
        checks += _measure_ours(base_path, log_dir, body, rest_body, duration_s, warmup_s, say, rows,
                                batching, paired, before and before.path, rounds)
    if kserve:
        measured = _measure_kserve(base_path, work, log_dir, duration_s, warmup_s, say,
                                   kserve_install_timeout_s)
    else:
        measured = kserve_grpc.KServeGrpc(unavailable="skipped (--no-kserve)")
    rows.update({("kserve-grpc", level): result for level, result in measured.rows.items()})
    checks += measured.checks
    canned_port = cs.free_port()
    say("grpc: starting the canned-reply floor")
    process = _start_canned(canned_port, log_dir)
    try:
        for in_flight in IN_FLIGHT:
            say(f"grpc: canned floor, {in_flight} in flight")
            rows[("canned", in_flight)] = h2load(f"http://127.0.0.1:{canned_port}{GRPC_PATH}", body,
                                                 in_flight, duration_s, warmup_s, True)
        wrong = check_answers(f"127.0.0.1:{canned_port}")
        checks.append(f"canned floor: {wrong} wrong of 64 checked answers")
    finally:
        process.kill()
        process.wait(15)
    return render(rows, checks, duration_s, warmup_s,
                  kserve_note=measured.unavailable and f"not measured: {measured.unavailable}",
                  kserve_version=measured.version, before=paired)


def _server(key: str, base_path: Path, grpc_port: int, flags: tuple[str, ...],
            cwd: Path = cs.REPO) -> cs.Contender:
    """``python -m pipeline.serving`` serving REST (the contender's port) and gRPC (``grpc_port``)
    with Prometheus on; run in ``cwd`` (a ``--before`` tree) it is that tree's server."""
    return cs.Contender(key, (
        sys.executable, "-m", "pipeline.serving", "--rest_api_port={port}", f"--port={grpc_port}",
        f"--model_name={cs.MODEL_NAME}", f"--model_base_path={base_path}", "--enable_prometheus", *flags),
        cwd)


def _ok_or_nan(rest_port: int) -> float:
    """:func:`_ok_predicts`, or NaN when the server's metrics cannot be read (an older ``--before``)."""
    try:
        return _ok_predicts(rest_port)
    except (OSError, ValueError):
        return float("nan")


def _answers_line(name: str, running: cs.Running, grpc_port: int, before: float, succeeded: int) -> str:
    """The answers check for one server: 64 grpcio calls, and its OK count against h2load's."""
    counted = _ok_or_nan(running.port) - before
    wrong = check_answers(f"127.0.0.1:{grpc_port}")
    verdict = ("ok" if counted >= succeeded else "no metrics to count" if math.isnan(counted)
               else "MISMATCH: some HTTP 200s were gRPC errors")
    return (f"{name}: {wrong} wrong of 64 checked answers; the server counted {counted:.0f} predicts "
            f"answered OK for h2load's {succeeded} successes, warm-ups excluded ({verdict})")


def median_round(results: list[H2Result]) -> H2Result:
    """The round with the median req/s (the lower middle one of an even count)."""
    ordered = sorted(results, key=lambda r: r.rps)
    return ordered[(len(ordered) - 1) // 2]


@dataclass
class BeforeRun:
    """``--before``: REV's server over gRPC (batching off) beside ours, paired by rounds."""

    label: str
    """How the report names REV (``before <short sha>``)."""
    pairs: dict[int, list[float]] = field(default_factory=dict)
    """in flight -> ours ÷ before req/s in each round (round i of ours with round i of REV's)."""
    unavailable: str = ""
    """Why REV's server was not measured (e.g. it failed to start), or ""."""


def _start_before(base_path: Path, tree: Path, grpc_port: int, log_dir: Path,
                  outcome: BeforeRun) -> cs.Running | None:
    """REV's server with batching off (explicitly, if it has the flag); None when it cannot start."""
    try:
        flags = ("--enable_batching=false",) if cs.batching_available(cwd=tree) else ()
        return cs.start(_server("grpc-before", base_path, grpc_port, flags, tree), log_dir)
    except (cs.ContenderError, OSError, subprocess.SubprocessError) as error:
        outcome.unavailable = f"failed to start: {str(error).splitlines()[0]}"
        return None


def _measure_ours(base_path: Path, log_dir: Path, body: Path, rest_body: Path, duration_s: float,
                  warmup_s: float, say: Callable[[str], None], rows: dict[tuple[str, int], H2Result | str],
                  batching: bool, before: BeforeRun | None = None, tree: Path | None = None,
                  rounds: int = 1) -> list[str]:
    """Our server at every level, into `rows`: with default flags (batching off) gRPC then REST as
    ``ours-grpc``/``ours-rest``; with ``--enable_batching`` gRPC only, as ``ours-grpc-batching``.
    With ``before`` and ``tree`` (default flags only), REV's server runs beside ours and both are
    measured over gRPC in ``rounds`` interleaved rounds per level (forwards, then backwards): rows
    get the median round (``before-grpc`` for REV's) and ``before.pairs`` each round's ratio.
    Returns the answers check lines."""
    grpc_port = cs.free_port()
    flags = ("--enable_batching=true",) if batching else ()
    name = "ours with --enable_batching" if batching else "ours"
    say(f"grpc: starting our server (REST + gRPC{', --enable_batching' if batching else ''})")
    running = cs.start(_server("grpc-server-batching" if batching else "grpc-server", base_path, grpc_port,
                               flags), log_dir)
    other: cs.Running | None = None
    try:
        ours = "ours-grpc-batching" if batching else "ours-grpc"
        sides = {ours: (running, grpc_port)}
        if before is not None and tree is not None and not batching:
            other_port = cs.free_port()
            say(f"grpc: starting {before.label}'s server (REST + gRPC, batching off)")
            other = _start_before(base_path, tree, other_port, log_dir, before)
            if other is not None:
                sides["before-grpc"] = (other, other_port)
        counts_before = {key: _ok_or_nan(server.port) for key, (server, _) in sides.items()}
        succeeded = dict.fromkeys(sides, 0)
        for in_flight in IN_FLIGHT:
            measured: dict[str, list[H2Result]] = {key: [] for key in sides}
            repeat = rounds if len(sides) > 1 else 1
            for round_index in range(repeat):
                order = list(sides) if round_index % 2 == 0 else list(reversed(sides))
                for key in order:
                    say(f"grpc: {key}, {in_flight} in flight, round {round_index + 1} of {repeat}")
                    result = h2load(f"http://127.0.0.1:{sides[key][1]}{GRPC_PATH}", body, in_flight,
                                    duration_s, warmup_s, True)
                    measured[key].append(result)
                    succeeded[key] += result.succeeded
            for key, results in measured.items():
                rows[(key, in_flight)] = median_round(results)
            if "before-grpc" in measured and before is not None:
                before.pairs[in_flight] = round_ratios([r.rps for r in measured["ours-grpc"]],
                                                       [r.rps for r in measured["before-grpc"]])
            if not batching:
                say(f"grpc: ours-rest, {in_flight} in flight")
                result = h2load(running.url, rest_body, in_flight, duration_s, warmup_s, False)
                rows[("ours-rest", in_flight)] = result
                succeeded[ours] += result.succeeded
        lines = [_answers_line(name, running, grpc_port, counts_before[ours], succeeded[ours])]
        if other is not None and before is not None:
            lines.append(_answers_line(before.label, other, sides["before-grpc"][1],
                                       counts_before["before-grpc"], succeeded["before-grpc"]))
        return lines
    finally:
        running.stop()
        if other is not None:
            other.stop()


def _ratio(numerator: H2Result | str | None, denominator: H2Result | str | None) -> str:
    """``numerator.rps / denominator.rps`` to 2 decimals, or "" when either is missing."""
    if isinstance(numerator, H2Result) and isinstance(denominator, H2Result) and denominator.rps:
        return f"{numerator.rps / denominator.rps:.2f}"
    return ""


def kserve_target(rows: dict[tuple[str, int], H2Result | str], in_flight: int = 32) -> str:
    """The issue's bar "at least KServe's gRPC at 32 in flight", as met / missed with the ratio."""
    ratio = _ratio(rows.get(("ours-grpc", in_flight)), rows.get(("kserve-grpc", in_flight)))
    if not ratio:
        return ""
    verdict = "met" if float(ratio) >= 1.0 else "missed"
    return f"target: our gRPC ≥ KServe's gRPC at {in_flight} in flight: {verdict} ({ratio}x)"


def before_target(before: BeforeRun, in_flight: int = 32) -> str:
    """Issue 19's "gRPC at 32 in flight at least as fast as before" as a line: the paired median
    ours ÷ before and the rounds' range, judged by ``bench.report.BEFORE_PASS``; n/a with the reason
    when REV's server was not measured."""
    pairs = before.pairs.get(in_flight, [])
    median = statistics.median(pairs) if pairs else None
    target = f"issue 19: gRPC at {in_flight} in flight at least as fast as before ({before.label})"
    why_not = before.unavailable and f"{before.label}: {before.unavailable}"
    check = before_check(target, median, pairs, why_not)
    return f"target: {check.target}: {check.verdict} ({check.measured})"


def render(rows: dict[tuple[str, int], H2Result | str], checks: list[str], duration_s: float,
           warmup_s: float, kserve_note: str = "", kserve_version: str = "",
           before: BeforeRun | None = None) -> str:
    """The section's markdown: one row per contender and in-flight level, ratios on our gRPC row.

    ``kserve_note`` says why KServe's gRPC has no rows (empty when it was measured). With ``before``
    (``--before``), REV's rows, a paired ``÷ before`` column on our default-flags gRPC row and
    issue 19's target line."""
    names = {"ours-grpc": "this server, gRPC (default flags: batching off)",
             "before-grpc": f"{before.label if before else 'before'}, gRPC (batching off)",
             "ours-grpc-batching": "this server, gRPC, `--enable_batching` (TF Serving's defaults)",
             "ours-rest": "this server, REST (h2load --h1, default flags)",
             "kserve-grpc": "KServe ModelServer, gRPC (v2 `ModelInfer`)",
             "canned": "canned-reply grpcio floor"}
    kserve = (f"KServe's gRPC endpoint: {kserve_note}." if kserve_note else
              f"KServe's gRPC endpoint: {kserve_version or 'KServe'} `ModelServer` on the same SavedModel, "
              "`inference.GRPCInferenceService/ModelInfer` (open inference protocol v2), FP32 [[1.0, 2.0]].")
    column = bool(before and before.pairs)
    paired = (f" `÷ before`: ours ÷ {before.label}'s server, both batching off, measured in interleaved "
              "rounds (forwards, then backwards): the median of the rounds' ratios and their range; both "
              "rows show the median round." if column else "")
    lines = ["## 1-row Predict over gRPC (h2load)", "",
             f"{duration_s:g} s per point after {warmup_s:g} s warm-up; mean latency (h2load gives no "
             f"percentiles). {kserve}{paired}", "",
             "| in flight | contender | req/s | mean ms | ÷ canned floor | gRPC ÷ REST "
             "| ours gRPC ÷ KServe gRPC |" + (" ÷ before (paired; rounds' range) |" if column else ""),
             "|---|---|---|---|---|---|---|" + ("---|" if column else "")]
    for in_flight in IN_FLIGHT:
        for key in ("ours-grpc", "before-grpc", "ours-grpc-batching", "ours-rest", "kserve-grpc", "canned"):
            result = rows.get((key, in_flight))
            if not isinstance(result, H2Result):
                continue
            floor = _ratio(result, rows.get(("canned", in_flight)))
            ours = key.startswith("ours-grpc")
            versus_rest = _ratio(result, rows.get(("ours-rest", in_flight))) if ours else ""
            versus_kserve = _ratio(result, rows.get(("kserve-grpc", in_flight))) if ours else ""
            lost = result.requests - result.succeeded
            failed = f" ({lost} failed)" if lost else ""
            cell = ""
            if column and key == "ours-grpc" and before and before.pairs.get(in_flight):
                pairs = before.pairs[in_flight]
                spread = fmt_range(pairs).rstrip("×")  # this table's ratios carry no ×
                cell = f"{statistics.median(pairs):.2f}" + (f" ({spread})" if spread else "")
            lines.append(f"| {in_flight} | {names[key]} | {result.rps:,.0f}{failed} | "
                         f"{result.mean_ms:.2f} | {floor} | {versus_rest} | {versus_kserve} |"
                         + (f" {cell} |" if column else ""))
    targets = [kserve_target(rows), before_target(before) if before else ""]
    lines += ["", *[f"- {line}" for line in (*checks, *[t for t in targets if t])], ""]
    return "\n".join(lines)
