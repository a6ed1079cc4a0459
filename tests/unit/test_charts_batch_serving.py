"""The Batch page's sample scatter and the Serving page's traffic charts: pure functions, checked by
their traces, ranges and axes."""

from __future__ import annotations

import numpy as np

from dashboard.charts import MAX_TICKS, batch_predictions_figure


def test_the_batch_scatter_holds_every_point_with_the_identity_line_and_few_ticks() -> None:
    rng = np.random.default_rng(3)
    truth = rng.uniform(-40, 40, 1000)
    predicted = truth + rng.normal(0, 0.5, 1000)
    predicted[0] = 95.0  # one far-off point is drawn, not clipped
    fig = batch_predictions_figure(truth, predicted)
    line, points = fig.data
    assert line.name == "perfect model (y = x)" and list(line.x) == list(line.y)
    assert points.name == "1,000 scored rows" and len(points.x) == 1000
    for axis in (fig.layout.xaxis, fig.layout.yaxis):
        low, high = axis.range
        assert low < min(truth.min(), predicted.min()) and high > max(truth.max(), predicted.max())
        assert axis.nticks == MAX_TICKS
    assert tuple(fig.layout.xaxis.range) == tuple(fig.layout.yaxis.range)  # y = x is the diagonal
