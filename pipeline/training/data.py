"""Synthetic regression data: ``Y = X @ w0 + b0 + noise``, the TF Serving tutorial's set-up.

Generation is pure numpy and seeded, so the same :class:`DataSpec` gives the same bytes on
every call and every machine; training and the dashboard's plots both rebuild data from the
spec stored in a run record instead of storing the data itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.settings import MAX_SAMPLES, MIN_SAMPLES, Settings

X_LOW, X_HIGH = -10.0, 10.0
"""Inputs are drawn uniformly from this interval in every feature."""

CHUNK_ROWS = 65_536
"""Rows generated per chunk: large data is produced in chunks of this size so that
generation never needs more than a few MiB of scratch memory at once."""


@dataclass(frozen=True)
class DataSpec:
    """What defines a synthetic data set: size, true weights and bias, noise and seed.

    Defaults are the tutorial's fixed numbers (`Settings`' defaults, not the environment); a
    caller that honours the environment builds the spec from its `Settings`."""

    samples: int = Settings.num_samples
    true_w: tuple[float, ...] = Settings.true_w
    true_b: float = Settings.true_b
    noise: float = Settings.noise_std
    seed: int = 0

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad value; return quietly if all are usable."""
        if isinstance(self.samples, bool) or not isinstance(self.samples, int | np.integer):
            raise ValueError(f"samples must be a whole number, got {self.samples!r}")
        if not MIN_SAMPLES <= self.samples <= MAX_SAMPLES:
            bounds = f"{MIN_SAMPLES:,} and {MAX_SAMPLES:,}"
            raise ValueError(f"samples must be between {bounds}, got {self.samples:,}")
        if len(self.true_w) < 1:
            raise ValueError("true_w needs at least one weight, got an empty list")
        for i, w in enumerate(self.true_w):
            if not math.isfinite(float(w)):
                raise ValueError(f"true_w[{i}] must be a finite number, got {w!r}")
        if not math.isfinite(float(self.true_b)):
            raise ValueError(f"true_b must be a finite number, got {self.true_b!r}")
        if not math.isfinite(float(self.noise)) or self.noise < 0:
            raise ValueError(f"noise must be a finite number >= 0, got {self.noise!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer) or self.seed < 0:
            raise ValueError(f"seed must be a whole number >= 0, got {self.seed!r}")

    @property
    def features(self) -> int:
        return len(self.true_w)


def make_data(spec: DataSpec) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(X, Y)`` as float32 arrays of shape ``[n, d]`` and ``[n, 1]``.

    Bit-for-bit reproducible for a given spec: the data is the concatenation of
    :func:`iter_chunks`, so a streamed and a materialised data set are identical.
    """
    spec.validate()
    x = np.empty((spec.samples, spec.features), dtype=np.float32)
    y = np.empty((spec.samples, 1), dtype=np.float32)
    start = 0
    for xc, yc in iter_chunks(spec):
        x[start : start + len(xc)] = xc
        y[start : start + len(yc)] = yc
        start += len(xc)
    return x, y


def iter_chunks(spec: DataSpec, chunk_rows: int = CHUNK_ROWS) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield the data set in consecutive float32 chunks of at most ``chunk_rows`` rows.

    Each chunk has its own child seed derived from ``spec.seed`` and the chunk index,
    so chunk ``k`` is the same whatever the other chunks are doing.
    """
    w = np.asarray(spec.true_w, dtype=np.float64).reshape(-1, 1)
    children = np.random.SeedSequence(spec.seed).spawn(math.ceil(spec.samples / CHUNK_ROWS))
    for k, child in enumerate(children):
        rows = min(CHUNK_ROWS, spec.samples - k * CHUNK_ROWS)
        rng = np.random.default_rng(child)
        xc = rng.uniform(X_LOW, X_HIGH, size=(rows, spec.features))
        yc = xc @ w + spec.true_b + rng.normal(0.0, spec.noise, size=(rows, 1))
        xc32, yc32 = xc.astype(np.float32), yc.astype(np.float32)
        for lo in range(0, rows, chunk_rows):
            yield xc32[lo : lo + chunk_rows], yc32[lo : lo + chunk_rows]


def ols_solution(x: np.ndarray, y: np.ndarray) -> tuple[list[float], float]:
    """The ordinary-least-squares weights and bias of ``y ~ x @ w + b``.

    This is the best any linear model can learn from this exact sample, so learned
    weights are judged against it as well as against the true ``w0``/``b0``. Solved
    through the normal equations in float64, accumulated in chunks, so it costs
    O(n·d²) time and O(d²) memory even at millions of rows.
    """
    d = x.shape[1]
    xtx = np.zeros((d + 1, d + 1))
    xty = np.zeros(d + 1)
    for lo in range(0, len(x), CHUNK_ROWS):
        xa = np.hstack(
            [x[lo : lo + CHUNK_ROWS].astype(np.float64), np.ones((min(CHUNK_ROWS, len(x) - lo), 1))]
        )
        ya = y[lo : lo + CHUNK_ROWS, 0].astype(np.float64)
        xtx += xa.T @ xa
        xty += xa.T @ ya
    coef, *_ = np.linalg.lstsq(xtx, xty, rcond=None)
    return [float(c) for c in coef[:d]], float(coef[d])


def true_values(x: Sequence[Sequence[float]] | np.ndarray, w: Sequence[float], b: float) -> np.ndarray:
    """``x @ w + b`` without noise: what a perfect model answers for rows ``x``."""
    return np.asarray(x, dtype=np.float64) @ np.asarray(w, dtype=np.float64) + float(b)
