"""Batch scoring throughput, three ways side by side, on the same rows and the same version.

- **in-process floor**: one `serving_default` call over the whole array (no I/O, no framework);
- **Spark**: `score_file` on `local[2]` from a Parquet file to a Parquet folder, in a warm session
  (workers have loaded the model once before the timed jobs; the cold first job is reported too),
  the whole job as a user waits for it: checks, rejects, scoring, and the count of what was written;
- **REST**: the same rows POSTed to a model server in 10,000-row `instances` requests, one after
  another (optional: needs `server_url`).

`python -m bench.batch_bench --model-base-path models/linear_model --rows 1000000
--server-url http://127.0.0.1:8501` prints a table; `measure(...)` returns the numbers for a report
(bench/ can call it and put the rows in bench/results.md).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pipeline.batch.job import score_file, spark_session
from pipeline.batch.model import resolve_model


@dataclass(frozen=True)
class BatchBench:
    """Rows per second of each way of scoring `rows` rows; None where not measured."""

    rows: int
    version: int
    in_process_rows_per_s: float
    spark_rows_per_s: float
    spark_cold_rows_per_s: float
    spark_master: str
    rest_rows_per_s: float | None
    rest_request_rows: int

    def table(self) -> str:
        """A Markdown table with each rate and how many times slower than the in-process floor."""
        floor = self.in_process_rows_per_s
        lines = ["| way | rows/s | times slower than in-process |", "|---|---:|---:|"]
        for name, rate in (
            ("in-process, one signature call over the whole array", self.in_process_rows_per_s),
            (f"Spark `{self.spark_master}`, warm session (Parquet in, Parquet out)", self.spark_rows_per_s),
            (f"Spark `{self.spark_master}`, first job (workers load the model)", self.spark_cold_rows_per_s),
            (f"REST, {self.rest_request_rows:,}-row requests one after another", self.rest_rows_per_s),
        ):
            if rate is not None:
                lines.append(f"| {name} | {rate:,.0f} | {floor / rate:,.0f}x |")
        return "\n".join(lines) + f"\n\n{self.rows:,} rows, version {self.version}."


def _rows(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-10, 10, size=(count, 2)).astype(np.float32)


def in_process_rate(version_path: str, x: np.ndarray, repeats: int = 3) -> float:
    """Rows/s of the best of `repeats` single signature calls over all of `x` (after a warm-up)."""
    from pipeline.tf_env import tensorflow

    tf = tensorflow()
    function = tf.saved_model.load(version_path).signatures["serving_default"]
    (name,) = function.structured_input_signature[1]
    function(**{name: tf.constant(x[:10])})
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function(**{name: tf.constant(x)})
        best = min(best, time.perf_counter() - started)
    return len(x) / best


def rest_rate(server_url: str, model_name: str, x: np.ndarray, request_rows: int = 10_000) -> float:
    """Rows/s of POSTing `x` in `request_rows`-row requests, sequentially, checking each answer."""
    url = f"{server_url.rstrip('/')}/v1/models/{model_name}:predict"
    started = time.perf_counter()
    for start in range(0, len(x), request_rows):
        chunk = x[start:start + request_rows]
        body = json.dumps({"instances": chunk.tolist()}).encode()
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.loads(response.read())
        if len(answer["predictions"]) != len(chunk):
            raise RuntimeError(f"{url} returned {len(answer['predictions'])} predictions for {len(chunk)}")
    return len(x) / (time.perf_counter() - started)


def measure(model_base_path: str | Path, rows: int = 1_000_000, version: int | None = None,
            server_url: str | None = None, model_name: str = "linear_model",
            master: str = "local[2]", request_rows: int = 10_000, repeats: int = 3) -> BatchBench:
    """Measure the three ways on `rows` generated rows (Spark's Parquet input is written to a
    temporary folder, removed afterwards). Warm Spark jobs, REST passes and in-process calls
    report the best of `repeats`: on a shared machine the best run is the one least disturbed by others."""
    import pandas as pd

    spec = resolve_model(model_base_path, version)
    x = _rows(rows)
    floor = in_process_rate(spec.version_path, x)
    rest = (max(rest_rate(server_url, model_name, x, request_rows) for _ in range(repeats))
            if server_url else None)
    with tempfile.TemporaryDirectory(prefix="batch-bench-") as folder:
        source = Path(folder) / "rows.parquet"
        pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1]}).to_parquet(source, index=False)
        spark = spark_session(master, app_name="bench.batch_bench")
        try:
            cold = score_file(source, Path(folder) / "cold.parquet", model_base_path=model_base_path,
                              version=spec.version, spark=spark)
            warm_seconds = min(
                score_file(source, Path(folder) / "warm.parquet", model_base_path=model_base_path,
                           version=spec.version, spark=spark).seconds
                for _ in range(repeats))
        finally:
            spark.stop()
    return BatchBench(rows=rows, version=spec.version, in_process_rows_per_s=floor,
                      spark_rows_per_s=rows / warm_seconds, spark_cold_rows_per_s=rows / cold.seconds,
                      spark_master=master, rest_rows_per_s=rest, rest_request_rows=request_rows)


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.batch_bench`: print the table (and `--json` the numbers)."""
    p = argparse.ArgumentParser(prog="python -m bench.batch_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--model-base-path", default="models/linear_model")
    p.add_argument("--version", type=int, default=None)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--master", default="local[2]")
    p.add_argument("--server-url", default=None,
                   help="e.g. http://127.0.0.1:8501 (the REST row is skipped without it)")
    p.add_argument("--model-name", default="linear_model")
    p.add_argument("--repeats", type=int, default=3, help="warm Spark jobs and REST passes (best is kept)")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON too (last line)")
    args = p.parse_args(argv)
    result = measure(args.model_base_path, args.rows, args.version, args.server_url, args.model_name,
                     args.master, repeats=args.repeats)
    print(result.table())
    if args.json:
        print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
