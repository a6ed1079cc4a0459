"""`python -m pipeline.traffic show|replay|to-warmup LOGS...`: request logs from the command line.

LOGS are log files, folders holding them, or a `filename_prefix` as a models.config names it.

    python -m pipeline.traffic show .run/traffic/linear_model/requests --since 1h --status failed
    python -m pipeline.traffic replay .run/traffic/linear_model --a 3 --b 4 --rest http://127.0.0.1:8501
    python -m pipeline.traffic replay LOGS --a recorded --b label:canary --grpc 127.0.0.1:8500 --since 1d
    python -m pipeline.traffic to-warmup LOGS --limit 20 --version-dir models/linear_model/4
    python -m pipeline.traffic to-warmup LOGS --out requests.json --format json

`show` lists requests newest first; `replay` sends the selected ones to two targets of a running
server and prints the requests that differ most and a summary (exit status 1 when any request
disagrees beyond `--tolerance`, for a CI job comparing a candidate version on yesterday's traffic);
`to-warmup` writes the OK ones as a version's warm-up file, or a TFRecord or JSON file. A damaged
log file is read up to the damage; what was skipped is said on stderr. Exit status 2 for a usage
error or when no log file is found. Does not import TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.traffic import export
from pipeline.traffic.logs import Logged, ReadSummary, find_log_files, read_logs
from pipeline.traffic.replay import DEFAULT_TOLERANCE, GrpcSender, Replay, RestSender, Target, replay
from pipeline.traffic.select import Filter, parse_time, select

DISAGREE = 1
USAGE = 2


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("logs", nargs="+", metavar="LOGS", help="log files, folders, or a filename_prefix")
    parser.add_argument("--model", help="only this model's requests")
    parser.add_argument("--api", choices=("predict", "classify", "regress", "multi_inference"))
    parser.add_argument("--transport", choices=("REST", "gRPC"))
    parser.add_argument("--status", help="OK, failed, or a code such as INVALID_ARGUMENT")
    parser.add_argument("--version", type=int, help="only requests this version answered")
    parser.add_argument("--label", help="only requests that asked for this label")
    parser.add_argument("--since", help="from this time: 10m, 2h, 1d ago, or ISO 8601 (UTC)")
    parser.add_argument("--until", help="up to this time (same forms)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.traffic", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("show", help="list logged requests, newest first")
    _filters(show)
    show.add_argument("--limit", type=int, default=50, help="at most this many (default %(default)s)")
    show.add_argument("--json", action="store_true", help="print JSON (facts and whole PredictionLogs)")
    again = commands.add_parser("replay", help="send logged requests to two targets and compare the answers")
    _filters(again)
    again.add_argument("--a", required=True, type=_target, help="a version, a label, latest or recorded")
    again.add_argument("--b", required=True, type=_target, help="the other target")
    where = again.add_mutually_exclusive_group()
    where.add_argument("--rest", metavar="URL", help="the server's REST root (default: SERVING_URL or "
                       "http://127.0.0.1:8501)")
    where.add_argument("--grpc", metavar="HOST:PORT", help="the server's gRPC target instead")
    again.add_argument("--as-model", help="send to this model instead of the one each request named")
    again.add_argument("--limit", type=int, default=1000, help="the newest this many (default %(default)s)")
    again.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                       help="largest absolute difference still agreeing (default %(default)s)")
    again.add_argument("--rows", type=int, default=20, help="requests printed, largest difference first")
    again.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
    again.add_argument("--json", action="store_true", help="print the summary and every row as JSON")
    warm = commands.add_parser("to-warmup", help="write requests answered OK as a warm-up file")
    _filters(warm)
    warm.add_argument("--limit", type=int, default=export.MAX_WARMUP_RECORDS,
                      help="the newest this many (default and most: %(default)s)")
    out = warm.add_mutually_exclusive_group(required=True)
    out.add_argument("--version-dir", type=Path, help="a version folder: writes its "
                     "assets.extra/tf_serving_warmup_requests, checked against its signatures")
    out.add_argument("--out", type=Path, help="a file to write instead")
    warm.add_argument("--format", choices=("tfrecord", "json"), default="tfrecord",
                      help="of --out (default %(default)s)")
    return parser


def _target(text: str) -> Target:
    try:
        return Target.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _selection(args: argparse.Namespace) -> tuple[list[Logged], ReadSummary]:
    if not find_log_files(args.logs):
        raise SystemExit(_fail(f"no request log files at {' '.join(args.logs)}"))
    try:
        where = Filter(model=args.model, api=args.api, transport=args.transport, status=args.status,
                       version=args.version, label=args.label,
                       since=parse_time(args.since) if args.since else None,
                       until=parse_time(args.until) if args.until else None)
    except ValueError as error:
        raise SystemExit(_fail(str(error))) from None
    summary = ReadSummary()
    entries = select(read_logs(args.logs, summary), where, args.limit)
    print(f"read {summary.describe()}", file=sys.stderr)
    for report in summary.files:
        if report.damaged or report.being_written:
            print(f"  {report.describe()}", file=sys.stderr)
    return entries, summary


def _fail(message: str) -> int:
    print(f"python -m pipeline.traffic: {message}", file=sys.stderr)
    return USAGE


def _when(entry: Logged) -> str:
    return entry.time.strftime("%Y-%m-%d %H:%M:%S") if entry.time else "?"


def _latency(value: float | None) -> str:
    return f"{value:,.1f} ms" if value is not None else "?"


def show_table(entries: Sequence[Logged]) -> str:
    """The requests as aligned text, one per line."""
    header = ("TIME (UTC)", "MODEL", "TARGET", "API", "TRANSPORT", "STATUS", "LATENCY", "INPUTS -> OUTPUTS")
    rows = [(_when(e), e.model, e.target, e.api, e.transport or "?", e.status or "?", _latency(e.latency_ms),
             f"{e.inputs} -> {e.outputs or e.message or '-'}") for e in entries]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
                     for r in [header, *rows])


def _difference(value: float) -> str:
    return "n/a" if math.isinf(value) else f"{value:.6g}"


def replay_report(result: Replay, rows: int) -> str:
    """The summary, then the `rows` requests that differ most."""
    s = result.summary
    lines = [f"replayed {s.requests} request(s) over {result.transport}: A = {result.a}, B = {result.b}",
             f"agreeing within {s.tolerance:g}: {s.agreeing} of {s.requests} ({s.share_agreeing:.1%})",
             f"largest difference: {_difference(s.largest)}"]
    for side, failed in (("a", s.failed_a), ("b", s.failed_b)):
        median, p95 = s.latency(side), s.latency(side, 95)
        timing = f"median {median:.2f} ms, p95 {p95:.2f} ms" if median is not None else "no answer"
        lines.append(f"latency {side.upper()}: {timing}" + (f"; {failed} failed" if failed else ""))
    shown = [r for r in result.rows if not r.agree][:rows] or result.rows[:min(rows, 5)]
    if shown:
        lines.append("")
        lines.append("DIFFERENCE  TIME (UTC)           MODEL / TARGET            NOTE / INPUTS")
        for row in shown:
            entry = row.entry
            lines.append(f"{_difference(row.difference):<10}  {_when(entry):<19}  "
                         f"{(entry.model + ' / ' + entry.target)[:24]:<24}  {row.note or entry.inputs}")
    return "\n".join(lines)


def _replay(args: argparse.Namespace) -> int:
    entries, _ = _selection(args)
    if args.grpc:
        from pipeline.client.grpc import GrpcClient

        sender = GrpcSender(GrpcClient(args.grpc, timeout=args.timeout))
    else:
        from pipeline.client.rest import ServingClient
        from pipeline.settings import Settings

        sender = RestSender(ServingClient(args.rest or Settings.from_env().serving_url, timeout=args.timeout))
    result = replay(entries, args.a, args.b, sender, model=args.as_model, tolerance=args.tolerance)
    if args.json:
        print(json.dumps(replay_json(result), indent=1, allow_nan=True))
    else:
        print(replay_report(result, args.rows))
    return 0 if result.summary.agreeing == result.summary.requests else DISAGREE


def replay_json(result: Replay) -> dict:
    s = result.summary
    return {"a": str(result.a), "b": str(result.b), "transport": result.transport, "requests": s.requests,
            "agreeing": s.agreeing, "tolerance": s.tolerance, "largest_difference": s.largest,
            "latency_ms": {"a": {"median": s.latency("a"), "p95": s.latency("a", 95)},
                           "b": {"median": s.latency("b"), "p95": s.latency("b", 95)}},
            "rows": [{"id": r.entry.id, "time": r.entry.time.isoformat() if r.entry.time else None,
                      "model": r.entry.model, "difference": r.difference, "agree": r.agree, "note": r.note,
                      "a_error": r.a.error, "b_error": r.b.error, "a_latency_ms": r.a.latency_ms,
                      "b_latency_ms": r.b.latency_ms} for r in result.rows]}


def _to_warmup(args: argparse.Namespace) -> int:
    entries, _ = _selection(args)
    try:
        if args.version_dir is not None:
            path, count, skipped = export.write_warmup(entries, args.version_dir)
        else:
            from pipeline.state import atomic_write_bytes

            if args.format == "json":
                data = export.json_text(entries).encode()
                count, skipped = len(entries), []
            else:
                records, skipped = export.warmup_records(entries)
                data, count = export.as_tfrecord(records), len(records)
            path = atomic_write_bytes(args.out, data)
    except (ValueError, OSError) as error:
        return _fail(str(error))
    for reason in skipped:
        print(f"  left out {reason}", file=sys.stderr)
    print(f"wrote {count} request(s) to {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "show":
            entries, _ = _selection(args)
            print(export.json_text(entries) if args.json else show_table(entries))
            return 0
        if args.command == "replay":
            return _replay(args)
        return _to_warmup(args)
    except SystemExit as stop:
        return int(stop.code or 0)


if __name__ == "__main__":
    sys.exit(main())
