"""``python -m pipeline.train``: train the linear model, show its weights, export a version.

Prints learned vs true vs OLS weights and the quality gate's verdict
(:mod:`pipeline.training.quality`), exports ``<base-path>/<N>/`` and prints its path.

Exit status: 0 when the run finished (exported, or held back by a quality warning, which is
printed; ``--export-anyway`` exports it), 1 when it failed (diverged: non-finite loss or
weights; such a run is never exported), 2 for bad arguments or a model folder another run is
training on, with one message naming the problem, before anything is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.runs.report import param_names
from pipeline.settings import Settings
from pipeline.store.run_record import RunRecord, RunStatus, Weights
from pipeline.training.fit import LR_SCHEDULES, OPTIMIZERS, TrainConfig
from pipeline.training.quality import WARNING, Verdict


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    """The command's arguments; defaults come from `settings` (the environment, read once)."""
    d = TrainConfig.from_settings(settings)
    p = argparse.ArgumentParser(
        prog="python -m pipeline.train",
        description="Train a Keras linear regression on synthetic data Y = X @ w0 + b0 + noise "
        "and export it as the next SavedModel version under the base path.",
    )
    p.add_argument(
        "--samples",
        type=int,
        default=d.samples,
        help=f"number of rows (2 to 10,000,000; default {d.samples})",
    )
    p.add_argument(
        "--true-w",
        type=_floats,
        default=d.true_w,
        metavar="W1,W2,...",
        help=f"true weights w0, one per input feature (default {','.join(map(str, d.true_w))})",
    )
    p.add_argument("--true-b", type=float, default=d.true_b, help=f"true bias b0 (default {d.true_b})")
    p.add_argument(
        "--noise", type=float, default=d.noise, help=f"std of the Gaussian noise (default {d.noise})"
    )
    p.add_argument(
        "--seed", type=int, default=d.seed, help="seed for data, initial weights and shuffling (default 0)"
    )
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"passes over the data (default {d.epochs})")
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="rows per step (default: 64, growing for large data to ~100 steps per epoch)",
    )
    p.add_argument(
        "--optimizer", default=d.optimizer, help=f"one of {', '.join(OPTIMIZERS)} (default {d.optimizer})"
    )
    p.add_argument(
        "--learning-rate",
        type=float,
        default=d.learning_rate,
        help=f"initial rate (default {d.learning_rate})",
    )
    p.add_argument(
        "--lr-schedule",
        default=d.lr_schedule,
        help=f"one of {', '.join(LR_SCHEDULES)} (default {d.lr_schedule}: decays to 1%% over the run)",
    )
    p.add_argument(
        "--base-path",
        type=Path,
        default=settings.model_base_path,
        help=f"model base path; versions go to <base-path>/<N>/ (default {settings.model_base_path})",
    )
    p.add_argument("--no-export", action="store_true", help="train and report only; write no version")
    p.add_argument("--export-anyway", action="store_true",
                   help="export even if the quality gate warns (far from the least-squares optimum, or "
                   "loss far above the noise); TF Serving serves the newest version, so by default such "
                   "a run is not exported. A diverged run (NaN) is never exported.")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")
    return p


def weights_table(learned: Weights, true: Weights, ols: Weights) -> str:
    """Learned vs true vs OLS, one row per parameter, as aligned text."""
    rows = [f"{'param':<6} {'learned':>12} {'true':>12} {'OLS':>12} {'learned-OLS':>12}"]
    # 12 wide: -10,000.0000 (the form's bound) stays aligned
    for name, lv, tv, ov in zip(param_names(len(learned.w)), learned.flat, true.flat, ols.flat, strict=True):
        rows.append(f"{name:<6} {lv:>12.4f} {tv:>12.4f} {ov:>12.4f} {lv - ov:>12.4f}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(Settings.from_env())
    args = parser.parse_args(argv)
    cfg = TrainConfig(
        samples=args.samples,
        true_w=args.true_w,
        true_b=args.true_b,
        noise=args.noise,
        seed=args.seed,
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        learning_rate=args.learning_rate,
        lr_schedule=args.lr_schedule,
    )
    from pipeline.runs import lock
    from pipeline.store import versions

    try:
        cfg.validate()
        if not args.no_export:
            versions.check_writable_base_path(args.base_path)
            versions.validate_model_name(Path(args.base_path).name)
            lock.check_free(args.base_path)
    except ValueError as exc:
        parser.error(str(exc))

    from pipeline.runs.job import run_training

    def report(p) -> None:
        if (
            p.epoch_end
            and not args.quiet
            and (p.epoch == 1 or p.epoch == p.epochs or p.epoch % max(1, p.epochs // 10) == 0)
        ):
            w = ", ".join(f"{v:.4f}" for v in p.w)
            print(f"epoch {p.epoch:>5}/{p.epochs}  loss {p.loss:10.4f}  w [{w}]  b {p.b:.4f}", flush=True)

    try:
        record = run_training(cfg, None if args.no_export else args.base_path, export=not args.no_export,
                              on_progress=report, export_anyway=args.export_anyway)
    except lock.TrainingBusy as exc:  # another run claimed the folder since the check above
        parser.error(str(exc))
    return print_outcome(record)


def print_outcome(record: RunRecord) -> int:
    """The weights table, the gate's verdict and what was exported; the exit status."""
    if record.learned is not None and record.true is not None and record.ols is not None:
        print()
        print(weights_table(record.learned, record.true, record.ols))
        if record.errors is not None:
            print(f"\nmax |learned - OLS| = {record.errors.vs_ols:.4g}   "
                  f"max |learned - true| = {record.errors.vs_true:.4g}")
    timings = record.timings
    print(f"trained in {timings.get('fit_s', 0.0):.1f} s, "
          f"{timings.get('end_to_end_s', 0.0):.1f} s end to end ({record.status})")
    quality = Verdict.from_dict(record.quality)
    if record.status is RunStatus.FAILED:
        print(f"FAILED: {record.error or 'no error recorded'}", file=sys.stderr)
        print("nothing was exported", file=sys.stderr)
        return 1
    if quality is not None and quality.level == WARNING:
        print("WARNING (quality gate): " + " ".join(quality.reasons), file=sys.stderr)
        if record.version is None and record.export_requested:
            print("not exported: TF Serving serves the newest version, so a run the gate warns about is "
                  "exported only with --export-anyway", file=sys.stderr)
    if record.version_path:
        print(f"exported version {record.version}: {record.version_path}")
    return 0 if record.status is RunStatus.SUCCEEDED else 1


if __name__ == "__main__":
    sys.exit(main())
