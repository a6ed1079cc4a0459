"""`python -m pipeline.loadtest` against a real server: the numbers are there and sane (no timing
bounds), errors are counted by status, a refusing model and an unreachable server are said at once,
the gRPC side never loads TensorFlow, and a run that is stopped, loses its server or asks for more
connections than the machine has ends with a clear message and what it measured so far."""

from __future__ import annotations

import json
import resource
import threading
from pathlib import Path

import requests

from pipeline.loadtest import job
from pipeline.loadtest.spec import LoadSpec
from pipeline.loadtest.sweep import Events, run_sweep
from tests.loadtest.conftest import MODEL, Served, run_cli
from tests.support.net import free_port, stop_process, wait_for
from tests.support.no_tensorflow import SEEN, run_watched

FAST = ("--duration", "1", "--warmup", "0.3")
BAD = {"instances": [[1.0, 2.0, 3.0]]}
"""Three features for a model that takes two: the model refuses it."""


def levels_of(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def assert_sane(level: dict, concurrency: int) -> None:
    """A level of a healthy run: every field there, counts that add up, ordered percentiles."""
    assert level["concurrency"] == concurrency
    assert level["requests_per_second"] > 0 and level["ok_per_second"] == level["requests_per_second"]
    assert level["errors"] == 0 and level["error_kinds"] == {}
    assert level["ok"] == level["answered"] == level["requests"] > 0
    assert 0 < level["p50_ms"] <= level["p90_ms"] <= level["p99_ms"] <= level["max_ms"]
    assert level["clients_connected"] == concurrency
    assert abs(level["requests_per_second"] * level["duration_s"] - level["answered"]) < 1


def test_each_level_is_measured_and_the_server_saw_every_answer(server: Served) -> None:
    before = server.answered_ok()
    done = run_cli("--url", server.url, "--model", MODEL, "--concurrency", "1,4", *FAST,
                   "--ceiling-duration", "0.5", "--json")
    assert done.returncode == 0, done.stderr
    levels = levels_of(done.stdout)
    assert [level["concurrency"] for level in levels] == [1, 4]
    for level, concurrency in zip(levels, (1, 4), strict=True):
        assert_sane(level, concurrency)
        assert level["generator_ceiling_rps"] > 0
        stages = {stage["key"]: stage for stage in level["server"]["stages"]}
        assert stages["request"]["count"] > 0 and stages["request"]["mean"] > 0  # the server's own view
    # the server counted at least every answer the tool counted (warm-ups and the check come on top)
    assert server.answered_ok() - before >= sum(level["answered"] for level in levels)
    assert "an example built from the signature" in done.stderr and '[[0.0, 0.0]]' in done.stderr


def test_the_table_names_every_level_and_the_breakdown(server: Served) -> None:
    done = run_cli("--url", server.url, "--model", MODEL, "--concurrency", "2", *FAST,
                   "--ceiling-duration", "0", "--version", "1", "--quiet")
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.splitlines()[:2]
    assert header.split()[:3] == ["level", "req/s", "ok/s"] and row.startswith("concurrency 2")
    assert "whole request in the server" in done.stdout


def test_grpc_load_counts_answers_without_loading_tensorflow(server: Served) -> None:
    """The gRPC side builds TF Serving's PredictRequest from the JSON body with the project's own
    protos: neither the tool nor its first request imports TensorFlow."""
    args = ["--url", server.url, "--grpc", server.grpc, "--model", MODEL, "--concurrency", "2", *FAST,
            "--ceiling-duration", "0", "--json", "--quiet"]
    script = ("import sys\nfrom pipeline.loadtest.__main__ import main\n"
              f"code = main({args!r})\nprint('EXIT', code, {SEEN})\n")
    done = run_watched(script)
    assert done.returncode == 0, done.stderr
    (level,) = levels_of(done.stdout)
    assert_sane(level, 2)
    assert level["transport"] == "gRPC"
    assert done.stdout.splitlines()[-1] == "EXIT 0 []"


def test_errors_are_counted_by_status_with_the_servers_own_message(server: Served, tmp_path: Path) -> None:
    body = tmp_path / "bad.json"
    body.write_text(json.dumps(BAD))
    direct = requests.post(f"{server.url}/v1/models/{MODEL}:predict", json=BAD, timeout=30)
    assert direct.status_code == 400
    done = run_cli("--url", server.url, "--model", MODEL, "--body", str(body), "--concurrency", "2", *FAST,
                   "--ceiling-duration", "0", "--expect-errors", "--json", "--quiet")
    assert done.returncode == 0, done.stderr
    (level,) = levels_of(done.stdout)
    assert level["errors"] == level["answered"] > 0 and level["ok"] == 0
    assert level["error_kinds"] == {"HTTP 400": level["errors"]}
    assert level["error_examples"]["HTTP 400"] == direct.json()["error"][:300]


def test_a_refusing_model_is_reported_before_any_load(server: Served, tmp_path: Path) -> None:
    body = tmp_path / "bad.json"
    body.write_text(json.dumps(BAD))
    before = server.answered_ok()
    done = run_cli("--url", server.url, "--model", MODEL, "--body", str(body), "--concurrency", "2", *FAST,
                   "--json", "--quiet")
    assert done.returncode == 1
    assert done.stdout == ""
    assert "the model refuses this request" in done.stderr and "HTTP 400" in done.stderr
    assert "--expect-errors" in done.stderr
    assert server.answered_ok() == before


def test_an_unreachable_server_is_said_at_once() -> None:
    closed = free_port()
    done = run_cli("--url", f"http://127.0.0.1:{closed}", "--model", MODEL, "--quiet")
    assert done.returncode == 1 and "connection refused" in done.stderr and done.stdout == ""
    assert "cannot load-test" in done.stderr


def test_an_unreachable_grpc_target_is_said_at_once(server: Served) -> None:
    closed = free_port()
    done = run_cli("--url", server.url, "--grpc", f"127.0.0.1:{closed}", "--model", MODEL, "--quiet")
    assert done.returncode == 1 and f"no answer from 127.0.0.1:{closed}" in done.stderr


def test_open_loop_sends_at_the_rate_asked_never_more(server: Served) -> None:
    done = run_cli("--url", server.url, "--model", MODEL, "--rate", "40", "--concurrency", "8", *FAST,
                   "--ceiling-duration", "0", "--json", "--quiet")
    assert done.returncode == 0, done.stderr
    (level,) = levels_of(done.stdout)
    assert level["rate"] == 40 and 0 < level["answered"] <= 40 * level["duration_s"] + 2
    assert level["p50_ms"] > 0


def test_a_concurrency_the_machine_cannot_open_is_skipped_and_said(server: Served) -> None:
    """With `ulimit -n 256` two workers can hold about 380 connections: 5,000 is refused before it
    starts, with the numbers; the level it can give is measured and kept."""
    def lower_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    done = run_cli("--url", server.url, "--model", MODEL, "--concurrency", "2,5000", *FAST, "--workers", "2",
                   "--ceiling-duration", "0", "--json", "--quiet", preexec_fn=lower_limit)
    assert done.returncode == 1
    (level,) = levels_of(done.stdout)
    assert_sane(level, 2)
    assert "concurrency 5000 needs 5,000 connections" in done.stderr and "ulimit -n" in done.stderr


def process_group(leader: int) -> list[int]:
    """Processes whose process group is `leader` (a run's child and its workers)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == leader and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def test_stop_ends_a_run_at_once_and_keeps_the_level_in_progress(server: Served, tmp_path: Path) -> None:
    spec = LoadSpec(url=server.url, model=MODEL, concurrency=(2,), duration_s=600, warmup_s=0.2, ceiling_s=0)
    folder = job.start_run(tmp_path / "runs", spec)
    record = json.loads((folder / job.PROCESS).read_text())

    def measuring() -> bool:
        state = job.read_run(folder)
        assert state.running, state.message
        return state.progress.get("ok", 0) > 0

    wait_for(measuring, 180, interval=0.1)
    job.stop_run(folder)
    state = job.read_run(folder)
    assert state.status == "stopped" and not state.running
    (level,) = state.result.levels
    assert level.partial and level.answered > 0 and level.duration_s < 600
    wait_for(lambda: process_group(record["pid"]) == [], 60, interval=0.1)  # the workers are gone too
    idle = server.answered_ok()
    assert job.read_run(folder).status == "stopped"
    assert server.answered_ok() == idle


def test_a_server_that_goes_away_ends_the_sweep_with_what_was_measured(own_server) -> None:
    """The server dies after the first level: the next one gets no answer at all, the sweep says
    the server stopped answering, and the first level is kept."""
    served = own_server()

    def kill_after_first(level, so_far) -> None:
        if len(so_far.levels) == 1:
            served.process.kill()
            served.process.wait(30)

    spec = LoadSpec(url=served.url, model=MODEL, concurrency=(1, 2, 4), duration_s=1, warmup_s=0.2,
                    ceiling_s=0, metrics=False)
    result = run_sweep(spec, Events(level=kill_after_first), threading.Event())
    assert result.status == "failed" and "the server stopped answering at concurrency 2" in result.message
    assert "connection refused" in result.message
    first, second = result.levels
    assert first.answered > 0 and first.errors == 0
    assert second.answered == 0 and set(second.error_kinds) == {"connection refused"}
    stop_process(served.process)

