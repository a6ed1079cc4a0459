"""Training: the defaults learn the OLS optimum, runs are reproducible, cancel stops a run."""

import threading

import numpy as np
import pytest

from pipeline.training.fit import TrainConfig, auto_batch_size, train


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
