"""Training in standardized units, reporting in the data's own units.

Adam moves a parameter by about its learning rate per step, so a model trained on raw data can only
travel about ``rate × steps`` (some 40 at the defaults): true weights of 100 or 10,000 were out of
reach. Training therefore sees each input and the target shifted to mean 0 and divided by their
standard deviation, all measured on the data before the first step. In those units the weights of
any linear fit are of order 1 whatever the data's units, and the least-squares bias is exactly 0 for
every weight, so the model trains its weights only and the bias follows from the means (the usual
centring of linear regression). :class:`Scaling` turns the weights back exactly (the model is
linear), so progress, history, the run record and the exported model are in the data's units.

Pure numpy, no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

_CHUNK = 65_536


@dataclass(frozen=True)
class Scaling:
    """``x_std = (x - x_mean) / x_scale`` per input and ``y_std = (y - y_mean) / y_scale``.

    A scale is the standard deviation of its column, or 1 for a constant column (nothing to divide
    by: the column only loses its mean)."""

    x_mean: tuple[float, ...]
    x_scale: tuple[float, ...]
    y_mean: float
    y_scale: float

    @classmethod
    def of_data(cls, x: np.ndarray, y: np.ndarray) -> Scaling:
        """The means and standard deviations of ``x`` (``[n, d]``) and ``y`` (``[n, 1]``), in float64
        and in chunks: 10,000,000 rows cost two passes and a few MiB of scratch memory."""
        total = np.zeros(x.shape[1] + 1)
        for xy in _chunks(x, y):
            total += np.sum(xy, axis=0)
        mean = total / max(1, len(x))
        squares = np.zeros_like(mean)
        for xy in _chunks(x, y):
            squares += np.sum((xy - mean) ** 2, axis=0)
        std = np.sqrt(squares / max(1, len(x)))
        scale = [float(s) if np.isfinite(s) and s > 0 else 1.0 for s in std]
        return cls(tuple(float(m) for m in mean[:-1]), tuple(scale[:-1]), float(mean[-1]), scale[-1])

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


def _chunks(x: np.ndarray, y: np.ndarray) -> Iterator[np.ndarray]:
    """``[x | y]`` in float64, ``_CHUNK`` rows at a time."""
    for lo in range(0, len(x), _CHUNK):
        yield np.hstack([x[lo : lo + _CHUNK], y[lo : lo + _CHUNK]]).astype(np.float64)
