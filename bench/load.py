"""Drive one HTTP endpoint with POSTs and report requests/s with latency percentiles.

`wrk` (with a Lua script for the POST body and `--latency` for percentiles) is the load generator;
when it is absent, a small asyncio client does the same job, slower but bounded the same way (a
duration and a request count). Both talk to loopback only. Parsing is pure and unit-tested.
"""

from __future__ import annotations

import asyncio
import math
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_FALLBACK_REQUESTS = 2_000_000
"""The asyncio client stops after this many requests even if its duration has not run out."""


@dataclass(frozen=True)
class LoadResult:
    """What one load run measured. Latencies in milliseconds."""

    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int = 0
    """Non-2xx responses plus socket errors; a run with errors is reported, not trusted."""
    tool: str = "wrk"


class LoadError(RuntimeError):
    """The load generator failed or its output could not be read."""


_TIME_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_TIME_RE = re.compile(r"^([0-9.]+)(us|ms|s|m|h)$")


def parse_wrk_time(text: str) -> float:
    """A wrk duration such as ``412.33us``, ``1.20ms`` or ``2.00s``, in milliseconds."""
    match = _TIME_RE.match(text.strip())
    if not match:
        raise LoadError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _TIME_UNITS_MS[match.group(2)]


def parse_wrk_output(text: str) -> LoadResult:
    """Read wrk's report (run with ``--latency``): requests, duration, requests/s, p50, p99, errors."""
    percentiles = {
        m.group(1): parse_wrk_time(m.group(2))
        for m in re.finditer(r"^\s+(50|75|90|99)(?:\.0+)?%\s+(\S+)\s*$", text, re.MULTILINE)
    }
    total = re.search(r"^\s*(\d+) requests in ([0-9.]+\w+),", text, re.MULTILINE)
    rps = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.MULTILINE)
    if not total or not rps or "50" not in percentiles or "99" not in percentiles:
        raise LoadError(f"unexpected wrk output (was --latency given?):\n{text.strip()[:2000]}")
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if non_2xx:
        errors += int(non_2xx.group(1))
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if sockets:
        errors += sum(int(g) for g in sockets.groups())
    return LoadResult(
        requests=int(total.group(1)),
        duration_s=parse_wrk_time(total.group(2)) / 1e3,
        rps=float(rps.group(1)),
        p50_ms=percentiles["50"],
        p99_ms=percentiles["99"],
        errors=errors,
        tool="wrk",
    )


def lua_post_script(body_path: Path) -> str:
    """A wrk script POSTing the JSON in ``body_path`` on every request."""
    quoted = str(body_path.resolve()).replace("\\", "\\\\").replace('"', '\\"')
    return (
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'local f = assert(io.open("{quoted}", "rb"))\n'
        'wrk.body = f:read("*a")\n'
        "f:close()\n"
    )


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def wrk_version() -> str:
    """wrk's own version line, or ``"absent"``."""
    if not wrk_available():
        return "absent (asyncio fallback)"
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
    first = (out.stdout or out.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0] if first else "unknown"


def _check_loopback(url: str) -> None:
    host = urlsplit(url).hostname
    if host not in LOOPBACK_HOSTS:
        raise LoadError(f"refusing to load {url}: the bench drives loopback only")


def run_wrk(url: str, body_path: Path, connections: int, duration_s: float, script_dir: Path) -> LoadResult:
    """One wrk run of ``duration_s`` at ``connections`` keep-alive connections."""
    _check_loopback(url)
    script_dir.mkdir(parents=True, exist_ok=True)
    script = script_dir / f"post-{body_path.stem}.lua"
    script.write_text(lua_post_script(body_path))
    threads = max(1, min(2, connections))
    command = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration_s))}s",
        "--timeout", "30s", "--latency", "-s", str(script), url,
    ]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + 60)
    except subprocess.TimeoutExpired as error:
        raise LoadError(f"wrk did not finish: {' '.join(command)}") from error
    with (script_dir / "wrk.log").open("a") as log:  # every raw report, for a second look
        log.write(f"$ {' '.join(command)}\n{out.stdout}{out.stderr}\n")
    if out.returncode != 0:
        raise LoadError(f"wrk exited {out.returncode}: {out.stderr.strip()[:500]}")
    return parse_wrk_output(out.stdout)


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (``fraction`` in (0, 1])."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


async def read_http_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response with a Content-Length body; return its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length is None:
        raise LoadError("response without Content-Length (the asyncio client reads no chunked bodies)")
    await reader.readexactly(length)
    return status


async def _connection_loop(
    host: str, port: int, request: bytes, deadline: float, budget: list[int], latencies: list[float]
) -> int:
    errors = 0
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline and budget[0] > 0:
            budget[0] -= 1
            started = time.perf_counter()
            writer.write(request)
            status = await read_http_response(reader)
            latencies.append(time.perf_counter() - started)
            if not 200 <= status < 400:
                errors += 1
    finally:
        writer.close()
    return errors


def run_python(url: str, body_path: Path, connections: int, duration_s: float) -> LoadResult:
    """The asyncio fallback: ``connections`` keep-alive clients POSTing for ``duration_s``."""
    _check_loopback(url)
    parts = urlsplit(url)
    body = body_path.read_bytes()
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body

    async def drive() -> tuple[list[float], int, float]:
        latencies: list[float] = []
        budget = [MAX_FALLBACK_REQUESTS]
        started = time.perf_counter()
        deadline = started + duration_s
        results = await asyncio.gather(
            *(_connection_loop(host, port, request, deadline, budget, latencies) for _ in range(connections)),
            return_exceptions=True,
        )
        errors = sum(r if isinstance(r, int) else 1 for r in results)
        return latencies, errors, time.perf_counter() - started

    latencies, errors, elapsed = asyncio.run(drive())
    latencies.sort()
    return LoadResult(
        requests=len(latencies),
        duration_s=elapsed,
        rps=len(latencies) / elapsed if elapsed > 0 else 0.0,
        p50_ms=percentile(latencies, 0.50) * 1e3,
        p99_ms=percentile(latencies, 0.99) * 1e3,
        errors=errors,
        tool="python",
    )


def run_load(
    url: str, body_path: Path, connections: int, duration_s: float, script_dir: Path, use_wrk: bool = True
) -> LoadResult:
    """Run wrk if present (and wanted), else the asyncio fallback."""
    if use_wrk and wrk_available():
        return run_wrk(url, body_path, connections, duration_s, script_dir)
    return run_python(url, body_path, connections, duration_s)
