"""Turn one bench run's measurements into the Markdown report: tables, ratios and targets.

Pure: no processes, no network, no clock. Every ratio compares numbers measured in the same run,
because absolute numbers on a shared machine say little; the targets (from issues 5, 10, 19 and 20) are judged
on those ratios and printed as Pass / Miss (or n/a when a side of the comparison was not measured). Two
of issue 20's are not ratios within one run: the 10,000-row Predict page against its 2 s bar, and the
dashboard's first paint against the previous report's (both as dashboard ÷ one-line app, so a slower
machine does not count as a slower dashboard).
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field

from bench.load import LoadResult

CONNECTIONS = (1, 8, 32, 128)
"""Keep-alive connections per 1-row :predict point."""

CONTENDERS: dict[str, str] = {
    "server": "this server, batching off",
    "batching": "this server, batching on (--enable_batching)",
    "starlette": "plain Starlette",
    "kserve": "KServe ModelServer",
    "raw": "raw ASGI floor",
}
"""Contender keys (as given to ``--only``) and their labels, in table order."""

SERVER_VARIANTS = ("server", "batching")
PREDICT10K_TARGET_S = 2.0
"""Issue 20: 10,000 rows on the Predict page settle within this many seconds in Chromium."""
PAINT_DRIFT = 1.10
"""Issue 20: the dashboard's first paint stays within 10% of the previous report's (ratio of ratios)."""
PAINT_WHAT = "first paint (process start → first run done)"
PREDICT10K_WHAT = "10,000 rows on Predict (Send → settled page, Chromium)"


@dataclass(frozen=True)
class Comparison:
    """One measured value next to its reference (e.g. rows/s over HTTP vs in process)."""

    what: str
    unit: str
    value: float | None
    value_label: str
    reference: float | None
    reference_label: str
    note: str = ""
    """Why a side is missing, or how it was measured."""
    paired: float | None = None
    """The ratio of rounds measured in pairs (median of the rounds' ratios), when the two sides were;
    it is the comparison's ratio then, rather than the ratio of the two medians."""

    @property
    def ratio(self) -> float | None:
        if self.paired is not None and self.value is not None and self.reference is not None:
            return self.paired
        return ratio(self.value, self.reference)


@dataclass
class BenchResults:
    """Everything one run measured. Missing numbers carry a note saying why."""

    predict: dict[tuple[str, int], LoadResult | str] = field(default_factory=dict)
    """(contender key, connections) -> result (the median round's), or the reason there is none."""
    rounds: dict[tuple[str, int], list[LoadResult]] = field(default_factory=dict)
    """(contender key, connections) -> every interleaved round's result, in the order measured."""
    unavailable: dict[str, str] = field(default_factory=dict)
    """contender key -> why it was not measured at all (e.g. "not available", "install failed")."""
    comparisons: dict[str, Comparison] = field(default_factory=dict)
    """"rows10k", "training", "paint", "predict10k" -> the comparison."""
    facts: dict[str, str] = field(default_factory=dict)
    """Date, machine and versions, printed in the header."""
    previous_paint_ratio: float | None = None
    """The first-paint ratio (dashboard ÷ one-line app) of the report this run replaces, if read."""

    def load(self, key: str, connections: int) -> LoadResult | None:
        found = self.predict.get((key, connections))
        return found if isinstance(found, LoadResult) else None

    def add_round(self, key: str, connections: int, result: LoadResult) -> None:
        """One more round of a point; the point's result becomes the round with the median req/s
        (the lower middle one of an even count), so its latencies are ones that were measured."""
        rounds = self.rounds.setdefault((key, connections), [])
        rounds.append(result)
        ordered = sorted(rounds, key=lambda r: r.rps)
        self.predict[(key, connections)] = ordered[(len(ordered) - 1) // 2]

    def drop_point(self, key: str, connections: int, reason: str) -> None:
        """A point that could not be measured in every round: reported as `reason`, in no ratio."""
        self.rounds.pop((key, connections), None)
        self.predict[(key, connections)] = reason

    def rps_ratio(self, key: str, other: str, connections: int) -> float | None:
        """`key`'s req/s ÷ `other`'s at `connections`: with the same number (> 1) of rounds on both
        sides, the median of the rounds' ratios (round i of one with round i of the other, measured
        moments apart); otherwise the ratio of the reported results."""
        mine, theirs = self.rounds.get((key, connections), []), self.rounds.get((other, connections), [])
        if len(mine) > 1 and len(mine) == len(theirs):
            pairs = [ratio(a.rps, b.rps) for a, b in zip(mine, theirs, strict=True)]
            if all(p is not None for p in pairs):
                return statistics.median(pairs)  # type: ignore[type-var]
        a, b = self.load(key, connections), self.load(other, connections)
        return ratio(a and a.rps, b and b.rps)

    def spread(self, key: str, connections: int) -> str:
        """The lowest and highest req/s of a point's rounds ("" for a single round)."""
        rounds = self.rounds.get((key, connections), [])
        if len(rounds) < 2:
            return ""
        values = [r.rps for r in rounds]
        return f"{fmt_number(min(values))}–{fmt_number(max(values))}"


@dataclass(frozen=True)
class TargetCheck:
    """One target from the issue, what was measured against it, and the verdict."""

    target: str
    measured: str
    verdict: str
    """"Pass", "Miss" or "n/a"."""


def ratio(value: float | None, reference: float | None) -> float | None:
    """``value / reference``, or ``None`` when either is missing, not finite or the reference is 0."""
    if value is None or reference is None or not math.isfinite(value) or not math.isfinite(reference):
        return None
    return value / reference if reference != 0 else None


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}×"


def fmt_number(value: float | None, digits: int = 0) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:,.{digits}f}"


def fmt_ms(value: float) -> str:
    return f"{value:.2f}" if value < 100 else f"{value:,.0f}"


def check(target: str, value: float | None, reference: float | None, factor: float, at_least: bool,
          describe: str) -> TargetCheck:
    """Judge ``value >= factor * reference`` (``at_least``) or ``value <= factor * reference``."""
    return check_ratio(target, ratio(value, reference), factor, at_least, describe)


def check_ratio(target: str, r: float | None, factor: float, at_least: bool, describe: str) -> TargetCheck:
    """Judge a ratio: ``r >= factor`` (``at_least``) or ``r <= factor``; n/a if it is None."""
    if r is None:
        return TargetCheck(target, "not measured", "n/a")
    passed = r >= factor if at_least else r <= factor
    return TargetCheck(target, f"{describe}: {fmt_ratio(r)}", "Pass" if passed else "Miss")


def evaluate_targets(results: BenchResults) -> list[TargetCheck]:
    """The issue's targets, for each server variant measured, then the floors."""
    checks: list[TargetCheck] = []
    for key in SERVER_VARIANTS:
        label = CONTENDERS[key]
        if key == "batching":
            if key in results.unavailable:
                checks.append(TargetCheck(f"{label}: the 1-row targets", results.unavailable[key], "n/a"))
                continue
            if not any((key, c) in results.predict for c in CONNECTIONS):
                continue  # not selected with --only
        at32, at1 = results.load(key, 32), results.load(key, 1)
        kserve32, raw32 = results.load("kserve", 32), results.load("raw", 32)
        base32, base1 = results.load("starlette", 32), results.load("starlette", 1)

        def get(result: LoadResult | None, attr: str) -> float | None:
            return None if result is None else getattr(result, attr)

        to_kserve = results.rps_ratio(key, "kserve", 32) if at32 and kserve32 else None
        to_raw = results.rps_ratio(key, "raw", 32) if at32 and raw32 else None
        checks += [
            check_ratio(f"{label}: 1-row req/s at 32 conns ≥ 3× KServe", to_kserve, 3.0, True, "req/s ratio"),
            check_ratio(f"{label}: 1-row req/s at 32 conns ≥ 0.3× raw ASGI floor", to_raw, 0.3, True,
                        "req/s ratio"),
            check(f"{label}: p99 at 32 conns ≤ plain Starlette's", get(at32, "p99_ms"), get(base32, "p99_ms"),
                  1.0, False, "p99 ratio"),
            check(f"{label}: p50 at 1 conn ≤ 1.5× plain Starlette's", get(at1, "p50_ms"),
                  get(base1, "p50_ms"), 1.5, False, "p50 ratio"),
        ]
        if key == "batching":  # the drop-in issue's bar for the batching mode, then the serving core's
            checks += [check_ratio(f"{label}: 1-row req/s at 32 conns ≥ {factor:g}× KServe", to_kserve,
                                   factor, True, "req/s ratio") for factor in (6.0, 8.0)]
    floors = (
        ("rows10k", "10,000-row :predict rows/s ≥ 0.5× in-process floor", 0.5, True),
        ("training", "training samples/s ≥ 0.8× bare model.fit", 0.8, True),
        ("paint", "dashboard first paint ≤ 1.5× one-line app", 1.5, False),
    )
    for key, target, factor, at_least in floors:
        c = results.comparisons.get(key)
        if c is None:
            checks.append(TargetCheck(target, "not measured", "n/a"))
        else:
            checks.append(check(target, c.value, c.reference, factor, at_least, "ratio"))
    return checks + issue20_checks(results)


def previous_paint_ratio(report: str) -> float | None:
    """The first-paint row's ratio in an earlier report's "Against floors" table, or None."""
    for line in report.splitlines():
        if line.startswith(f"| {PAINT_WHAT} |"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            found = re.fullmatch(r"([\d.]+)×", cells[3]) if len(cells) > 3 else None
            return float(found.group(1)) if found else None
    return None


def issue20_checks(results: BenchResults) -> list[TargetCheck]:
    """Issue 20: the 10,000-row Predict page within 2 s, first paint within 10% of the last report's."""
    checks = []
    c = results.comparisons.get("predict10k")
    target = f"10,000 rows on Predict settle within {PREDICT10K_TARGET_S:g} s in Chromium (issue 20)"
    if c is None or c.value is None:
        checks.append(TargetCheck(target, "not measured", "n/a"))
    else:
        passed = c.value <= PREDICT10K_TARGET_S
        checks.append(TargetCheck(target, f"median {c.value:.2f} s", "Pass" if passed else "Miss"))
    paint = results.comparisons.get("paint")
    if paint is not None and paint.ratio is None:
        paint = None
    target = "dashboard first paint within 10% of the previous report's (÷ one-line app, issue 20)"
    drift = ratio(paint.ratio if paint else None, results.previous_paint_ratio)
    if drift is None:
        checks.append(TargetCheck(target, "not measured" if paint is None else "no previous ratio", "n/a"))
    else:
        measured = (f"{fmt_ratio(paint.ratio)} now ÷ {fmt_ratio(results.previous_paint_ratio)} before: "
                    f"{fmt_ratio(drift)}")
        checks.append(TargetCheck(target, measured, "Pass" if drift <= PAINT_DRIFT else "Miss"))
    return checks


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def predict_table(results: BenchResults) -> list[str]:
    """The 1-row :predict table: one row per (connections, contender), req/s ratios to the others."""
    keys = [k for k in CONTENDERS if any(results.load(k, c) for c in CONNECTIONS)]  # ratio columns
    header = ["conns", "contender", "req/s", "rounds' req/s", "p50 ms", "p99 ms",
              *[f"÷ {CONTENDERS[k]}" for k in keys]]
    lines = [_row(header), _row(["---:", "---", "---:", "---:", "---:", "---:", *["---:"] * len(keys)])]
    for conns in CONNECTIONS:
        for key in CONTENDERS:
            if key in results.unavailable:
                continue
            found = results.predict.get((key, conns))
            if found is None:
                continue
            if isinstance(found, str):
                lines.append(_row([str(conns), CONTENDERS[key], found, "", "", "", *[""] * len(keys)]))
                continue
            rps = fmt_number(found.rps) + (f" ({found.errors} errors)" if found.errors else "")
            ratios = ["—" if other == key else fmt_ratio(results.rps_ratio(key, other, conns))
                      for other in keys]
            lines.append(_row([str(conns), CONTENDERS[key], rps, results.spread(key, conns),
                               fmt_ms(found.p50_ms), fmt_ms(found.p99_ms), *ratios]))
    for key, note in results.unavailable.items():
        lines.append(_row(["all", CONTENDERS.get(key, key), note, "", "", "", *[""] * len(keys)]))
    return lines


def comparisons_table(results: BenchResults) -> list[str]:
    """The floors: big predict vs in process, train() vs bare fit, dashboard vs one-line app."""
    lines = [_row(["measurement", "this project", "reference", "ratio", "notes"]),
             _row(["---", "---:", "---:", "---:", "---"])]
    for key, c in results.comparisons.items():
        digits = 2 if c.unit == "s" else 0
        value = f"{fmt_number(c.value, digits)} {c.unit} ({c.value_label})"
        reference = f"{fmt_number(c.reference, digits)} {c.unit} ({c.reference_label})"
        note = c.note
        if key == "paint" and results.previous_paint_ratio is not None:
            drift = ratio(c.ratio, results.previous_paint_ratio)
            note += (f"; previous report's ratio {fmt_ratio(results.previous_paint_ratio)}, "
                     f"now ÷ then {fmt_ratio(drift)}")
        lines.append(_row([c.what, value, reference, fmt_ratio(c.ratio), note]))
    return lines


def targets_table(checks: list[TargetCheck]) -> list[str]:
    lines = [_row(["target", "measured", "result"]), _row(["---", "---", "---"])]
    lines += [_row([c.target, c.measured, f"**{c.verdict}**" if c.verdict == "Miss" else c.verdict])
              for c in checks]
    return lines


def render(results: BenchResults) -> str:
    """The whole report as Markdown (also what the bench prints)."""
    parts = ["# Bench results", ""]
    parts += [f"- {name}: {value}" for name, value in results.facts.items()]
    parts += ["", "Ratios compare numbers measured side by side in this run; absolute numbers depend on the "
              "machine and its load. `÷ X` is this row's req/s divided by X's at the same connection count. "
              "The 1-row contenders run side by side and each point is measured in interleaved rounds "
              "(every contender in turn, forwards then backwards): `req/s` and the latencies are the "
              "median round's, `rounds' req/s` the lowest and highest round, and a `÷ X` ratio the "
              "median of the rounds' ratios.",
              "", "## 1-row `:predict` (`{\"instances\": [[1.0, 2.0]]}`)", ""]
    parts += predict_table(results)
    if results.comparisons:
        parts += ["", "## Against floors", ""]
        parts += comparisons_table(results)
    parts += ["", "## Targets (issues 5, 10, 19 and 20)", ""]
    parts += targets_table(evaluate_targets(results))
    return "\n".join(parts) + "\n"
