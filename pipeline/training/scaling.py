"""Training in standardized units, reporting in the data's own units.

Adam moves a parameter by about its learning rate per step, so a model trained on raw data can only
travel about ``rate × steps`` (some 40 at the defaults): true weights of 100 or 10,000 were out of
reach. Training therefore sees each input shifted to mean 0 and divided by its standard deviation,
and the target shifted to mean 0 and divided by the spread the inputs explain, all measured on the
data before the first step. In those units the weights of any linear fit are of order 1 whatever
the data's units, and the least-squares bias is exactly 0 for every weight, so the model trains its
weights only and the bias follows from the means (the usual centring of linear regression).
:class:`Scaling` turns the weights back exactly (the model is linear), so progress, history, the run
record and the exported model are in the data's units.

Pure numpy, no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_CHUNK = 65_536


@dataclass(frozen=True)
class Scaling:
    """``x_std = (x - x_mean) / x_scale`` per input and ``y_std = (y - y_mean) / y_scale``."""

    x_mean: tuple[float, ...]
    x_scale: tuple[float, ...]
    """Each input's standard deviation (1 for a constant input: nothing to divide by)."""
    y_mean: float
    y_scale: float
    """The spread of ``y`` the inputs explain, ``sqrt(Σᵢ cov(xᵢ, y)² / var(xᵢ))``: for independent
    inputs like the tutorial's, ``std(x @ w0)``. Not ``std(y)``: noise can be thousands of times the
    signal, and dividing by it would shrink the weights to where Adam's last steps jitter them, in
    the data's units, by more than the quality gate allows. ``std(y)`` if the inputs explain
    nothing, 1 for a constant ``y``."""

    @classmethod
    def of_data(cls, x: np.ndarray, y: np.ndarray) -> Scaling:
        """The scaling of ``x`` (``[n, d]``) and ``y`` (``[n, 1]``): one pass in float64 over chunks of
        ``_CHUNK`` rows (about 0.3 s of CPU and 1.5 MiB of scratch memory at 10,000,000 rows). Sums
        are taken around the first chunk's means, so a large mean (a bias of 10,000) costs no
        precision."""
        n, d = max(1, len(x)), x.shape[1]
        shift = np.hstack([x[:_CHUNK], y[:_CHUNK]]).astype(np.float64).mean(axis=0)
        sums, products = np.zeros(d + 1), np.zeros((d + 1, d + 1))
        block = np.empty((_CHUNK, d + 1))
        for lo in range(0, len(x), _CHUNK):
            z = block[: min(_CHUNK, len(x) - lo)]
            z[:, :d], z[:, d] = x[lo : lo + len(z)], y[lo : lo + len(z), 0]
            z -= shift
            sums += z.sum(axis=0)
            products += z.T @ z
        mean = sums / n
        covariance = products / n - np.outer(mean, mean)  # of [x | y], around the shift
        std = [_usable(v) for v in np.sqrt(np.maximum(np.diag(covariance), 0.0))]
        explained = float(np.sqrt(np.sum(covariance[:d, d] ** 2 / np.square(std[:d]))))
        y_scale = explained if np.isfinite(explained) and explained > 0 else std[d]
        centre = shift + mean
        return cls(tuple(float(m) for m in centre[:d]), tuple(std[:d]), float(centre[d]), y_scale)

    @classmethod
    def identity(cls, features: int) -> Scaling:
        """No change of units."""
        return cls((0.0,) * features, (1.0,) * features, 0.0, 1.0)

    def to_original(self, w_std: Sequence[float]) -> tuple[list[float], float]:
        """Weights learned on standardized data as weights and bias on the original data:
        ``w_i = y_scale · w_std_i / x_scale_i`` and ``b = y_mean - Σ w_i · x_mean_i``, the
        least-squares bias for those weights."""
        w = self.y_scale * np.asarray(w_std, dtype=np.float64) / np.asarray(self.x_scale)
        return [float(v) for v in w], float(self.y_mean - np.dot(w, self.x_mean))

    def to_scaled(self, w: Sequence[float]) -> list[float]:
        """Original weights in standardized units (the inverse of :meth:`to_original` for weights)."""
        return [float(v) for v in np.asarray(w, dtype=np.float64) * np.asarray(self.x_scale) / self.y_scale]

    def loss_to_original(self, mse: float) -> float:
        """A mean squared error on standardized targets, in the targets' squared units."""
        return float(mse) * self.y_scale**2

    def error_to_original(self, mae: float) -> float:
        """A mean absolute error on standardized targets, in the targets' units."""
        return float(mae) * self.y_scale


def _usable(std: float) -> float:
    """A standard deviation to divide by: itself if positive and finite, else 1."""
    return float(std) if np.isfinite(std) and std > 0 else 1.0
