"""`python -m bench [--quick] [--only server,...] [--before REV]`: run the benchmarks, print one report.

Sections (names for ``--only``): the 1-row ``:predict`` contenders ``server``, ``batching``,
``starlette``, ``kserve``, ``raw``; then ``rows10k`` (a 10,000-row request vs the in-process
floor), ``training`` (``train()`` vs a bare ``model.fit`` at 1,000,000 samples), ``paint`` (the
dashboard's first paint vs a one-line Streamlit app) and ``grpc`` (1-row Predict over gRPC with
h2load vs our REST, KServe's gRPC endpoint and a canned-reply grpcio floor,
``bench/grpc_bench.py``), ``batch`` (Spark batch scoring vs the in-process floor and 10,000-row
REST requests, ``bench/batch_bench.py``), ``loadtest`` (``python -m pipeline.loadtest`` against wrk
over REST and h2load over gRPC at the same concurrency on the same server, ``bench/loadtest_bench.py``),
``logging`` (1-row ``:predict`` at 32 connections with no ``logging_config``, sampling rate 0.0
and 1.0, ``bench/logging_bench.py``) and ``swaps`` (the server's RSS over 200 version swaps,
``bench/swap_memory.py``) and ``predict10k`` (10,000 rows sent from the Predict page in Chromium, Send to
a settled page, against issue 20's 2 s, ``bench/predict10k.py``). The first-paint row is also set
against the first-paint ratio of the checked-in ``bench/results.md`` (read before the run, whatever
``--out``; issue 20: within 10%). The two apps are painted in 5 rounds (quick: 1), each app once per
round, alternating which goes first; the first-paint ratio is the median of the rounds' ratios.
The 1-row ``:predict`` contenders run side by side and each point is measured in interleaved rounds
(``--rounds``, default 3: every contender in turn, forwards then backwards; the median round is
reported and a ratio is the median of the rounds' ratios). Other sections start their contenders one
at a time. All of it on loopback; the report goes to ``bench/results.md`` and stdout,
progress to stderr. A section that cannot run (no ``--enable_batching``, KServe install failed, ...)
says so in the report instead of failing.

``--before REV`` (``make bench BEFORE=REV``) compares this checkout with another revision in one run:
REV is resolved with ``git rev-parse`` and its tree unpacked by ``git archive`` into
``bench/.work/before-<short sha>/`` (``bench/before.py``; reused when present). Each selected server
variant (``server``, ``batching``) gets a twin started in that tree with the same flags (its
``python -m pipeline.serving`` imports the tree's ``pipeline``, checked before measuring), in the
same interleaved rounds; the gRPC section runs REV's server (batching off) beside ours the same way at
every in-flight level. ``÷ before`` is the median of the rounds' paired ratios, shown with their
range. Issue 19's "at least as fast as before" (1-row at 32 connections with batching on; gRPC at 32
in flight) passes when that median is ≥ 0.95: single samples spread ±20% on a 2-core machine and a
paired median of 3 rounds still moves a few percent, so 1.00 would fail an unchanged server about
half the time (``bench.report.BEFORE_PASS``). A REV that cannot be resolved, unpacked or started is
reported as unavailable (targets n/a), never a crash. ``--no-kserve`` skips KServe everywhere.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path

from bench import before
from bench import contenders as cs
from bench.load import LoadError, run_load, wrk_available, wrk_version
from bench.report import (
    BEFORE_TWINS,
    CONNECTIONS,
    CONTENDERS,
    PAINT_WHAT,
    PREDICT10K_TARGET_S,
    PREDICT10K_WHAT,
    BenchResults,
    Comparison,
    previous_paint_ratio,
    render,
    round_ratios,
)

SECTIONS = (*CONTENDERS, "rows10k", "training", "paint", "predict10k", "grpc", "batch", "loadtest", "logging",
            "swaps")
BIG_ROWS = 10_000
TRAIN_SAMPLES = 1_000_000
LOG_DIR = cs.WORK / "logs"


@dataclass(frozen=True)
class Settings:
    """How long and how much to measure; ``--quick`` shortens everything for a smoke run."""

    duration_s: float
    warmup_s: float
    connections: tuple[int, ...]
    train_epochs: int
    paint_repeats: int
    only: tuple[str, ...]
    use_wrk: bool
    out: Path
    kserve_timeout_s: float
    quick: bool = False
    rounds: int = 3
    """Interleaved rounds per 1-row ``:predict`` point (the median round is reported)."""
    before: str = ""
    """``--before REV``: also run REV's server beside ours, paired (empty: ours only)."""
    kserve: bool = True
    """False with ``--no-kserve``: KServe is neither installed nor measured (REST or gRPC)."""


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 s per point, 2 epochs, 1 paint each")
    parser.add_argument("--only", default="", help=f"comma-separated sections: {','.join(SECTIONS)}")
    parser.add_argument("--duration", type=float, help="seconds per measured point (default 10; quick 2)")
    parser.add_argument("--no-wrk", action="store_true",
                        help="use the asyncio load generator even if wrk exists")
    parser.add_argument("--out", type=Path, default=cs.REPO / "bench" / "results.md")
    parser.add_argument("--kserve-install-timeout", type=float, default=900.0)
    parser.add_argument("--rounds", type=int, help="interleaved rounds per 1-row :predict point "
                                                   "(default 3; quick 1)")
    parser.add_argument("--before", default="", metavar="REV",
                        help="also measure REV's server (git archive into bench/.work/before-<sha>/) beside "
                             "ours in the same rounds: 1-row :predict (server, batching) and gRPC")
    parser.add_argument("--no-kserve", action="store_true",
                        help="skip KServe everywhere (no install): its REST contender and its gRPC rows")
    args = parser.parse_args(argv)
    only = tuple(s.strip() for s in args.only.split(",") if s.strip()) or SECTIONS
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    if args.no_kserve:
        only = tuple(key for key in only if key != "kserve")
    duration = args.duration or (2.0 if args.quick else 10.0)
    return Settings(
        duration_s=duration, warmup_s=1.0 if args.quick else 3.0, connections=CONNECTIONS,
        train_epochs=2 if args.quick else 5, paint_repeats=1 if args.quick else 5, only=only,
        use_wrk=not args.no_wrk, out=args.out, kserve_timeout_s=args.kserve_install_timeout,
        quick=args.quick, rounds=max(1, args.rounds or (1 if args.quick else 3)),
        before=args.before.strip(), kserve=not args.no_kserve,
    )


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def _command_line(command: list[str]) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=30, cwd=cs.REPO)
    except (OSError, subprocess.TimeoutExpired):
        return "absent"
    return (out.stdout.strip() or out.stderr.strip() or "unknown").splitlines()[0]


def machine_facts(settings: Settings) -> dict[str, str]:
    """Date, machine, versions and settings: what a reader needs to weigh the numbers."""
    cpu = "unknown"
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    tool = wrk_version() if settings.use_wrk and wrk_available() else "asyncio fallback (bench/load.py)"
    return {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "commit": _command_line(["git", "rev-parse", "--short", "HEAD"]),
        "CPU": f"{cpu}, {os.cpu_count()} cores",
        "load average at start (1/5/15 min)": " / ".join(f"{v:.2f}" for v in os.getloadavg()),
        "Python / TensorFlow / Keras": f"{platform.python_version()} / {_version('tensorflow')} / "
                                       f"{_version('keras')}",
        "uvicorn / starlette / streamlit": f"{_version('uvicorn')} / {_version('starlette')} / "
                                           f"{_version('streamlit')}",
        "load generator": tool,
        "Chromium": _command_line(["/usr/bin/chromium", "--version"]),
        "settings": f"{settings.duration_s:g} s per point after {settings.warmup_s:g} s warm-up; "
                    f"1-row points: median of {settings.rounds} interleaved round(s); "
                    f"training {settings.train_epochs} epochs; "
                    f"first paint {settings.paint_repeats} paired round(s)",
    }


def inprocess(*args: str, timeout_s: float = 1800.0) -> dict:
    """Run ``python -m bench.inprocess ARGS`` and return the JSON it prints last."""
    out = subprocess.run([sys.executable, "-m", "bench.inprocess", *args], cwd=cs.REPO,
                         env=cs.subprocess_env(), capture_output=True, text=True, timeout=timeout_s)
    if out.returncode != 0:
        raise RuntimeError(f"bench.inprocess {args[0]} exited {out.returncode}: {out.stderr.strip()[-1500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_bodies(work: Path) -> tuple[Path, Path]:
    """The 1-row body and a seeded 10,000-row body, as files for wrk."""
    work.mkdir(parents=True, exist_ok=True)
    one = work / "one_row.json"
    one.write_bytes(cs.ONE_ROW)
    rng = random.Random(0)
    rows = [[round(rng.uniform(-10, 10), 4), round(rng.uniform(-10, 10), 4)] for _ in range(BIG_ROWS)]
    big = work / "rows10k.json"
    big.write_text(json.dumps({"instances": rows}))
    return one, big


def _predict_contender(key: str, settings: Settings, base_path: Path, version_dir: Path,
                       results: BenchResults) -> cs.Contender | None:
    """The contender for a 1-row ``:predict`` key, or None (the reason noted in ``results``)."""
    if key in ("server", "batching"):
        batching = key == "batching"
        available = cs.batching_available()
        if batching and not available:
            results.unavailable[key] = "batching: not available (no --enable_batching in --help)"
            return None
        # The server's own default may be either; always say which one is measured.
        return cs.server(base_path, batching, explicit=available)
    if key == "starlette":
        return cs.plain_starlette(version_dir)
    if key == "raw":
        return cs.raw_asgi()
    say("installing KServe into bench/.work/kserve-venv (first run only)")
    python, note = cs.ensure_kserve_venv(cs.WORK / "kserve-venv", settings.kserve_timeout_s,
                                         LOG_DIR / "kserve-install.log")
    if python is None:
        results.unavailable[key] = f"KServe {note}"
        return None
    results.facts["KServe"] = note
    return cs.kserve(version_dir, python)


def resolve_before(settings: Settings, results: BenchResults) -> before.BeforeTree | None:
    """``--before REV``'s tree (unpacked, checked to be what its children import), named in the
    machine facts; None without ``--before`` or when REV cannot be used (the reason in ``results``)."""
    if not settings.before:
        return None
    say(f"--before {settings.before}: unpacking its tree into bench/.work/")
    try:
        tree = before.materialise(settings.before)
        imported = before.imported_from(tree.path)
    except (before.BeforeError, OSError, subprocess.SubprocessError) as error:
        say(f"--before {settings.before} unavailable: {error}")
        results.before_unavailable = f"{settings.before} unavailable: {str(error).splitlines()[0]}"
        results.facts["before"] = results.before_unavailable
        return None
    results.before = tree.label
    results.facts["before"] = (f"{tree.short} ({tree.sha[:12]}; `--before {settings.before}`), its tree in "
                               f"{tree.path.relative_to(cs.REPO)}; its children import "
                               f"{imported.relative_to(cs.REPO)}")
    return tree


def _before_twin(key: str, base_path: Path, tree: before.BeforeTree,
                 results: BenchResults) -> cs.Contender | None:
    """REV's server with the same batching choice as our ``key`` (``server`` or ``batching``), or
    None (why in ``results.unavailable``) when REV's server has no ``--enable_batching`` to ask for it."""
    batching = key == "batching"
    try:
        available = cs.batching_available(cwd=tree.path)
    except (OSError, subprocess.SubprocessError) as error:
        results.unavailable[BEFORE_TWINS[key]] = f"--help failed: {str(error).splitlines()[0]}"
        return None
    if batching and not available:
        results.unavailable[BEFORE_TWINS[key]] = "no --enable_batching in its --help"
        return None
    return cs.server(base_path, batching, explicit=available, cwd=tree.path)


def _start(key: str, contender: cs.Contender, running: dict[str, cs.Running], results: BenchResults) -> None:
    """Start one contender into ``running``; a failure is noted in ``results.unavailable``."""
    say(f"starting {key}")
    try:
        running[key] = cs.start(contender, LOG_DIR)
    except (cs.ContenderError, OSError, subprocess.SubprocessError) as error:
        say(f"{key} failed to start: {error}")
        results.unavailable[key] = f"failed to start: {str(error).splitlines()[0]}"


def run_predict(settings: Settings, base_path: Path, version_dir: Path, body: Path,
                results: BenchResults, tree: before.BeforeTree | None = None) -> None:
    """Every selected 1-row ``:predict`` contender, running side by side, measured in interleaved
    rounds: at each connection count, ``settings.rounds`` rounds in which every contender gets one
    point in turn (forwards, then backwards), so a ratio pairs points measured moments apart and a
    machine that slows down or speeds up during the run moves both sides of it. With ``tree``
    (``--before``), each of our server variants selected has a twin from that tree in the rounds."""
    running: dict[str, cs.Running] = {}
    try:
        for key in CONTENDERS:
            if key not in settings.only:
                continue
            contender = _predict_contender(key, settings, base_path, version_dir, results)
            if contender is None:
                continue
            _start(key, contender, running, results)
            if tree is not None and key in BEFORE_TWINS:
                twin = _before_twin(key, base_path, tree, results)
                if twin is not None:
                    _start(twin.key, twin, running, results)
        for conns in settings.connections:
            failed: dict[str, str] = {}
            for round_index in range(settings.rounds):
                order = list(running) if round_index % 2 == 0 else list(reversed(running))
                for key in order:
                    if key in failed:
                        continue
                    say(f"{key}: {conns} connections, round {round_index + 1} of {settings.rounds}")
                    try:
                        url = running[key].url
                        run_load(url, body, conns, settings.warmup_s, cs.WORK, settings.use_wrk)
                        results.add_round(key, conns, run_load(url, body, conns, settings.duration_s, cs.WORK,
                                                               settings.use_wrk))
                    except LoadError as error:
                        failed[key] = f"load failed: {str(error).splitlines()[0]}"
            for key, reason in failed.items():
                results.drop_point(key, conns, reason)
    finally:
        for contender in running.values():
            contender.stop()


def run_rows10k(settings: Settings, base_path: Path, version_dir: Path, big: Path) -> Comparison:
    """A 10,000-row request through the server (1 connection) vs the in-process floor."""
    running = cs.start(cs.server(base_path, batching=False), LOG_DIR)
    try:
        say("rows10k: server")
        run_load(running.url, big, 1, settings.warmup_s, cs.WORK, settings.use_wrk)
        served = run_load(running.url, big, 1, settings.duration_s, cs.WORK, settings.use_wrk)
    finally:
        running.stop()
    say("rows10k: in-process floor")
    floor = inprocess("floor", f"--model_dir={version_dir}", f"--body={big}",
                      f"--duration={settings.duration_s}")
    note = f"1 connection; {served.requests} requests"
    if served.errors:
        note += f", {served.errors} errors"
    return Comparison(f"{BIG_ROWS:,}-row `:predict`", "rows/s", served.rps * BIG_ROWS, "this server",
                      floor["rows_per_s"], "orjson.loads + signature + orjson.dumps, in process", note)


def run_training(settings: Settings) -> Comparison:
    """``train()`` vs a bare ``model.fit`` on the same data, model and batch size."""
    common = (f"--samples={TRAIN_SAMPLES}", f"--epochs={settings.train_epochs}")
    say("training: pipeline.training.train")
    ours = inprocess("train", "--which=pipeline", *common)
    say("training: bare model.fit")
    bare = inprocess("train", "--which=bare", *common)
    return Comparison(f"training, {TRAIN_SAMPLES:,} samples × {settings.train_epochs} epochs", "samples/s",
                      ours["samples_per_s"], "train()", bare["samples_per_s"], "bare model.fit",
                      f"batch size {ours['batch_size']}; fit time only")


def run_paint(settings: Settings) -> Comparison:
    """The dashboard's first paint vs the one-line app's, in interleaved rounds, paired (the
    dashboard is skipped if absent)."""
    import statistics

    from bench import paint

    apps = {"one-line": paint.ONE_LINE_APP}
    if paint.DASHBOARD.exists():
        apps = {"dashboard": paint.DASHBOARD, **apps}
    say(f"first paint: {', '.join(apps)} × {settings.paint_repeats}")
    samples = paint.first_paints(apps, settings.paint_repeats, LOG_DIR)
    one_line = samples["one-line"]
    note = f"median of {settings.paint_repeats}; no model server (AUTOSTART_SERVER=0)"
    if "dashboard" not in samples:
        return Comparison(PAINT_WHAT, "s", None, "dashboard/app.py", statistics.median(one_line),
                          "one-line app", "dashboard/app.py not found: one-line app only; " + note)
    dashboard = samples["dashboard"]
    rounds = ", ".join(f"{d / o:.2f}" for d, o in zip(dashboard, one_line, strict=True))
    note += (f"; both apps in each of {len(dashboard)} round(s) (alternating which goes first), the ratio "
             f"the median of the rounds' ratios ({rounds})")
    return Comparison(PAINT_WHAT, "s", statistics.median(dashboard), "dashboard/app.py",
                      statistics.median(one_line), "one-line app", note,
                      paired=statistics.median(round_ratios(dashboard, one_line)))


def run_predict10k(settings: Settings, base_path: Path) -> Comparison:
    """10,000 rows from Send to a settled Predict page in Chromium (median), against issue 20's 2 s."""
    import statistics

    from bench import predict10k

    timed = predict10k.measure(base_path, cs.WORK, LOG_DIR, settings.paint_repeats, say)
    load = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    note = (f"median of {len(timed)} ({', '.join(f'{t:.2f}' for t in timed)} s) after one untimed send; "
            "the embedded server's own command (batching on, max_batch_size 50,000); "
            f"load average after {load}")
    return Comparison(PREDICT10K_WHAT, "s", statistics.median(timed), "dashboard + server",
                      PREDICT10K_TARGET_S, "issue 20's bar", note)


def _section(results: BenchResults, key: str, what: str, run: Callable[[], Comparison]) -> None:
    """Run one floor comparison; a failure becomes a note in the report."""
    try:
        results.comparisons[key] = run()
    except Exception as error:  # noqa: BLE001 (any failure is reported, the bench goes on)
        say(f"{key} failed: {error}")
        results.comparisons[key] = Comparison(what, "", None, "", None, "",
                                              f"failed: {str(error).splitlines()[0][:200]}")


def run_batch(settings: Settings, base_path: Path) -> str:
    """Batch scoring rows/s on Spark `local[2]` beside the in-process floor and 10,000-row REST
    requests to our server, as a report section; a section that cannot run says why."""
    title = "## Batch scoring (Spark `local[2]`)\n\n"
    rows = 200_000 if settings.quick else 1_000_000
    try:
        from bench import batch_bench

        say("batch: starting our server for the REST row")
        # batching off (TF Serving's default): requests come one after another, and with batching
        # on TF Serving's default max_batch_size (1,000) refuses a 10,000-row request
        running = cs.start(cs.server(base_path, batching=False), LOG_DIR)
        try:
            # in its own process: Spark's JVM lives until the Python process that started it exits,
            # and must not keep using CPU while the sections after this one measure
            out = subprocess.run(
                [sys.executable, "-m", "bench.batch_bench", f"--model-base-path={base_path}",
                 f"--rows={rows}", f"--server-url={running.base_url}", f"--model-name={cs.MODEL_NAME}",
                 f"--repeats={1 if settings.quick else 3}", "--json"],
                cwd=cs.REPO, env=cs.subprocess_env(), capture_output=True, text=True, timeout=3600)
        finally:
            running.stop()
        if out.returncode != 0:
            raise RuntimeError(f"bench.batch_bench exited {out.returncode}: {out.stderr.strip()[-500:]}")
        measured = batch_bench.BatchBench(**json.loads(out.stdout.strip().splitlines()[-1]))
        return title + measured.table() + "\n"
    except Exception as error:  # noqa: BLE001 (reported, the bench goes on)
        say(f"batch failed: {error}")
        return title + f"failed: {str(error).splitlines()[0][:200]}\n"


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    results = BenchResults(facts=machine_facts(settings))
    baseline = cs.REPO / "bench" / "results.md"  # the report this run's first paint is set against
    with contextlib.suppress(OSError, UnicodeDecodeError):
        results.previous_paint_ratio = previous_paint_ratio(baseline.read_text())
    base_path = cs.WORK / "models" / cs.MODEL_NAME
    say("preparing the model")
    version_dir = Path(inprocess("prepare", f"--base_path={base_path}")["version_dir"])
    one, big = write_bodies(cs.WORK)
    tree = resolve_before(settings, results)
    run_predict(settings, base_path, version_dir, one, results, tree)
    if "rows10k" in settings.only:
        _section(results, "rows10k", f"{BIG_ROWS:,}-row `:predict`",
                 lambda: run_rows10k(settings, base_path, version_dir, big))
    if "training" in settings.only:
        _section(results, "training", "training", lambda: run_training(settings))
    if "paint" in settings.only:
        _section(results, "paint", "first paint", lambda: run_paint(settings))
    if "predict10k" in settings.only:
        _section(results, "predict10k", PREDICT10K_WHAT, lambda: run_predict10k(settings, base_path))
    grpc_section = ""
    if "grpc" in settings.only:  # 1-row Predict over gRPC with h2load (bench/grpc_bench.py)
        from bench import grpc_bench

        try:
            grpc_section = grpc_bench.run(base_path, cs.WORK, LOG_DIR, settings.duration_s,
                                          settings.warmup_s, say,
                                          kserve_install_timeout_s=settings.kserve_timeout_s,
                                          kserve=settings.kserve, before=tree, rounds=settings.rounds,
                                          before_note=results.before_unavailable)
        except Exception as error:  # noqa: BLE001 (reported, the bench goes on)
            say(f"grpc failed: {error}")
            grpc_section = f"## 1-row Predict over gRPC\n\nfailed: {str(error).splitlines()[0][:200]}\n"
    batch_section = ""
    if "batch" in settings.only:  # batch scoring on Spark vs in-process vs REST (bench/batch_bench.py)
        batch_section = run_batch(settings, base_path)
    swaps_section = ""
    if "swaps" in settings.only:  # RSS over version swaps (bench/swap_memory.py)
        from bench import swap_memory

        try:
            swaps_section = swap_memory.run(version_dir, one.read_bytes(), cs.WORK, LOG_DIR,
                                            40 if settings.quick else 200, say)
        except Exception as error:  # noqa: BLE001 (reported, the bench goes on)
            say(f"swaps failed: {error}")
            swaps_section = f"## Memory over version swaps\n\nfailed: {str(error).splitlines()[0][:200]}\n"
    loadtest_section = ""
    if "loadtest" in settings.only:  # the load tool vs wrk and h2load (bench/loadtest_bench.py)
        from bench import loadtest_bench

        try:
            loadtest_section = loadtest_bench.run(base_path, cs.WORK, LOG_DIR, settings.duration_s,
                                                  settings.warmup_s, say, repeats=1 if settings.quick else 3)
        except Exception as error:  # noqa: BLE001 (reported, the bench goes on)
            say(f"loadtest failed: {error}")
            loadtest_section = ("## The load tool against wrk and h2load\n\n"
                                f"failed: {str(error).splitlines()[0][:200]}\n")
    logging_section = ""
    if "logging" in settings.only:  # what request logging costs (bench/logging_bench.py)
        from bench import logging_bench

        try:
            logging_section = logging_bench.run(base_path, cs.WORK, LOG_DIR, one, settings.duration_s,
                                                settings.warmup_s, say, settings.use_wrk, settings.quick)
        except Exception as error:  # noqa: BLE001 (reported, the bench goes on)
            say(f"logging failed: {error}")
            logging_section = f"## Request logging\n\nfailed: {str(error).splitlines()[0][:200]}\n"
    results.facts["load average at end"] = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    sections = (grpc_section, batch_section, loadtest_section, logging_section, swaps_section)
    report = render(results) + "".join("\n" + part for part in sections if part)
    settings.out.parent.mkdir(parents=True, exist_ok=True)
    settings.out.write_text(report)
    print(report)
    say(f"written to {settings.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
