"""The quality gate (pipeline.training.quality): diverged runs fail, unconverged ones warn.

The numbers are the issue's cases as measured when training fitted raw data (see the docstring of
the module for the rule): sgd at rate 10 gives NaN; true w0 = 10000 learned 32.7; 10 samples end
1.30 from OLS. Training now fits standardized data and learns both (tests/unit/test_training.py);
the gate's verdict on such numbers is unchanged.
"""

import math

import numpy as np

from pipeline.training import quality
from pipeline.training.data import DataSpec, make_data, ols_solution


def test_non_finite_loss_or_weights_fail_the_run():
    verdict = quality.assess([math.nan, 1.0, 2.0], [2.0, -1.0, 3.0], final_loss=math.nan,
                             mse_learned=math.nan, mse_ols=4.0, noise=2.0, y_var=160.0)
    assert verdict.level == "failed" and verdict.blocks_export
    assert "diverged" in verdict.reasons[0] and "nan" in verdict.reasons[0]
    inf = quality.assess([math.inf, 1.0, 2.0], [2.0, -1.0, 3.0], final_loss=3.0, mse_learned=5.0,
                         mse_ols=4.0, noise=2.0, y_var=160.0)
    assert inf.level == "failed"


def test_a_converged_run_passes():
    verdict = quality.assess([2.0006, -1.011, 2.951], [2.0, -1.0114, 2.951], final_loss=4.05,
                             mse_learned=4.0544, mse_ols=4.0544, noise=2.0, y_var=167.0)
    assert verdict.level == "ok" and not verdict.blocks_export and verdict.reasons == []


def test_far_from_the_optimum_is_a_warning_scaled_by_the_optimums_size():
    # true w0 = 10000, b0 = -10000; the run learned w0 = 32.7
    big = quality.assess([32.7, -0.78, -26.3], [10000.0, -1.0, -10000.0], final_loss=3.4e9, mse_learned=3.4e9,
                         mse_ols=4.05, noise=2.0, y_var=3.3e9)
    assert big.level == "warning" and big.blocks_export
    assert big.numbers["param_tolerance"] > 499  # 5% of 10,000: the same slack relative to the data
    assert "Far from the least-squares optimum" in big.reasons[0] and "9,974" in big.reasons[0]
    # 10 samples: 1.30 from OLS, where the parameters are ~3, is far
    few = quality.assess([1.76, -1.40, 2.0], [2.09, -0.96, 3.30], final_loss=8.9, mse_learned=4.1,
                         mse_ols=3.2, noise=2.0, y_var=150.0)
    assert few.level == "warning" and few.numbers["max_vs_ols"] > 1.29


def test_a_loss_far_above_the_noise_is_a_warning_even_close_to_the_optimum():
    verdict = quality.assess([2.0, -1.0, 3.0], [2.0, -1.0, 3.0], final_loss=9.0, mse_learned=9.0, mse_ols=4.0,
                             noise=2.0, y_var=160.0)
    assert verdict.level == "warning" and "Loss far above the noise" in verdict.reasons[0]


def test_noise_free_data_does_not_demand_an_exact_fit():
    x, y = make_data(DataSpec(samples=500, noise=0.0))
    w, b = ols_solution(x, y)
    verdict = quality.assess_fit(x, y, [w[0] + 1e-4, w[1]], b + 1e-4, w, b, final_loss=1e-6, noise=0.0)
    assert verdict.level == "ok", verdict.reasons


def test_the_verdict_round_trips_through_a_run_record():
    x, y = make_data(DataSpec(samples=200))
    w, b = ols_solution(x, y)
    verdict = quality.assess_fit(x, y, [0.0, 0.0], 0.0, w, b, final_loss=100.0, noise=2.0)
    assert verdict.level == "warning"
    assert quality.Verdict.from_dict(verdict.to_dict()) == verdict
    assert quality.Verdict.from_dict(None) is None
    assert np.isclose(verdict.numbers["mse"], float(np.mean(y.astype(np.float64) ** 2)))
