"""``python -m pipeline.demo``: seed a model folder with a few runs and versions, quickly.

So the dashboard is never empty in a demo: a handful of exported versions that differ in
a way worth comparing (little data vs the tutorial's 800 rows vs more, precise data; a short
run the quality gate warns about, exported anyway, vs converged ones), plus one cancelled and
one failed run record so the run history shows every state a run can end in. Everything goes through the same
:func:`pipeline.runs.job.run_training` a real run uses, so the records are real ones. Takes
about ten seconds on a laptop, most of it TensorFlow's import.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.settings import Settings
from pipeline.store.run_record import RunRecord, RunStatus
from pipeline.training.fit import TrainConfig
from pipeline.training.quality import WARNING

MAX_DEMO_VERSIONS = 10

_VERSION_RECIPES: tuple[tuple[str, TrainConfig], ...] = (
    ("few rows, short run", TrainConfig(samples=100, epochs=8, seed=1)),
    ("the tutorial's 800 rows", TrainConfig(samples=800, epochs=60, seed=0, batch_size=32)),
    ("5,000 rows, less noise", TrainConfig(samples=5_000, epochs=15, noise=0.5, seed=7, batch_size=128)),
)
"""What each seeded version shows; more versions cycle through these with new seeds."""

CANCEL_AFTER_EPOCH = 3
DEMO_FAILURE = "demo: this run was stopped with an error on purpose, to show how a failed run is recorded"


class DemoFailure(RuntimeError):
    """The deliberate error that makes the demo's failed run fail."""


@dataclass(frozen=True)
class DemoResult:
    """What seeding made: every run record (in order) and the versions exported."""

    records: list[RunRecord]

    @property
    def versions(self) -> list[int]:
        return [r.version for r in self.records if r.version is not None]

    @property
    def statuses(self) -> list[RunStatus]:
        return [r.status for r in self.records]


def version_recipes(count: int) -> list[tuple[str, TrainConfig]]:
    """``count`` labelled configs: the fixed recipes first, then the same with new seeds."""
    recipes = []
    for i in range(count):
        label, cfg = _VERSION_RECIPES[i % len(_VERSION_RECIPES)]
        if i >= len(_VERSION_RECIPES):
            seed = cfg.seed + i
            label, cfg = f"{label}, seed {seed}", TrainConfig.from_dict({**cfg.to_dict(), "seed": seed})
        recipes.append((label, cfg))
    return recipes


def _cancelling_run(base_path: Path) -> RunRecord:
    from pipeline.runs.job import run_training

    cancel = threading.Event()

    def stop_after(p: Any) -> None:
        if p.epoch_end and p.epoch >= CANCEL_AFTER_EPOCH:
            cancel.set()

    return run_training(TrainConfig(samples=800, epochs=50, seed=3), base_path, export=True,
                        on_progress=stop_after, cancel=cancel)


def _failing_run(base_path: Path) -> RunRecord:
    from pipeline.runs.job import run_training

    def fail(p: Any) -> None:
        if p.epoch_end and p.epoch >= 2:
            raise DemoFailure(DEMO_FAILURE)

    return run_training(TrainConfig(samples=800, epochs=50, seed=4), base_path, export=True, on_progress=fail)


def seed_demo(
    base_path: Path | str,
    versions: int = 3,
    say: Callable[[str], None] = lambda _msg: None,
) -> DemoResult:
    """Train and export ``versions`` demo versions under ``base_path``, then record one
    cancelled and one failed run; return every run record. ``say`` receives one line per
    run as it finishes (the CLI prints them, a page can show them).

    ``ValueError`` before any work if ``versions`` is not 1 to 10 or the base path cannot
    be written. Adds to what is already there: existing versions keep their numbers.
    """
    from pipeline.runs.job import run_training
    from pipeline.store import versions as store

    if isinstance(versions, bool) or not isinstance(versions, int) or not 1 <= versions <= MAX_DEMO_VERSIONS:
        raise ValueError(f"versions must be a whole number from 1 to {MAX_DEMO_VERSIONS}, got {versions!r}")
    base = store.check_writable_base_path(base_path)
    records = []
    for label, cfg in version_recipes(versions):
        # export_anyway: the short run is meant to be poor (the quality gate warns about it), so
        # the demo shows a warned version next to good ones; the newest recipe is a good one
        record = run_training(cfg, base, export=True, export_anyway=True)
        records.append(record)
        if record.status is RunStatus.SUCCEEDED and record.errors is not None:
            warned = record.quality_level == WARNING
            say(f"version {record.version}: {label} ({cfg.samples:,} samples, {cfg.epochs} epochs, "
                f"noise {cfg.noise}); max |learned - true| = {record.errors.vs_true:.3f}"
                + ("; exported although the quality gate warned (on purpose)" if warned else ""))
        else:
            say(f"run {record.id} ({label}) {record.status}: {record.error or ''}")
    cancelled = _cancelling_run(base)
    records.append(cancelled)
    say(f"run {cancelled.id}: {cancelled.status} after {cancelled.epochs_done} epochs (on purpose)")
    failed = _failing_run(base)
    records.append(failed)
    say(f"run {failed.id}: {failed.status} (on purpose)")
    return DemoResult(records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.demo",
        description="Seed a model base path with a few trained versions and run records "
        "(including a cancelled and a failed run) so the dashboard has something to show.",
    )
    default = Settings.from_env().model_base_path
    parser.add_argument("--base-path", type=Path, default=default,
                        help=f"model base path; versions go to <base-path>/<N>/ (default {default})")
    parser.add_argument("--versions", type=int, default=3,
                        help=f"how many versions to export, 1 to {MAX_DEMO_VERSIONS} (default 3)")
    args = parser.parse_args(argv)
    from pipeline.store import versions as store

    try:
        if not 1 <= args.versions <= MAX_DEMO_VERSIONS:
            raise ValueError(f"--versions must be from 1 to {MAX_DEMO_VERSIONS}, got {args.versions}")
        store.check_writable_base_path(args.base_path)
        store.validate_model_name(Path(args.base_path).name)
    except ValueError as exc:
        parser.error(str(exc))
    started = time.perf_counter()
    print(f"seeding {args.base_path} ...", flush=True)
    result = seed_demo(args.base_path, args.versions, say=lambda msg: print(msg, flush=True))
    made = len(result.versions)
    print(f"made {made} version{'s' if made != 1 else ''} and {len(result.records)} run records "
          f"in {time.perf_counter() - started:.1f} s", flush=True)
    return 0 if len(result.versions) == args.versions else 1


if __name__ == "__main__":
    sys.exit(main())
