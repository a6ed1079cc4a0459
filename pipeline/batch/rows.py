"""Reading the rows to score and sorting them into valid rows and rejects, inside Spark.

CSV is read with every column as a string, in PERMISSIVE mode with Spark's corrupt-record column,
so a line with too few or too many fields is kept (as a reject) instead of being padded or
truncated. Parquet keeps its column types. Each row then gets a `reason`, NULL for a valid row:
wrong field count, a missing feature, a non-numeric feature, or a non-finite one (NaN, inf). The
reason is computed once, in Spark SQL, so rejects and valid rows come from the same pass and their
counts always add up to the rows read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.batch.errors import BatchError

CORRUPT = "_corrupt_record"
"""The column Spark's CSV reader fills with the raw line of a malformed record."""
LABEL_NAMES = ("y", "label", "target", "truth", "y_true")
"""Columns `--features auto` never feeds to the model: they are the truth, kept for residuals."""
ID_NAMES = ("id", "key", "index", "row", "row_id", "uuid")
"""Nor these (or any name ending in `_id`): they identify a row, they do not describe it."""
RESERVED = ("prediction", "version", "reason")


def _is_feature_like(name: str) -> bool:
    lowered = name.lower()
    return lowered not in LABEL_NAMES and lowered not in ID_NAMES and not lowered.endswith("_id")


def input_format(path: str) -> str:
    """`csv` or `parquet`, from the input's extension (a Spark output folder `x.parquet/` counts)."""
    suffix = Path(path.rstrip("/")).suffix.lower()
    if suffix in (".csv", ".parquet"):
        return suffix[1:]
    raise BatchError(f"input {path!r} must end in .csv or .parquet")


def read_rows(spark: Any, path: str) -> tuple[Any, list[str]]:
    """The input as a DataFrame plus its column names (CSV also has the corrupt-record column)."""
    from pyspark.sql import types as T

    fmt = input_format(path)
    try:
        if fmt == "parquet":
            frame = spark.read.parquet(path)
            return frame, list(frame.columns)
        columns = spark.read.option("header", True).csv(path).columns
        if not columns:
            raise BatchError(f"input {path!r} has no header line")
        schema = T.StructType([T.StructField(c, T.StringType()) for c in columns]
                              + [T.StructField(CORRUPT, T.StringType())])
        frame = (spark.read.option("header", True).option("mode", "PERMISSIVE")
                 .option("columnNameOfCorruptRecord", CORRUPT).schema(schema).csv(path))
        return frame, columns
    except BatchError:
        raise
    except Exception as error:  # AnalysisException: path missing, not parquet, ...
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BatchError(f"cannot read input {path!r}: {first}") from error


def pick_features(columns: list[str], requested: str, n_features: int) -> tuple[str, ...]:
    """The input columns fed to the model, in order.

    `requested` is `auto` or a comma-separated list of column names. `auto` takes the first
    `n_features` columns that are neither label-like (`y`, `label`, ...) nor identifiers (`id`,
    `key`, `*_id`); other columns are still copied to the output. Raises BatchError
    for unknown names, a wrong count, or an input that already has an output column's name."""
    clash = [c for c in columns if c in RESERVED]
    if clash:
        raise BatchError(f"input already has column(s) {', '.join(clash)}; the output adds "
                         f"{', '.join(RESERVED[:2])} and rejects add reason: rename them")
    if requested.strip().lower() == "auto":
        candidates = [c for c in columns if _is_feature_like(c)]
        if len(candidates) < n_features:
            raise BatchError(f"the model takes {n_features} features but the input has only "
                             f"{len(candidates)} usable column(s) ({', '.join(candidates) or 'none'}); "
                             "name them with --features")
        return tuple(candidates[:n_features])
    names = tuple(name.strip() for name in requested.split(",") if name.strip())
    missing = [name for name in names if name not in columns]
    if missing:
        raise BatchError(f"--features names column(s) not in the input: {', '.join(missing)} "
                         f"(columns: {', '.join(columns)})")
    if len(names) != n_features or len(set(names)) != len(names):
        raise BatchError(f"the model takes {n_features} features; --features gave {len(names)} "
                         f"distinct column(s): {', '.join(names)}")
    return names


def with_reasons(frame: Any, columns: list[str], features: tuple[str, ...]) -> Any:
    """`frame` plus a `reason` column: NULL for a valid row, else why it cannot be scored.

    Checks run in order and the first failing one names the row's reason: wrong field count
    (CSV), then per feature missing, non-numeric, non-finite."""
    from pyspark.sql import functions as F

    expected = len(columns)
    reason = F.lit(None).cast("string")
    for name in reversed(features):
        value, number = F.col(f"`{name}`"), F.col(f"`{name}`").try_cast("double")
        shown = F.substring(value.cast("string"), 1, 40)
        reason = (F.when(value.isNull(), F.lit(f"missing value in {name}"))
                  .when(number.isNull(),
                        F.concat(F.lit(f"non-numeric value in {name}: '"), shown, F.lit("'")))
                  .when(F.isnan(number) | (F.abs(number) == float("inf")),
                        F.concat(F.lit(f"non-finite value in {name}: "), shown))
                  .otherwise(reason))
    if CORRUPT in frame.columns:
        raw = F.col(CORRUPT)
        got = F.size(F.split(raw, ","))
        reason = F.when(raw.isNotNull(), F.concat(
            F.lit(f"wrong column count: expected {expected}, got "), got.cast("string"),
            F.lit(": '"), F.substring(raw, 1, 80), F.lit("'"))).otherwise(reason)
    return frame.withColumn("reason", reason)


def numeric_columns_query(columns: list[str], features: tuple[str, ...]) -> list[Any]:
    """Aggregations that count, per non-feature string column, values that are not numbers.

    A CSV label column (`y`) whose values all parse is written to the output as a double, so the
    predictions can be compared with it without another parse; the counts ride along with the
    job's own row counts in one pass."""
    from pyspark.sql import functions as F

    return [
        F.sum(F.when(F.col(f"`{c}`").isNotNull() & F.col(f"`{c}`").try_cast("double").isNull(), 1)
              .otherwise(0)).alias(f"nonnumeric::{c}")
        for c in columns if c not in features
    ]


def scored_columns(frame: Any, columns: list[str], features: tuple[str, ...],
                   numeric_others: set[str]) -> Any:
    """The valid rows as they go to the model: features as doubles, other columns kept (CSV
    string columns that are all numbers become doubles), in the input's column order."""
    from pyspark.sql import functions as F

    selected = []
    for c in columns:
        column = F.col(f"`{c}`")
        is_string = dict(frame.dtypes)[c] == "string"
        if c in features or (is_string and c in numeric_others):
            column = column.try_cast("double")
        selected.append(column.alias(c))
    return frame.select(*selected)
