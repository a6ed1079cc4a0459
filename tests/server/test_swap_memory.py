"""Memory held flat over version swaps (issue 19 item 2), the short version of `bench/swap_memory.py`.

A new version appears, the old one goes, again and again, under a light predict load. Each unloaded
version is closed (its Session and graph freed, the heap trimmed) once its last request let go, which
the server logs; the resident memory after the last swap stays within 10% of what it was after the
tenth (the first ones grow caches and arenas that are then reused).
"""

from __future__ import annotations

from pathlib import Path

from tests.reliability.load import PredictLoad
from tests.server.harness import Models, Server, install_version, ok_json, start_server, wait_for

SWAPS = 40
SETTLED_AFTER = 10
LOAD = 120.0  # one version's load on a busy 2-core machine


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc status")


def states(server: Server) -> dict[str, str]:
    status = ok_json(server.get("/v1/models/linear"))
    return {s["version"]: s["state"] for s in status["model_version_status"]}


def closed(server: Server, version: int) -> bool:
    return f"Closed servable version {{name: linear version: {version}}}" in server.log()


def test_resident_memory_stays_flat_over_version_swaps(models: Models, tmp_path: Path) -> None:
    base = tmp_path / "linear"
    install_version(models.linear_keras, base, "1")
    server = start_server(["--model_name=linear", f"--model_base_path={base}",
                           "--file_system_poll_wait_seconds=0.1"], tmp_path / "server.log")
    load = PredictLoad(server.port, "/v1/models/linear:predict", threads=1, max_requests=10**7,
                       deadline_s=3600)
    load.start()
    settled = None
    try:
        for version in range(2, SWAPS + 2):
            install_version(models.linear_keras, base, str(version))
            wait_for(lambda v=version: states(server).get(str(v)) == "AVAILABLE"
                     and states(server).get(str(v - 1)) == "END", LOAD)
            wait_for(lambda v=version: closed(server, v - 1), LOAD)  # its Session was closed
            if version - 1 == SETTLED_AFTER:
                settled = rss_bytes(server.process.pid)
        final = rss_bytes(server.process.pid)
    finally:
        outcomes = load.stop()
        server.stop()
    assert settled is not None
    failed = [o for o in outcomes if o.status != 200]
    assert failed == [], f"{len(failed)} of {len(outcomes)} requests failed during the swaps"
    assert final <= settled * 1.10, (f"RSS grew from {settled / 2**20:.0f} MiB after swap {SETTLED_AFTER} "
                                     f"to {final / 2**20:.0f} MiB after swap {SWAPS}")
