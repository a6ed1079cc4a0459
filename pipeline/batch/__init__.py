"""Spark batch scoring of exported versions: `python -m pipeline.batch` and `score_file(...)`.

The same `models/<name>/<N>/` folder TF Serving reads is scored row by row on PySpark: the model
is loaded once per executor Python worker, rows travel as Arrow batches (`mapInPandas`), bad rows
go to a rejects file with a reason. Importing this package does not import Spark or TensorFlow.
"""

from pipeline.batch.errors import BatchError
from pipeline.batch.job import (
    BatchProgress,
    BatchReport,
    MissingRequirement,
    default_rejects_path,
    missing_requirements,
    score_file,
    spark_session,
)

__all__ = ["BatchError", "BatchProgress", "BatchReport", "MissingRequirement", "default_rejects_path",
           "missing_requirements", "score_file", "spark_session"]
