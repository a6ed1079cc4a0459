"""`python -m pipeline.batch`: score a CSV or Parquet file with one version on Spark.

Prints the counts (rows in, scored, rejected) on success. Exit status: 0 done, 2 usage or input
error (one line on stderr naming the problem), 1 the Spark job itself failed.
"""

from __future__ import annotations

import argparse
import sys

from pipeline.batch.errors import BatchError
from pipeline.batch.model import RUNTIMES


def _version(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"must be a version number like 1 or 2, not {text!r}")
    return int(text)


def parser() -> argparse.ArgumentParser:
    """The command line, with every default stated in --help."""
    p = argparse.ArgumentParser(
        prog="python -m pipeline.batch",
        description="Score every row of a CSV or Parquet file with one exported version on Spark. "
                    "The output keeps the input columns and adds `prediction` and `version`; rows "
                    "that cannot be scored go to the rejects file with a `reason`.")
    p.add_argument("--input", required=True, metavar="FILE",
                   help="rows to score: a .csv file with a header line, or .parquet")
    p.add_argument("--output", required=True, metavar="DIR.parquet",
                   help="where predictions go (a Spark Parquet folder, overwritten)")
    p.add_argument("--model-base-path", default="models/linear_model", metavar="DIR",
                   help="folder holding the version folders 1/, 2/, ... (default models/linear_model)")
    p.add_argument("--version", type=_version, default=None, metavar="N",
                   help="version to score with (default: the newest)")
    p.add_argument("--master", default="local[*]",
                   help="Spark master: local[*], local[2], spark://host:7077, ... (default local[*])")
    p.add_argument("--rejects", default=None, metavar="DIR.parquet",
                   help="where rows that cannot be scored go (default <output>.rejects.parquet)")
    p.add_argument("--features", default="auto", metavar="x1,x2|auto",
                   help="input columns fed to the model, in order; auto = the first k columns that "
                        "are neither a label (y, label, target) nor an id (id, key, *_id) (default auto)")
    p.add_argument("--runtime", default="auto", choices=RUNTIMES,
                   help="auto = LiteRT when <version>/model.tflite exists and ai-edge-litert is "
                        "installed, else the SavedModel (default auto)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    args = parser().parse_args(argv)
    from pipeline.batch.job import score_file

    try:
        report = score_file(args.input, args.output, model_base_path=args.model_base_path,
                            version=args.version, features=args.features, rejects_path=args.rejects,
                            master=args.master, runtime=args.runtime)
    except BatchError as error:
        print(f"python -m pipeline.batch: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # the Spark job failed: say so in one line, status 1
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        print(f"python -m pipeline.batch: the Spark job failed: {first}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
