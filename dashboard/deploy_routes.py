"""The Deploy page's data side: one version's files, its conversion, and the same rows answered by
every deployment route (REST, gRPC, LiteRT, the Java client), compared with the SavedModel's answer.

No Streamlit here (the page renders; these functions fetch and measure), and no TensorFlow in this
process: conversion runs `python -m pipeline.formats` in a child process, LiteRT (which does not
import TensorFlow) is imported on first use, and the Java client is a `java` child process.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.settings import PROJECT_ROOT

if TYPE_CHECKING:
    from pipeline.formats.tflite import LiteRTModel

REST, GRPC, LITERT, TFJS, JAVA = "REST", "gRPC", "LiteRT (.tflite)", "TF.js (your browser)", "Java client"
ROUTES = (REST, GRPC, LITERT, TFJS, JAVA)
"""Every route, in the order the page shows them; REST is the reference (the SavedModel's answer)."""
RTOL = 1e-5
ATOL = 1e-6
"""Two answers agree when |a - ref| <= RTOL * |ref| + ATOL (ATOL only matters near zero)."""
JAVA_SOURCE = PROJECT_ROOT / "clients" / "java" / "Predict.java"
CONVERT_TIMEOUT_S = 300
JAVA_TIMEOUT_S = 120


@dataclass(frozen=True)
class RouteAnswer:
    """One route's answer to the rows: a prediction per row, or why there is none."""

    route: str
    predictions: list[float] | None = None
    latency_ms: float | None = None
    timed: str = ""
    """What the latency covers, in words (a warm call, a whole process, a round trip...)."""
    error: str | None = None
    """The route ran and failed: a sentence saying why."""
    skipped: str | None = None
    """The route cannot run here: a sentence saying what is missing."""


@dataclass(frozen=True)
class Comparison:
    """How far a route's answer is from the reference's."""

    max_abs: float
    max_rel: float
    agrees: bool


@dataclass(frozen=True)
class ConversionOutcome:
    """What `python -m pipeline.formats` did for one version: written formats and failures."""

    ok: bool
    written: list[str]
    failures: list[str]


def tutorial_and_random_rows(count: int, seed: int) -> list[list[float]]:
    """The tutorial's `[1, 2]` and `[5, 7]`, then `count` seeded random rows from the training range."""
    from pipeline.training.data import X_HIGH, X_LOW

    rng = np.random.default_rng(seed)
    random_rows = np.round(rng.uniform(X_LOW, X_HIGH, size=(count, 2)), 4).tolist()
    return [[1.0, 2.0], [5.0, 7.0], *random_rows]


def compare(reference: Sequence[float], answer: Sequence[float]) -> Comparison:
    """The largest absolute and relative differences of `answer` from `reference`, and whether every
    row agrees within RTOL (relative, ATOL near zero)."""
    ref, got = np.asarray(reference, dtype=float), np.asarray(answer, dtype=float)
    if ref.shape != got.shape:
        return Comparison(math.inf, math.inf, False)
    diff = np.abs(got - ref)
    rel = diff / np.maximum(np.abs(ref), ATOL)
    return Comparison(float(diff.max(initial=0.0)), float(rel.max(initial=0.0)),
                      bool(np.all(diff <= RTOL * np.abs(ref) + ATOL)))


def file_sizes(version_path: Path) -> dict[str, int | None]:
    """Bytes of each deployable artefact of a version (None when it is missing)."""
    saved = [version_path / "saved_model.pb", *sorted((version_path / "variables").glob("*"))]
    tfjs = version_path / "tfjs"
    tflite = version_path / "model.tflite"
    return {
        "SavedModel (saved_model.pb + variables/)": sum(f.stat().st_size for f in saved if f.is_file())
        if saved[0].is_file() else None,
        "model.tflite": tflite.stat().st_size if tflite.is_file() else None,
        "tfjs/ (model.json + shards)": sum(f.stat().st_size for f in tfjs.iterdir() if f.is_file())
        if (tfjs / "model.json").is_file() else None,
    }


def missing_formats(version_path: Path) -> list[str]:
    """`tflite` and/or `tfjs` when that export of the version is not on disk."""
    missing = []
    if not (version_path / "model.tflite").is_file():
        missing.append("tflite")
    if not (version_path / "tfjs" / "model.json").is_file():
        missing.append("tfjs")
    return missing


def convert_version(base_path: Path, version: int, formats: Sequence[str]) -> ConversionOutcome:
    """Run `python -m pipeline.formats` for one version in a child process (TensorFlow stays out
    of the dashboard); what it wrote and each failure as the child printed it. The conversion
    writes atomically beside the SavedModel, so a failure never changes the SavedModel."""
    fmt = formats[0] if len(formats) == 1 else "all"
    command = [sys.executable, "-m", "pipeline.formats", "--model-base-path", str(base_path),
               "--version", str(version), "--format", fmt]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=CONVERT_TIMEOUT_S, env=env,
                              cwd=PROJECT_ROOT)
    except subprocess.TimeoutExpired:
        return ConversionOutcome(False, [], [f"the conversion did not finish in {CONVERT_TIMEOUT_S} s"])
    written = [line.strip() for line in done.stdout.splitlines() if line.startswith("version ")]
    failures = [line.split("FAILED:", 1)[1].strip() for line in done.stderr.splitlines() if "FAILED:" in line]
    if done.returncode != 0 and not failures:
        lines = done.stderr.splitlines()
        usage = [line for line in lines if "error:" in line] or lines[-3:]
        failures = [" ".join(usage).strip() or f"python -m pipeline.formats exited with {done.returncode}"]
    return ConversionOutcome(done.returncode == 0, written, failures)


def rest_route(client: object, model: str, version: int, rows: list[list[float]]) -> RouteAnswer:
    """The server's answer over TF Serving's REST API (`ServingClient.predict`, version pinned)."""
    from pipeline.client.errors import ClientError

    try:
        result = client.predict(model, instances=rows, version=version)  # type: ignore[attr-defined]
        values = _one_per_row(result.values, len(rows))
    except (ClientError, ValueError) as error:
        return RouteAnswer(REST, error=str(error))
    return RouteAnswer(REST, values, result.latency_s * 1000, "HTTP round trip")


def grpc_available() -> bool:
    """Whether the gRPC client (`pipeline/client/grpc.py`) exists in this checkout."""
    return importlib.util.find_spec("pipeline.client.grpc") is not None


def grpc_route(target: str, model: str, version: int, rows: list[list[float]]) -> RouteAnswer:
    """The server's answer over TF Serving's gRPC `PredictionService/Predict`."""
    if not grpc_available():
        return RouteAnswer(GRPC, skipped="the gRPC client (pipeline/client/grpc.py) is not in this checkout "
                                         "yet; the REST route answers for the same server")
    if not grpc_listening(target):
        return RouteAnswer(GRPC, error=f"nothing answers gRPC at {target}: start the server with a gRPC port "
                                       "(`--port 8500`) or set GRPC_TARGET")
    from pipeline.client.grpc import GrpcClient

    client = GrpcClient(target)
    try:
        result = client.predict(model, rows, version=version)
        values = _one_per_row(result.predictions, len(rows))
    except Exception as error:  # noqa: BLE001 - any failure of the route is shown, never raised
        return RouteAnswer(GRPC, error=f"gRPC call to {target} failed: {error}")
    finally:
        client.close()
    return RouteAnswer(GRPC, values, result.latency_s * 1000, "RPC round trip")


def grpc_listening(target: str, timeout_s: float = 1.0) -> bool:
    """Whether a gRPC server accepts a connection at `target`, asked with plain grpcio before the
    client builds a request (a quick, specific "nothing answers" instead of a timeout)."""
    import grpc

    channel = grpc.insecure_channel(target)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout_s)
    except grpc.FutureTimeoutError:
        return False
    finally:
        channel.close()
    return True


def litert_route(version_path: Path, rows: list[list[float]]) -> RouteAnswer:
    """The version's `model.tflite` run by LiteRT in this process (imported lazily; no TensorFlow)."""
    tflite = version_path / "model.tflite"
    if not tflite.is_file():
        return RouteAnswer(LITERT, skipped="this version has no model.tflite yet: convert it above")
    from pipeline.formats.errors import FormatError

    try:
        stat = tflite.stat()
        model = _litert_model(str(tflite), stat.st_mtime_ns, stat.st_size)
        model.predict(rows)  # warm-up: the first call allocates tensors for the batch size
        started = time.perf_counter()
        output = model.predict(rows)
        latency_ms = (time.perf_counter() - started) * 1000
        values = _one_per_row(np.asarray(output).tolist(), len(rows))
    except (FormatError, ValueError, ImportError, OSError) as error:
        return RouteAnswer(LITERT, error=str(error))
    return RouteAnswer(LITERT, values, latency_ms, "warm call in the dashboard's process")


@functools.lru_cache(maxsize=4)
def _litert_model(path: str, mtime_ns: int, size: int) -> LiteRTModel:
    """One LiteRT interpreter per file version (a rewritten file has another mtime or size), so a
    rerun does not reload it (nor print LiteRT's "Created ... delegate" line again)."""
    from pipeline.formats.tflite import LiteRTModel

    return LiteRTModel(path)


def java_available() -> bool:
    """Whether a `java` launcher is on PATH (JDK 11+ runs a single-file source)."""
    return shutil.which("java") is not None


def java_command(url: str, model: str, version: int, rows: list[list[float]]) -> list[str]:
    """`java clients/java/Predict.java URL MODEL/versions/N ROWS`, as an argument list."""
    return ["java", str(JAVA_SOURCE), url, f"{model}/versions/{version}", json.dumps(rows)]


def java_route(url: str, model: str, version: int, rows: list[list[float]]) -> RouteAnswer:
    """The Java client's answer (a `java` child process); its latency includes starting the JVM."""
    if not java_available():
        return RouteAnswer(JAVA, skipped="no `java` on this machine (Debian: apt-get install "
                                         "openjdk-17-jdk-headless); the command is shown below")
    started = time.perf_counter()
    try:
        done = subprocess.run(java_command(url, model, version, rows), capture_output=True, text=True,
                              timeout=JAVA_TIMEOUT_S, cwd=PROJECT_ROOT)
    except subprocess.TimeoutExpired:
        return RouteAnswer(JAVA, error=f"the Java client did not finish in {JAVA_TIMEOUT_S} s")
    latency_ms = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        message = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
        return RouteAnswer(JAVA, error=f"the Java client failed: {message}")
    try:
        values = _one_per_row([json.loads(line) for line in done.stdout.splitlines() if line.strip()],
                              len(rows))
    except ValueError as error:
        return RouteAnswer(JAVA, error=f"the Java client printed something unexpected: {error}")
    return RouteAnswer(JAVA, values, latency_ms, "whole process: JVM start, compiling the source, HTTP call")


def _one_per_row(values: object, rows: int) -> list[float]:
    """One float per input row from `[[y], ...]` or `[y, ...]`; ValueError otherwise."""
    array = np.asarray(values, dtype=float)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.shape != (rows,):
        raise ValueError(f"expected one prediction per row ({rows}), got shape {array.shape}")
    return array.tolist()
