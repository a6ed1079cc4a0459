"""The quality gate: is a finished run good enough to become a served version by itself?

A run is judged against the best any linear model can do on its very sample, the
ordinary-least-squares (OLS) solution, and against the noise the data was made with:

- **failed**: the loss or a learned parameter is not a finite number (the run diverged, e.g.
  sgd at learning rate 10). Such a run is never exported: a server would answer ``NaN``.
- **warning**: the run finished but did not learn what the data allows. Either a parameter is
  far from OLS (``max |learned − OLS| > PARAM_REL_TOL · max(1, max |OLS|)``: 5% of the size of
  the optimum's own parameters, so the tolerance scales with the data's weights), or the
  learned model's mean squared error on the training data is far above the noise variance
  (``MSE > LOSS_FACTOR · max(σ², MSE_OLS) + LOSS_REL_FLOOR · var(Y)``; the floor keeps noise-free
  data from demanding a perfect fit). A warned run is recorded and can be exported by an
  explicit choice ("Export anyway", ``--export-anyway``), never automatically: TF Serving
  serves the newest version, so exporting it would serve it.
- **ok**: neither.

Pure numpy, no TensorFlow: the dashboard and the tests use it without loading a model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

OK, WARNING, FAILED = "ok", "warning", "failed"

PARAM_REL_TOL = 0.05
"""A parameter further from OLS than this fraction of the largest OLS parameter (at least 1)
is "far from the optimum": 0.15 for the tutorial's w0 = [2, -1], b0 = 3."""
LOSS_FACTOR = 1.5
"""A final MSE above this multiple of the noise variance (or of the OLS MSE, if larger) is
"far above the noise"."""
LOSS_REL_FLOOR = 1e-4
"""Part of var(Y) every loss limit allows, so noise-free data does not require an exact fit."""
_CHUNK = 65_536


@dataclass(frozen=True)
class Verdict:
    """What the gate decided, with the numbers behind it (stored in the run record)."""

    level: str
    """``"ok"``, ``"warning"`` or ``"failed"``."""
    reasons: list[str] = field(default_factory=list)
    """One sentence per problem, with the numbers, in the user's words."""
    numbers: dict[str, float] = field(default_factory=dict)
    """``max_vs_ols``, ``param_tolerance``, ``mse``, ``mse_ols``, ``noise_var``, ``loss_limit``."""

    @property
    def blocks_export(self) -> bool:
        """True unless the run may become a version by itself."""
        return self.level != OK

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Verdict | None:
        """The verdict stored in a run record, or ``None`` for records made before the gate."""
        if not data or data.get("level") not in (OK, WARNING, FAILED):
            return None
        return cls(str(data["level"]), [str(r) for r in data.get("reasons") or []],
                   {str(k): float(v) for k, v in (data.get("numbers") or {}).items()})


def mse(x: np.ndarray, y: np.ndarray, w: Sequence[float], b: float) -> float:
    """Mean squared error of ``x @ w + b`` against ``y`` in float64, in chunks (any size)."""
    wv = np.asarray(w, dtype=np.float64).reshape(-1, 1)
    total = 0.0
    for lo in range(0, len(x), _CHUNK):
        err = x[lo : lo + _CHUNK].astype(np.float64) @ wv + float(b) - y[lo : lo + _CHUNK].astype(np.float64)
        total += float(np.sum(err * err))
    return total / max(1, len(x))


def _finite(values: Sequence[float]) -> bool:
    return all(math.isfinite(float(v)) for v in values)


def assess(
    learned: Sequence[float],
    ols: Sequence[float],
    *,
    final_loss: float,
    mse_learned: float,
    mse_ols: float,
    noise: float,
    y_var: float,
) -> Verdict:
    """Judge a run: ``learned`` and ``ols`` are ``[*w, b]``; ``final_loss`` the last loss
    training reported; ``mse_learned``/``mse_ols`` the MSE of each on the training data;
    ``noise`` the noise std the data was made with; ``y_var`` the variance of Y."""
    if not _finite([final_loss, mse_learned, *learned]):
        bad = [f"{v}" for v in learned if not math.isfinite(float(v))]
        what = f"learned parameters {', '.join(bad)}" if bad else f"loss {final_loss:g}"
        return Verdict(FAILED, [f"Training diverged: {what} is not a finite number. A version with "
                                "these weights would answer NaN; lower the learning rate "
                                "(sgd is stable below about 1) or use adam."],
                       {"final_loss": float(final_loss)})
    max_vs_ols = float(np.max(np.abs(np.asarray(learned, float) - np.asarray(ols, float))))
    tolerance = PARAM_REL_TOL * max(1.0, float(np.max(np.abs(np.asarray(ols, float)))))
    noise_var = float(noise) ** 2
    loss_limit = LOSS_FACTOR * max(noise_var, mse_ols) + LOSS_REL_FLOOR * max(0.0, y_var)
    numbers = {"max_vs_ols": max_vs_ols, "param_tolerance": tolerance, "mse": float(mse_learned),
               "mse_ols": float(mse_ols), "noise_var": noise_var, "loss_limit": loss_limit,
               "final_loss": float(final_loss)}
    reasons = []
    if max_vs_ols > tolerance:
        reasons.append(f"Far from the least-squares optimum: max |learned − OLS| = {max_vs_ols:,.4g}, "
                       f"more than the tolerance {tolerance:,.4g} (5% of the largest OLS parameter).")
    if mse_learned > loss_limit:
        reasons.append(f"Loss far above the noise: the learned model's MSE on its data is "
                       f"{mse_learned:,.4g}, above {loss_limit:,.4g} (noise variance σ² = {noise_var:,.4g}; "
                       f"the OLS optimum reaches {mse_ols:,.4g}).")
    return Verdict(WARNING if reasons else OK, reasons, numbers)


def assess_fit(x: np.ndarray, y: np.ndarray, learned_w: Sequence[float], learned_b: float,
               ols_w: Sequence[float], ols_b: float, final_loss: float, noise: float) -> Verdict:
    """:func:`assess` with the MSEs and var(Y) computed from the training data ``x``, ``y``."""
    learned = [*learned_w, learned_b]
    if not _finite([final_loss, *learned]):
        return assess(learned, [*ols_w, ols_b], final_loss=final_loss, mse_learned=math.nan,
                      mse_ols=math.nan, noise=noise, y_var=math.nan)
    return assess(learned, [*ols_w, ols_b], final_loss=final_loss,
                  mse_learned=mse(x, y, learned_w, learned_b), mse_ols=mse(x, y, ols_w, ols_b),
                  noise=noise, y_var=float(np.var(y.astype(np.float64))))
