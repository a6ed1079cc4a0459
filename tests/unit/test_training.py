"""Training: the defaults learn the OLS optimum, runs are reproducible, cancel stops a run."""

import threading

import numpy as np
import pytest

from pipeline.training.data import make_data
from pipeline.training.fit import TrainConfig, auto_batch_size, train
from pipeline.training.scaling import Scaling


@pytest.fixture(scope="module")
def default_run():
    return train(TrainConfig())


def test_defaults_reach_ols_within_0_02(default_run):
    learned = np.array([*default_run.w, default_run.b])
    ols = np.array([*default_run.ols_w, default_run.ols_b])
    assert np.max(np.abs(learned - ols)) < 0.02
    assert default_run.errors()["vs_ols"] < 0.02
    assert default_run.status == "succeeded"


def test_defaults_are_near_the_true_weights(default_run):
    assert np.max(np.abs(np.array([*default_run.w, default_run.b]) - [2.0, -1.0, 3.0])) < 0.2


def test_history_has_one_entry_per_epoch_with_loss_mae_w_b(default_run):
    assert [h["epoch"] for h in default_run.history] == list(range(1, 101))
    last = default_run.history[-1]
    assert set(last) >= {"loss", "mae", "w", "b"}
    assert last["loss"] == pytest.approx(4.0, rel=0.25)  # the noise variance: nothing left to learn
    assert default_run.history[0]["loss"] > 10 * last["loss"]


def test_the_result_fills_a_run_record_of_plain_json_data(default_run):
    import json

    from pipeline.store.run_record import RunRecord

    record = default_run.record_into(RunRecord("r1"))
    assert record.status == "succeeded" and record.quality_level == "ok"
    on_disk = json.loads(json.dumps(record.to_json()))
    assert on_disk["ols"]["w"] == pytest.approx(default_run.ols_w) and on_disk["status"] == "succeeded"
    assert set(on_disk["timings"]) >= {"data_s", "fit_s", "total_s"}


# True weights a user can type (the form allows ±10,000), every sign, biases of the same size, and
# noise from none to far above the weights: the defaults learn each within the quality gate.
TRUTHS = [
    ((10_000.0, -10_000.0), -10_000.0, 2.0),
    ((-10_000.0, 10_000.0), 10_000.0, 1_000.0),
    ((10_000.0, 10_000.0), 10_000.0, 0.0),
    ((100.0, -50.0), 3.0, 2.0),  # the case: learned [30.4, -27.6] with the raw-data fit
    ((-1_000.0, 250.0), -500.0, 20.0),
    ((10_000.0, 0.1), -0.1, 2.0),  # both ends of the range in one model
    ((0.1, -0.1), 0.1, 0.01),
    ((-0.1, -0.1), -0.1, 2.0),
]


@pytest.mark.parametrize(("true_w", "true_b", "noise"), TRUTHS,
                         ids=[f"w={w[0]:g},{w[1]:g} b={b:g} noise={n:g}" for w, b, n in TRUTHS])
def test_the_defaults_learn_true_weights_from_0_1_to_10_000_within_the_gate(true_w, true_b, noise):
    r = train(TrainConfig(true_w=true_w, true_b=true_b, noise=noise))
    assert r.status == "succeeded" and r.quality.level == "ok", (r.w, r.b, r.quality.reasons)
    scale = max(1.0, *map(abs, [*r.ols_w, r.ols_b]))
    assert r.errors()["vs_ols"] < 0.01 * scale  # a fifth of the gate's 5%
    # what the user sees is in the data's units: the last epoch, the loss, and the model's answers
    assert r.history[-1]["w"] == pytest.approx(r.w) and r.history[-1]["b"] == pytest.approx(r.b)
    floor = max(noise**2, r.quality.numbers["mse_ols"])  # the noise: nothing left to learn
    assert r.history[-1]["loss"] == pytest.approx(floor, rel=0.3, abs=1e-3 * scale)
    rows = np.array([[1.0, 2.0], [5.0, 7.0]], dtype=np.float32)
    answer = r.model.predict(rows, verbose=0)[:, 0]
    np.testing.assert_allclose(answer, rows @ np.array(r.w) + r.b, rtol=1e-5, atol=1e-4 * scale)


def test_scaling_turns_standardized_weights_into_the_datas_units_exactly():
    x, y = make_data(TrainConfig(true_w=(300.0, -0.5), true_b=-40.0, noise=0.0).data_spec())
    s = Scaling.of_data(x, y)
    x64, y64 = x.astype(np.float64), y[:, 0].astype(np.float64)
    assert s.x_mean == pytest.approx(x64.mean(axis=0)) and s.x_scale == pytest.approx(x64.std(axis=0))
    assert s.y_mean == pytest.approx(y64.mean()) and s.y_scale == pytest.approx(y64.std(), rel=0.02)
    w_std = s.to_scaled([300.0, -0.5])
    assert max(map(abs, w_std)) < 1.0  # of order 1, whatever the units
    w, b = s.to_original(w_std)
    assert w == pytest.approx([300.0, -0.5]) and b == pytest.approx(-40.0, abs=1e-3)
    assert s.loss_to_original(1.0) == pytest.approx(s.y_scale**2) and s.error_to_original(1.0) == s.y_scale


def test_noise_does_not_set_the_scale_of_y_the_inputs_do():
    """Noise std 1,000 on weights [2, -1]: y's spread is ~1,000, the part x explains ~13 (std(x @ w0)).
    Dividing by 1,000 would leave the weights ~0.01 and Adam's last steps would jitter them, in the
    data's units, by more than the gate's 5% (seen at 10,000,000 rows)."""
    x, y = make_data(TrainConfig(samples=100_000, noise=1_000.0).data_spec())
    s = Scaling.of_data(x, y)
    assert float(np.std(y)) > 900 and 10 < s.y_scale < 20
    w_std = s.to_scaled([2.0, -1.0])
    assert 0.5 < w_std[0] < 1 and -0.5 < w_std[1] < -0.3  # of order 1, as without noise


def test_a_constant_target_keeps_its_units_and_its_mean_as_the_bias():
    x, y = make_data(TrainConfig(true_w=(0.0, 0.0), true_b=5.0, noise=0.0).data_spec())
    s = Scaling.of_data(x, y)
    assert s.y_scale == 1.0 and s.to_original([0.0, 0.0]) == ([0.0, 0.0], 5.0)


def test_same_config_gives_same_weights():
    cfg = TrainConfig(samples=200, epochs=5, seed=11)
    a, b = train(cfg), train(cfg)
    assert a.w == b.w and a.b == b.b


def test_the_tutorial_recipe_does_not_learn():
    """The reason the defaults differ from the tutorial: rmsprop at its default rate,
    one epoch, batch 8 stays far from the optimum."""
    r = train(
        TrainConfig(optimizer="rmsprop", learning_rate=0.001, epochs=1, batch_size=8, lr_schedule="constant")
    )
    assert r.errors()["vs_ols"] > 1.0


def test_progress_reports_every_epoch_and_cancel_stops_between_batches():
    cancel = threading.Event()
    seen = []

    def on_progress(p):
        seen.append(p)
        if p.epoch_end and p.epoch == 1:
            cancel.set()

    r = train(TrainConfig(samples=20_000, epochs=50, batch_size=16), on_progress=on_progress, cancel=cancel)
    assert r.status == "cancelled"
    assert len(r.history) == 1  # stopped inside epoch 2, not at its end
    assert seen[0].epoch == 1 and 0 < seen[-1].fraction < 0.05


def test_auto_batch_size_keeps_large_runs_to_about_100_steps_per_epoch():
    assert auto_batch_size(800) == 64
    assert auto_batch_size(1_000_000) == 8192
    assert 1_000_000 / auto_batch_size(1_000_000) < 130


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"samples": 1}, "samples"),
        ({"samples": 10_000_001}, "samples"),
        ({"noise": -0.5}, "noise"),
        ({"noise": float("inf")}, "noise"),
        ({"epochs": 0}, "epochs"),
        ({"optimizer": "adamax2"}, "adamax2"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr_schedule": "linear"}, "linear"),
    ],
)
def test_bad_config_raises_value_error_naming_the_value(changes, named):
    with pytest.raises(ValueError, match=named):
        train(TrainConfig(**changes))
