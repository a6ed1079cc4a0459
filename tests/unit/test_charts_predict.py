"""The Predict page's charts: pure functions, checked by their traces and values."""

from __future__ import annotations

import numpy as np
import pytest

from dashboard.charts import compare_versions_figure, points_on_true_plane_figure, predicted_vs_true_figure
from pipeline.training.data import true_values

X = [[1.0, 2.0], [5.0, 7.0], [-3.0, 0.5]]
W, B = (2.0, -1.0), 3.0
TRUE = true_values(X, W, B).tolist()  # [3.0, 6.0, -3.5]
PREDICTED = [3.1, 5.8, -3.5]


def test_predicted_vs_true_points_and_identity_line() -> None:
    fig = predicted_vs_true_figure(TRUE, PREDICTED)
    line, points = fig.data
    assert line.name == "perfect model (y = x)" and list(line.x) == list(line.y)
    assert line.x[0] < min(TRUE + PREDICTED) and line.x[1] > max(TRUE + PREDICTED)
    assert points.name == "predictions"
    assert list(points.x) == TRUE and list(points.y) == PREDICTED
    assert "residual +0.1" in points.text[0] and "residual -0.2" in points.text[1]
    assert fig.layout.xaxis.title.text.startswith("true value")


def test_predicted_vs_true_length_mismatch() -> None:
    with pytest.raises(ValueError, match="2 true values but 3 predictions"):
        predicted_vs_true_figure([1.0, 2.0], [1.0, 2.0, 3.0])


def test_predicted_vs_true_nonfinite_values_do_not_break_the_line() -> None:
    fig = predicted_vs_true_figure([1.0, 2.0], [float("nan"), float("inf")])
    assert all(np.isfinite(fig.data[0].x))


def test_points_on_true_plane() -> None:
    fig = points_on_true_plane_figure(X, PREDICTED, W, B)
    plane, residuals, points = fig.data
    assert plane.type == "surface" and plane.name == "true plane"
    z = np.asarray(plane.z)
    x0, x1 = np.asarray(plane.x), np.asarray(plane.y)
    np.testing.assert_allclose(z, 2.0 * x0 - 1.0 * x1 + 3.0)
    assert x0.min() == -10.0 and x0.max() == 10.0
    assert points.type == "scatter3d" and list(points.z) == PREDICTED
    assert list(points.x) == [1.0, 5.0, -3.0] and list(points.y) == [2.0, 7.0, 0.5]
    # One vertical segment per row, from the true value up/down to the prediction.
    assert list(residuals.z) == [3.0, 3.1, None, 6.0, 5.8, None, -3.5, -3.5, None]
    assert list(residuals.x) == [1.0, 1.0, None, 5.0, 5.0, None, -3.0, -3.0, None]


def test_plane_grows_to_cover_far_rows() -> None:
    fig = points_on_true_plane_figure([[50.0, -20.0]], [123.0], W, B)
    x0 = np.asarray(fig.data[0].x)
    assert x0.min() == -20.0 and x0.max() == 50.0


def test_points_on_true_plane_needs_two_features() -> None:
    with pytest.raises(ValueError, match="exactly 2 input features"):
        points_on_true_plane_figure([[1.0, 2.0, 3.0]], [1.0], (1.0, 1.0, 1.0), 0.0)
    with pytest.raises(ValueError, match="2 input rows but 1 predictions"):
        points_on_true_plane_figure(X[:2], [1.0], W, B)


def test_compare_versions_side_by_side() -> None:
    fig = compare_versions_figure(TRUE, {"version 2": [2.0, 5.0, -4.0], "version 3": PREDICTED})
    assert [a.text for a in fig.layout.annotations] == ["version 2", "version 3"]
    points = [t for t in fig.data if t.mode == "markers"]
    assert [t.name for t in points] == ["version 2", "version 3"]
    assert list(points[0].y) == [2.0, 5.0, -4.0] and list(points[1].y) == PREDICTED
    assert points[0].xaxis == "x" and points[1].xaxis == "x2"
    lines = [t for t in fig.data if t.mode == "lines"]
    assert len(lines) == 2 and [t.showlegend for t in lines] == [True, False]
    assert fig.layout.xaxis.range == fig.layout.xaxis2.range


def test_compare_versions_needs_predictions() -> None:
    with pytest.raises(ValueError, match="nothing to compare"):
        compare_versions_figure(TRUE, {})
    with pytest.raises(ValueError, match="3 true values but 2 predictions"):
        compare_versions_figure(TRUE, {"version 1": [1.0, 2.0]})
