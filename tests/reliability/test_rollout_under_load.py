"""Rollouts under load: 16 connections keep sending :predict while versions are exported, rolled back
and deleted underneath a server that polls every 0.2 s. Every request must be answered 200, by one
version, and by a version that was AVAILABLE while the request was in flight (seen in a status
timeline polled in a side thread); no request may be answered by an older version once a newer one
was AVAILABLE throughout. Zero errors, zero dropped connections. Once without and once with
server-side batching.

Each export is the tutorial's Keras model with weights w = [1, 0] and its own bias, so an answer
`x1 + bias` names the export that produced it, and each row is checked against its own input.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.store import versions as registry
from tests.reliability.conftest import LOAD_TIMEOUT, export_linear, wait_states
from tests.reliability.load import Outcome, PredictLoad, StatusTimeline, available_windows
from tests.server.harness import BATCHING_MODES, start_server

POLL = 0.2
MIN_REQUESTS = 5000
THREADS = 16
CONFIG = """
model_config_list {{
  config {{
    name: 'linear_model' base_path: '{base}' model_platform: 'tensorflow'
      model_version_policy {{ latest {{ num_versions: 2 }} }}
  }}
}}
"""


@dataclass(frozen=True)
class Export:
    bias: int
    version: int
    started: float  # before export_version was called: the version cannot exist on disk earlier


def _churn(base: Path, timeline: StatusTimeline, exports: list[Export]) -> None:
    """5 exports, 2 deletions of old versions and 1 rollback (deletion of the newest), each step
    waited for in the status, so that every version really takes and leaves the traffic. The waits
    poll through the timeline, so each state waited for is on it however starved its side thread."""

    def settle(expected: dict[int, str]) -> None:
        timeline.wait_states(expected, LOAD_TIMEOUT)

    def export(bias: int) -> int:
        started = time.monotonic()
        version = export_linear(base, float(bias))
        exports.append(Export(bias, version, started))
        return version

    assert export(2) == 2
    settle({2: "AVAILABLE", 1: "AVAILABLE"})
    assert export(3) == 3
    settle({3: "AVAILABLE", 2: "AVAILABLE", 1: "END"})
    registry.delete_version(base, 1)                         # old and already unloaded
    assert export(4) == 4
    settle({4: "AVAILABLE", 3: "AVAILABLE", 2: "END"})
    registry.delete_version(base, 2)                         # old
    registry.delete_version(base, 4)                         # rollback: the newest goes, 3 serves again
    settle({4: "END", 3: "AVAILABLE"})
    assert export(5) == 5                                    # numbers are never reused: 4 stays gone
    settle({5: "AVAILABLE", 3: "AVAILABLE"})
    assert export(6) == 6
    settle({6: "AVAILABLE", 5: "AVAILABLE", 3: "END"})


def _check(outcomes: list[Outcome], timeline, exports: list[Export]) -> dict[str, int]:
    """Every answer 200, from one export, AVAILABLE while the request ran, never stale."""
    windows = available_windows(timeline)
    by_bias: dict[int, list] = {e.bias: [] for e in exports}
    for window in windows:  # each AVAILABLE run belongs to the latest export of that number before it
        owner = max((e for e in exports if e.version == window.version and e.started < window.first_seen),
                    key=lambda e: e.started)
        by_bias[owner.bias].append(window)
    problems, answered = [], set()
    for o in outcomes:
        if o.status != 200:
            problems.append(f"{o.status} {o.error or o.body[:200]!r}")
            continue
        predictions = json.loads(o.body)["predictions"]
        biases = {round(p[0] - x1, 3) for p, (x1, _) in zip(predictions, o.rows, strict=True)}
        if len(predictions) != len(o.rows) or len(biases) != 1 or next(iter(biases)) not in by_bias:
            problems.append(f"rows {o.rows} answered {predictions}")
            continue
        bias = int(next(iter(biases)))
        answered.add(bias)
        if not any(w.outer[0] < o.ended and o.started < w.outer[1] for w in by_bias[bias]):
            problems.append(f"bias {bias} answered in [{o.started:.3f}, {o.ended:.3f}], not AVAILABLE")
        version = next(e.version for e in exports if e.bias == bias)
        stale = [w.version for w in windows
                 if w.version > version and w.certain[0] <= o.started and o.ended <= w.certain[1]]
        if stale:
            problems.append(f"bias {bias} (version {version}) answered while {stale} was AVAILABLE")
    assert problems == [], f"{len(problems)} bad answers, e.g. {problems[:5]}"
    return {"answered_exports": len(answered)}


@pytest.mark.parametrize("batching", BATCHING_MODES)
def test_rollouts_under_load_never_fail_a_request(tmp_path: Path, batching: str) -> None:
    """Batching off is the default (`--enable_batching=false` passed explicitly); `start_server` checks the
    server's start-up log for the mode, so both cases really run in the mode they name."""
    base = tmp_path / "linear_model"
    exports = [Export(1, export_linear(base, 1.0), float("-inf"))]
    config = tmp_path / "models.config"
    config.write_text(CONFIG.format(base=base))
    args = [f"--model_config_file={config}", f"--file_system_poll_wait_seconds={POLL}"]
    server = start_server(args, tmp_path / "server.log", batching=batching)
    try:
        wait_states(server, {1: "AVAILABLE"})
        timeline = StatusTimeline(server.port, "linear_model").start()
        load = PredictLoad(server.port, "/v1/models/linear_model:predict", threads=THREADS).start()
        try:
            load.wait_for(THREADS * 10, 30)
            _churn(base, timeline, exports)
            load.wait_for(load.sent + THREADS * 10, 30)  # the last export takes traffic too
            load.wait_for(MIN_REQUESTS, 120)  # keep going at least until the minimum is reached
        finally:
            outcomes = load.stop()
            samples = timeline.stop()  # after the load: its last sample follows every request's end
        assert server.process.poll() is None
    finally:
        server.stop()
    errors = [o for o in outcomes if o.status != 200]
    print(f"\nrollout ({batching}): {len(outcomes)} requests over {THREADS} "
          f"connections, {len(errors)} errors, {len(samples)} status samples")
    assert len(outcomes) >= MIN_REQUESTS
    figures = _check(outcomes, samples, exports)
    assert figures["answered_exports"] >= 5  # the churn really moved the traffic between versions
    assert "Traceback" not in server.log()
