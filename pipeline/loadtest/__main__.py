"""python -m pipeline.loadtest: how many requests a served model takes, and how fast it answers.

Closed-loop concurrency levels (or open-loop rates) against TF Serving's REST API or, with --grpc,
its gRPC API; per level requests/s, p50/p90/p99/max latency and errors by HTTP status or gRPC code,
the server's own breakdown of the same window from its Prometheus metrics, and the load
generator's own ceiling (a warning when a level comes within 80% of it). Without --body the
request is one example of every input, built from the model's signature as the Predict page builds it.

  python -m pipeline.loadtest --url http://127.0.0.1:8501 --model linear_model --concurrency 1,8,32
  python -m pipeline.loadtest --url http://127.0.0.1:8501 --grpc 127.0.0.1:8500 --model m --json

Exit status: 0 every level ran; 1 the run could not start or ended early (the message says why,
and the levels measured so far are printed); 2 a bad command line; 130 stopped with Ctrl+C.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from pipeline.loadtest.results import LevelResult, format_breakdown, format_table, json_line
from pipeline.loadtest.spec import LoadSpec, LoadTestError, check_durations, parse_levels
from pipeline.loadtest.sweep import DONE, STOPPED, Events, SweepResult, run_sweep
from pipeline.loadtest.target import body_from_history, read_body


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.loadtest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_argument_group("what to load")
    where.add_argument("--url", required=True, help="the server's REST API root, e.g. http://127.0.0.1:8501 "
                       "(metadata and metrics are read here; the load goes here unless --grpc)")
    where.add_argument("--model", required=True, help="the served model's name")
    where.add_argument("--grpc", metavar="HOST:PORT",
                       help="send the load to this gRPC target (PredictionService/Predict) instead")
    which = where.add_mutually_exclusive_group()
    which.add_argument("--version", type=int, help="a version number (default: the latest)")
    which.add_argument("--label", help="a version label (stable, canary, ...)")
    where.add_argument("--signature", default="serving_default", help="default serving_default")
    request = parser.add_argument_group(
        "the request (default: one example of every input, built from the signature)")
    source = request.add_mutually_exclusive_group()
    source.add_argument("--body", type=Path, metavar="FILE",
                        help='a JSON request body ({"instances": ...}, {"inputs": ...} or {"examples": ...})')
    source.add_argument("--body-from-history", type=Path, metavar="MODEL_BASE_PATH",
                        help="the newest answered REST request in this model folder's request history "
                        "(.history/, kept by the Predict page)")
    request.add_argument("--history-entry", metavar="ID", help="with --body-from-history: this entry")
    request.add_argument("--verb", choices=("predict", "classify", "regress"),
                         help="the REST verb (default: predict, or the signature's for an examples body)")
    request.add_argument("--expect-errors", action="store_true",
                         help="measure a request the model refuses (errors counted) instead of stopping")
    load = parser.add_argument_group("how much load")
    load.add_argument("--concurrency", default="1,8,32", metavar="N,N,...",
                      help="closed-loop levels: clients each sending its next request when answered (default "
                      "1,8,32); with --rate, the largest is the cap on requests in flight")
    load.add_argument("--rate", metavar="R,R,...",
                      help="open-loop levels: requests per second, on a schedule")
    load.add_argument("--duration", type=float, default=10.0, help="measured seconds per level (default 10)")
    load.add_argument("--warmup", type=float, default=2.0,
                      help="unmeasured seconds before each level (default 2)")
    load.add_argument("--timeout", type=float, default=30.0,
                      help="seconds before a request counts as timed out (default 30)")
    load.add_argument("--workers", type=int, default=0,
                      help="load generator processes (default: one per CPU, at most 8)")
    load.add_argument("--ceiling-duration", type=float, default=1.0, metavar="SECONDS",
                      help="seconds per level measuring the generator against a do-nothing server "
                      "(default 1; 0 skips it and its warning)")
    load.add_argument("--no-metrics", action="store_true", help="do not read the server's Prometheus metrics")
    out = parser.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="one JSON object per level on stdout")
    out.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def spec_from_args(args: argparse.Namespace) -> LoadSpec:
    """The spec the flags describe; ``ValueError`` naming a bad value, ``LoadTestError`` a body
    that cannot be read."""
    concurrency = parse_levels(args.concurrency)
    rates = parse_levels(args.rate, what="rate", integer=False) if args.rate else ()
    check_durations(args.duration, args.warmup, args.timeout)
    if args.workers < 0 or args.ceiling_duration < 0:
        raise ValueError("--workers and --ceiling-duration cannot be negative")
    body, source = None, ""
    if args.body is not None:
        body, source = read_body(args.body), f"file {args.body}"
    elif args.body_from_history is not None:
        body, source = body_from_history(args.body_from_history, args.history_entry)
    elif args.history_entry:
        raise ValueError("--history-entry needs --body-from-history")
    return LoadSpec(url=args.url, model=args.model, grpc=args.grpc, version=args.version, label=args.label,
                    signature=args.signature, body=body, body_source=source, verb=args.verb,
                    concurrency=concurrency, rates=rates, duration_s=args.duration, warmup_s=args.warmup,
                    timeout_s=args.timeout, workers=args.workers, ceiling_s=args.ceiling_duration,
                    metrics=not args.no_metrics, expect_errors=args.expect_errors)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def report(result: SweepResult, as_json: bool) -> None:
    """The levels (table, or JSON lines) on stdout; how it ended and the warnings on stderr."""
    if as_json:
        for level in result.levels:
            print(json_line(level), flush=True)
    elif result.levels:
        print(format_table(result.levels))
        print("\nserver breakdown (from its Prometheus metrics, same windows):")
        for level in result.levels:
            print("  " + format_breakdown(level))
    for warning in dict.fromkeys(result.warnings):
        _say(f"warning: {warning}")
    for skipped in result.skipped:
        _say(f"skipped: {skipped}")
    if result.status != DONE:
        _say(f"{result.status}: {result.message}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        spec = spec_from_args(args)
    except ValueError as error:
        parser.error(str(error))
    except LoadTestError as error:
        _say(f"failed: {error}")
        return 1
    stop = threading.Event()
    interrupted = []

    def on_signal(signum: int, frame: object) -> None:
        interrupted.append(signum)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    quiet = args.quiet

    def on_level(level: LevelResult, so_far: SweepResult) -> None:
        if not quiet:
            p99 = "-" if level.p99_ms is None else f"{level.p99_ms:.2f}"
            rps = f"{level.requests_per_second:,.1f}"
            _say(f"  {level.label}: {rps} req/s, p99 {p99} ms, {level.errors:,} errors")

    events = Events(phase=None if quiet else (lambda text: _say(f"[loadtest] {text}")), level=on_level)
    if not quiet:
        _say(f"[loadtest] {spec.model} over {spec.transport}, {len(spec.levels)} level(s) of "
             f"{spec.warmup_s:g} s warm-up + {spec.duration_s:g} s")
    result = run_sweep(spec, events, stop)
    if not quiet and result.where:
        body = json.dumps(result.body)
        shown = body if len(body) <= 200 else body[:200] + "…"
        _say(f"[loadtest] {result.where}; request {result.body_source}: {shown}")
    report(result, args.json)
    if interrupted and result.status == STOPPED:
        return 130
    return 0 if result.status == DONE else 1


if __name__ == "__main__":
    sys.exit(main())
