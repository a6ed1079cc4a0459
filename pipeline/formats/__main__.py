"""`python -m pipeline.formats`: convert existing versions to `.tflite` and TF.js.

Exit status 0 when every requested export succeeded, 1 when one failed (each failure is printed
and the other formats and versions still run), 2 for a bad command line or base path.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.formats.convert import EXPORTERS, export_all
from pipeline.model_dir import version_dirs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.formats",
        description="Write model.tflite and tfjs/ (TF.js graph model) inside existing version folders.")
    parser.add_argument("--model-base-path", required=True, type=Path,
                        help="folder holding numeric version folders, e.g. models/linear_model")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--version", type=int, help="version to convert (default: the newest)")
    which.add_argument("--all", action="store_true", help="convert every version")
    parser.add_argument("--format", choices=[*EXPORTERS, "all"], default="all",
                        help="which format to write (default: all)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        versions = version_dirs(args.model_base_path)
    except OSError as error:
        parser.error(f"cannot read --model-base-path {args.model_base_path}: {error.strerror or error}")
    if not versions:
        parser.error(f"no versions in {args.model_base_path}")
    if args.version is not None and args.version not in versions:
        have = ", ".join(map(str, versions))
        parser.error(f"no version {args.version} in {args.model_base_path} (have {have})")
    chosen = list(versions) if args.all else [args.version if args.version is not None else max(versions)]
    formats = tuple(EXPORTERS) if args.format == "all" else (args.format,)
    failed = False
    for version in chosen:
        for name, result in export_all(versions[version], formats).items():
            if isinstance(result, Path):
                size = sum(f.stat().st_size for f in ([result] if result.is_file() else result.iterdir()))
                print(f"version {version}: {name:6} {result}  ({size:,} bytes)")
            else:
                failed = True
                print(f"version {version}: {name:6} FAILED: {result}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
