"""The ``logging`` section of ``python -m bench``: what request logging costs a 1-row ``:predict``.

Three servers of ours (batching on, REST only, Prometheus on) serve the same model from three
models.config files that differ only in the model's ``logging_config``: none, ``sampling_rate: 0.0``
and ``sampling_rate: 1.0`` (files under the bench's work folder). All three start first; then the
1-row body is driven at 32 connections in interleaved rounds (none, 0.0, 1.0, none, ...), so a
machine that gets busier during the run weighs on every row alike, and each row reports its median
round. The targets (issue 21): rate 0.0 within 3% of none; the cost of 1.0 is reported.

Each server's own counts say what was measured: requests answered OK
(``:tensorflow:serving:request_count``) and records logged (``:tensorflow:serving:request_log_count``,
``OK``, and the records read back from the files by ``pipeline.traffic``). A server whose core does
not report finished requests to its request logs writes no record at 1.0; the section then says the
rows measure only the configuration, not logging.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import contenders as cs
from bench.load import LoadError, LoadResult, run_load

CONNECTIONS = 32
ROUNDS, QUICK_ROUNDS = 3, 1
CONFIGS = (("none", "no logging_config", None), ("rate0", "sampling_rate 0.0", 0.0),
           ("rate1", "sampling_rate 1.0", 1.0))
TARGET_RATE0 = 0.97
"""Rate 0.0 must keep at least this share of the req/s without a logging_config."""


@dataclass
class Row:
    key: str
    label: str
    rate: float | None
    prefix: Path | None
    rounds: list[LoadResult] = field(default_factory=list)
    answered: float = 0.0
    logged_metric: float = 0.0
    logged_files: int = 0
    error: str = ""

    def median(self, attr: str) -> float | None:
        values = [getattr(r, attr) for r in self.rounds]
        return statistics.median(values) if values else None


def models_config(base_path: Path, rate: float | None, prefix: Path | None) -> str:
    """The bench model's models.config, with a file logging_config at `rate` when it is not None."""
    logging = "" if rate is None else (
        f' logging_config {{ log_collector_config {{ type: "file" filename_prefix: "{prefix}" }} '
        f"sampling_config {{ sampling_rate: {rate} }} }}")
    return (f'model_config_list {{ config {{ name: "{cs.MODEL_NAME}" base_path: "{base_path}" '
            f'model_platform: "tensorflow"{logging} }} }}\n')


def contender(key: str, config: Path) -> cs.Contender:
    import sys

    return cs.Contender(f"logging-{key}", (sys.executable, "-m", "pipeline.serving", "--rest_api_port={port}",
                                           "--rest_api_host=127.0.0.1", f"--model_config_file={config}",
                                           "--port=0", "--enable_batching=true", "--enable_prometheus"))


def metric(base_url: str, name: str, **labels: str) -> float:
    """The sum of one Prometheus counter's samples matching `labels` (0 when absent)."""
    import re
    import urllib.request

    with urllib.request.urlopen(base_url + "/monitoring/prometheus/metrics", timeout=10) as response:
        text = response.read().decode()
    total = 0.0
    for found, value in re.findall(rf"^{re.escape(name)}\{{([^}}]*)\}} (\S+)$", text, re.MULTILINE):
        if all(f'{k}="{v}"' in found.split(",") for k, v in labels.items()):
            total += float(value)
    return total


def run(base_path: Path, work: Path, log_dir: Path, body: Path, duration_s: float, warmup_s: float,
        say: Callable[[str], None], use_wrk: bool = True, quick: bool = False) -> str:
    """Measure the three rows; the report section (Markdown)."""
    folder = work / "logging"
    rows = [Row(key, label, rate, folder / "traffic" / key / "requests" if rate is not None else None)
            for key, label, rate in CONFIGS]
    running: dict[str, cs.Running] = {}
    try:
        for row in rows:
            config = folder / f"{row.key}.config"
            config.parent.mkdir(parents=True, exist_ok=True)
            config.write_text(models_config(base_path, row.rate, row.prefix))
            say(f"logging: starting the server with {row.label}")
            try:
                running[row.key] = cs.start(contender(row.key, config), log_dir)
            except cs.ContenderError as error:
                row.error = f"failed to start: {str(error).splitlines()[0]}"
        for row in rows:
            if row.key in running:
                run_load(running[row.key].url, body, CONNECTIONS, warmup_s, work, use_wrk)
        for number in range(QUICK_ROUNDS if quick else ROUNDS):
            for row in rows:
                if row.key not in running:
                    continue
                say(f"logging: round {number + 1}, {row.label}")
                try:
                    row.rounds.append(run_load(running[row.key].url, body, CONNECTIONS, duration_s, work,
                                               use_wrk))
                except LoadError as error:
                    row.error = f"load failed: {str(error).splitlines()[0]}"
        for row in rows:
            if row.key in running:
                _count(row, running[row.key])
    finally:
        for server in running.values():
            server.stop()
    return render(rows, duration_s)


def _count(row: Row, server: cs.Running) -> None:
    row.answered = metric(server.base_url, ":tensorflow:serving:request_count", model_name=cs.MODEL_NAME,
                          status="OK")
    row.logged_metric = metric(server.base_url, ":tensorflow:serving:request_log_count",
                               model_name=cs.MODEL_NAME, status_code="OK")
    if row.prefix is not None:
        server.stop()  # its request logs are closed: every record is on disk
        from pipeline.traffic.logs import read_logs

        row.logged_files = len(read_logs([row.prefix]))


def render(rows: list[Row], duration_s: float) -> str:
    """The section: one row per config, the ratios to no logging_config, and the target check."""
    none = rows[0].median("rps")
    lines = ["## Request logging (1-row `:predict`, 32 connections, batching on)", "",
             f"Median of interleaved {duration_s:g} s rounds per row; counts from each server's metrics and "
             "log files.", "",
             "| logging_config | req/s | ÷ none | p50 ms | p99 ms | answered OK | logged (metric / files) |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        rps = row.median("rps")
        if row.error and rps is None:
            lines.append(f"| {row.label} | {row.error} | | | | | |")
            continue
        share = f"{rps / none:.3f}" if rps and none else "n/a"
        logged = "—" if row.rate is None else f"{row.logged_metric:,.0f} / {row.logged_files:,}"
        lines.append(f"| {row.label} | {rps:,.0f} | {share} | {row.median('p50_ms'):.2f} | "
                     f"{row.median('p99_ms'):.2f} | {row.answered:,.0f} | {logged} |")
    lines.append("")
    rate0, rate1 = rows[1].median("rps"), rows[2].median("rps")
    if none and rate0:
        verdict = "Pass" if rate0 / none >= TARGET_RATE0 else "Miss"
        lines.append(f"- rate 0.0 within 3% of no logging_config: {rate0 / none:.3f}× ({verdict})")
    if none and rate1:
        lines.append(f"- cost of rate 1.0: {rate1 / none:.3f}× the req/s of no logging_config")
    if rows[2].rate is not None and not rows[2].error and rows[2].logged_files == 0:
        lines.append("- no record was logged at rate 1.0: this server's core does not report finished "
                     "requests to its request logs: these rows measure the configuration only, not logging")
    return "\n".join(lines) + "\n"
