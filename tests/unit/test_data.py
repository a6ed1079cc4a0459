"""Synthetic data: reproducible, shaped as promised, and consistent with its OLS fit."""

import numpy as np
import pytest

from pipeline.training.data import CHUNK_ROWS, DataSpec, make_data, ols_solution, true_values


def test_same_seed_gives_identical_bytes():
    x1, y1 = make_data(DataSpec(samples=1000, seed=7))
    x2, y2 = make_data(DataSpec(samples=1000, seed=7))
    assert x1.tobytes() == x2.tobytes() and y1.tobytes() == y2.tobytes()


def test_other_seed_gives_other_data():
    x1, _ = make_data(DataSpec(samples=100, seed=1))
    x2, _ = make_data(DataSpec(samples=100, seed=2))
    assert not np.array_equal(x1, x2)


def test_shapes_dtype_and_range():
    x, y = make_data(DataSpec(samples=500))
    assert x.shape == (500, 2) and y.shape == (500, 1)
    assert x.dtype == np.float32 and y.dtype == np.float32
    assert x.min() >= -10 and x.max() <= 10


def test_any_number_of_features():
    x, y = make_data(DataSpec(samples=2000, true_w=(1.0, 2.0, 3.0, -4.0), true_b=0.5, noise=0.0))
    assert x.shape == (2000, 4)
    np.testing.assert_allclose(y[:, 0], x @ np.array([1, 2, 3, -4], np.float32) + 0.5, atol=1e-4)


def test_noise_free_ols_recovers_truth_exactly():
    x, y = make_data(DataSpec(samples=300, noise=0.0))
    w, b = ols_solution(x, y)
    np.testing.assert_allclose([*w, b], [2.0, -1.0, 3.0], atol=1e-4)


def test_noise_has_requested_std():
    x, y = make_data(DataSpec(samples=200_000, noise=2.0))
    residual = y[:, 0] - true_values(x, (2.0, -1.0), 3.0)
    assert residual.std() == pytest.approx(2.0, rel=0.02)


def test_large_data_is_chunked_and_matches_ols_with_lstsq():
    n = CHUNK_ROWS * 2 + 17
    x, y = make_data(DataSpec(samples=n, seed=3))
    assert x.shape == (n, 2)
    xa = np.hstack([x.astype(np.float64), np.ones((n, 1))])
    expected = np.linalg.lstsq(xa, y[:, 0].astype(np.float64), rcond=None)[0]
    w, b = ols_solution(x, y)
    np.testing.assert_allclose([*w, b], expected, atol=1e-8)


def test_true_values_is_the_noise_free_plane():
    np.testing.assert_allclose(true_values([[1, 2], [5, 7]], (2, -1), 3), [3.0, 6.0])


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        (DataSpec(samples=1), "samples"),
        (DataSpec(samples=10_000_001), "10,000,001"),
        (DataSpec(noise=-1.0), "noise"),
        (DataSpec(noise=float("nan")), "noise"),
        (DataSpec(noise=float("inf")), "noise"),
        (DataSpec(true_w=()), "true_w"),
        (DataSpec(true_b=float("nan")), "true_b"),
        (DataSpec(seed=-1), "seed"),
    ],
)
def test_bad_specs_name_the_bad_value(spec, named):
    with pytest.raises(ValueError, match=named):
        make_data(spec)
