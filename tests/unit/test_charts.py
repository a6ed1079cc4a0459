"""Every dashboard chart: the traces a user sees, their values, names and titles."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from dashboard import charts
from pipeline.store.run_record import RunErrors, RunRecord, RunStatus, Weights

HISTORY = [
    {"epoch": 1, "loss": 100.0, "mae": 8.0, "w": [0.5, -0.2], "b": 0.3},
    {"epoch": 2, "loss": 20.0, "mae": 4.0, "w": [1.5, -0.8], "b": 1.9},
    {"epoch": 3, "loss": 4.1, "mae": 1.6, "w": [1.98, -1.01], "b": 2.95},
]


def names(fig) -> list[str]:
    return [t.name for t in fig.data]


def test_loss_curve_plots_loss_per_epoch_on_a_log_axis_with_the_noise_floor():
    fig = charts.loss_curve_figure(HISTORY, noise=2.0)
    assert names(fig) == ["loss (MSE)", "noise floor σ² = 4"]
    assert list(fig.data[0].x) == [1, 2, 3]
    assert list(fig.data[0].y) == [100.0, 20.0, 4.1]
    assert list(fig.data[1].y) == [4.0, 4.0] and list(fig.data[1].x) == [1, 3]
    assert fig.layout.yaxis.type == "log"
    assert list(fig.layout.yaxis.tickvals) == [2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0]
    assert list(fig.layout.yaxis.ticktext) == ["2", "5", "10", "20", "50", "100", "200"]
    assert fig.layout.title.text == "Training loss per epoch"


def test_log_ticks_span_the_values_in_1_2_5_steps():
    assert charts.log_ticks([0.03, 0.4]) == [0.02, 0.05, 0.1, 0.2, 0.5]
    assert charts.log_ticks([]) == [] and charts.log_ticks([0.0, -1.0]) == []


def test_loss_curve_without_noise_has_no_floor_and_tolerates_an_empty_history():
    assert names(charts.loss_curve_figure(HISTORY, noise=0.0)) == ["loss (MSE)"]
    assert len(charts.loss_curve_figure([], noise=2.0).data[0].x) == 0


def test_weights_trajectory_pairs_each_parameter_with_its_true_value():
    fig = charts.weights_trajectory_figure(HISTORY, [2.0, -1.0], 3.0)
    assert names(fig) == ["w1", "true w1", "w2", "true w2", "b", "true b"]
    assert list(fig.data[0].y) == [0.5, 1.5, 1.98]
    assert list(fig.data[2].y) == [-0.2, -0.8, -1.01]
    assert list(fig.data[4].y) == [0.3, 1.9, 2.95]
    assert list(fig.data[5].y) == [3.0, 3.0] and fig.data[5].line.dash == "dash"
    assert fig.data[0].line.color == fig.data[1].line.color != fig.data[2].line.color
    assert fig.layout.title.text == "Weights per epoch"  # short enough for a third of 1024 px
    assert fig.layout.yaxis.title.text == "value (dashed: true)"


def test_learned_vs_true_groups_learned_true_and_ols_bars_per_parameter():
    fig = charts.learned_vs_true_figure(Weights((1.9, -0.9), 2.8), Weights((2.0, -1.0), 3.0),
                                        Weights((1.95, -0.95), 2.85))
    assert names(fig) == ["learned", "true", "OLS"]
    assert all(list(t.x) == ["w1", "w2", "b"] for t in fig.data)
    assert list(fig.data[0].y) == [1.9, -0.9, 2.8]
    assert list(fig.data[2].y) == [1.95, -0.95, 2.85]
    assert fig.layout.barmode == "group" and fig.layout.title.text == "Learned vs true vs OLS"


def test_learned_vs_true_without_ols_shows_two_series():
    fig = charts.learned_vs_true_figure(Weights((1.0,), 0.0), Weights((2.0,), 3.0))
    assert names(fig) == ["learned", "true"] and list(fig.data[0].x) == ["w1", "b"]


def test_data_planes_shows_points_and_both_planes_over_the_data_range():
    x = np.array([[0.0, 0.0], [1.0, 2.0], [-3.0, 4.0]])
    y = np.array([[3.0], [3.5], [-5.0]])
    fig = charts.data_planes_figure(x, y, [2.0, -1.0], 3.0, [1.0, 0.0], 1.0)
    assert [n for n in names(fig) if "outline" not in n] == ["data (3 points)", "true plane", "learned plane"]
    assert list(fig.data[0].z) == [3.0, 3.5, -5.0]
    true_plane, learned_plane = fig.data[1], fig.data[3]
    # two distinct colours, and outlines that keep coinciding planes apart
    assert true_plane.colorscale[0][1] != learned_plane.colorscale[0][1]
    assert fig.data[2].line.dash == "solid" and fig.data[4].line.dash == "dash"
    # corners of [-10, 10]²: z = 2·x0 − x1 + 3 for the truth, z = x0 + 1 for the learned plane
    assert np.asarray(true_plane.x).min() == -10 and np.asarray(true_plane.x).max() == 10
    assert np.allclose(np.asarray(true_plane.z), 2 * np.asarray(true_plane.x) - np.asarray(true_plane.y) + 3)
    assert np.allclose(np.asarray(learned_plane.z), np.asarray(learned_plane.x) + 1)
    assert fig.layout.scene.zaxis.title.text == "y"
    assert (fig.layout.scene.xaxis.title.text, fig.layout.scene.yaxis.title.text) == ("x1", "x2")


def test_data_planes_without_learned_weights_shows_only_the_truth():
    fig = charts.data_planes_figure(np.zeros((2, 2)), np.zeros(2), [2.0, -1.0], 3.0)
    assert names(fig) == ["data (2 points)", "true plane", "true plane outline"]


def test_data_planes_refuses_anything_but_two_features():
    with pytest.raises(ValueError, match="exactly 2 input features, this data has 3"):
        charts.data_planes_figure(np.zeros((2, 3)), np.zeros(2), [1.0, 2.0, 3.0], 0.0)


def test_compare_versions_shows_each_version_and_the_truth():
    fig = charts.compare_versions_weights_figure(
        [("version 1", Weights((1.0, -0.5), 1.0)), ("version 2", Weights((2.0, -1.0), 2.9))],
        Weights((2.0, -1.0), 3.0))
    assert names(fig) == ["version 1", "version 2", "true"]
    assert list(fig.data[1].y) == [2.0, -1.0, 2.9]
    assert list(fig.data[2].x) == ["w1", "w2", "b"]
    assert fig.layout.title.text == "Weights side by side"
    with pytest.raises(ValueError, match="nothing to compare"):
        charts.compare_versions_weights_figure([])


def test_run_errors_lists_finished_runs_oldest_first_with_their_versions():
    records = [
        RunRecord("b", RunStatus.SUCCEEDED, started="2026-01-02T00:00:00+00:00", errors=RunErrors(0.1, 0.01),
                  version=2),
        RunRecord("c", RunStatus.FAILED, started="2026-01-03T00:00:00+00:00", error="boom"),
        RunRecord("a", RunStatus.CANCELLED, started="2026-01-01T00:00:00+00:00", errors=RunErrors(1.5, 1.2)),
    ]
    fig = charts.run_errors_figure(records)
    assert names(fig) == ["max |learned − true|", "max |learned − OLS|"]
    assert all(isinstance(x, datetime) for x in fig.data[0].x)  # a date axis, not raw ISO text
    assert [x.astimezone(UTC).day for x in fig.data[0].x] == [1, 2]
    assert list(fig.data[0].text) == ["run a", "run b, version 2"]
    assert list(fig.data[0].y) == [1.5, 0.1] and list(fig.data[1].y) == [1.2, 0.01]
    assert fig.layout.yaxis.type == "log" and fig.layout.title.text == "Errors per run"


def test_log_ticks_over_many_decades_stay_few_and_readable():
    """A loss that falls from 1e9 to 1e-12 (true weights of 1e4, or noise-free data) or errors
    from 1e-4 to 1e4 across runs: at most 7 ticks, never a smear of 1-2-5 labels."""
    for values in ([3e9, 1e-12], [1e-4, 2e4], [0.003, 7.0]):
        ticks = charts.log_ticks(values)
        assert 2 <= len(ticks) <= 7, (values, ticks)
        assert ticks[0] <= min(values) * 1e4 and ticks[-1] >= max(values) / 1e4  # they span the data
    assert [charts.tick_label(t) for t in (0.05, 20_000.0, 1e-7, 1e9)] == ["0.05", "20,000", "1e-7", "1e9"]
    fig = charts.loss_curve_figure([{"epoch": 1, "loss": 3.4e9}, {"epoch": 2, "loss": 1e-12}], noise=0.0)
    assert len(fig.layout.yaxis.tickvals) <= 7


def test_the_train_and_models_charts_keep_the_legend_off_the_axis_title():
    for fig in (charts.loss_curve_figure(HISTORY, noise=2.0),
                charts.weights_trajectory_figure(HISTORY, [2.0, -1.0], 3.0),
                charts.learned_vs_true_figure(Weights((1.9, -0.9), 2.8), Weights((2.0, -1.0), 3.0))):
        assert fig.layout.legend.yref == "container" and fig.layout.legend.yanchor == "bottom"
        assert fig.layout.margin.b >= 100  # room for the x-axis title, then the legend below it


def test_the_3d_camera_never_sees_a_plane_edge_on():
    cases = (([2.0, -1.0], 60.0), ([10_000.0, -1.0], 400_000.0), ([0.0, 0.0], 10.0), ([50.0, 0.0], 20.0))
    for w, span in cases:
        eye = charts.face_on_eye(w, span)
        scale = 20.0 / span
        normal = np.array([-w[0] * scale, -w[1] * scale, 1.0])
        v = np.array([eye["x"], eye["y"], eye["z"]])
        angle = np.degrees(np.arcsin(abs(v @ normal) / np.linalg.norm(v) / np.linalg.norm(normal)))
        assert angle > 45, (w, angle)  # from well above the plane's surface


# -- a diverged run (issue 24): its 1e22 weights must not flatten the truth ----------------------------

DIVERGED = Weights((-5.455917293775379e22, 2.3325513816238333e22), -7.421066650353192e20)
TRUE = Weights((2.0, -1.0), 3.0)
OLS = Weights((2.0008, -1.0108), 2.9515)


def test_off_scale_learned_bars_keep_the_axis_on_truth_and_ols_and_say_so():
    fig = charts.learned_vs_true_figure(DIVERGED, TRUE, OLS)
    low, high = fig.layout.yaxis.range
    assert low < -1.0 and 3.0 < high < 10.0  # true and OLS bars are readable
    note = fig.layout.annotations[0].text
    assert "learned off the scale" in note and "w1 -5.46e22" in note and "diverged" in note
    assert not charts.learned_vs_true_figure(Weights((1.98, -1.01), 2.95), TRUE, OLS).layout.annotations


def test_off_scale_weight_trajectories_keep_the_axis_on_the_truth():
    history = [{"epoch": 1, "loss": 1e40, "mae": 1e20, "w": [1e21, -1e21], "b": 1e19}]
    fig = charts.weights_trajectory_figure(history, [2.0, -1.0], 3.0)
    assert fig.layout.yaxis.range[1] < 10.0 and "off the scale" in fig.layout.annotations[0].text


def test_an_off_scale_learned_plane_is_left_out_of_the_3d_view():
    x = np.random.default_rng(0).uniform(-10, 10, (50, 2))
    fig = charts.data_planes_figure(x, x @ [2.0, -1.0] + 3.0, [2.0, -1.0], 3.0, list(DIVERGED.w), DIVERGED.b)
    assert "learned plane" not in names(fig) and "off the scale" in fig.layout.title.text


def test_short_numbers_never_print_23_digits():
    assert charts.short_number(-5.455917293775379e22) == "-5.46e22"
    assert charts.short_number(float("nan")) == "NaN" and charts.short_number(1.98765) == "1.988"
    assert charts.short_number(12_345.6) == "12,346"


def test_errors_per_run_puts_a_diverged_run_on_the_top_edge_and_keeps_the_rest_readable():
    started = "2026-12-07T01:06:{:02d}+00:00"
    records = [RunRecord(f"r{i}", RunStatus.SUCCEEDED, started=started.format(i * 7),
                         errors=RunErrors(e, e / 10)) for i, e in enumerate((0.02, 0.05, 0.3))]
    records.append(RunRecord("r9", RunStatus.FAILED, started=started.format(50),
                             errors=RunErrors(5.46e22, 5.46e22)))
    fig = charts.run_errors_figure(records)
    true_series, ols_series, failed = fig.data
    assert true_series.marker.color != ols_series.marker.color  # not two near-identical blues
    assert true_series.marker.symbol != ols_series.marker.symbol
    low, high = fig.layout.yaxis.range
    assert 10**low < 0.002 and 0.3 < 10**high < 10  # the good runs fill the axis, not 1e22
    assert failed.name.startswith("failed run") and list(failed.y) == [10**high]
    assert "5.46e22" in failed.text[0] and failed.marker.symbol == "x"
    assert min(fig.layout.yaxis.tickvals) >= 10**low and max(fig.layout.yaxis.tickvals) <= 10**high
    # runs seconds apart: tick labels carry seconds, so no two ticks read "7 Dec 01:06"
    assert fig.layout.xaxis.tickformatstops[0].value == "%H:%M:%S"
    zone = datetime.now(UTC).astimezone().tzname()
    assert fig.layout.xaxis.title.text == f"started ({zone})"  # the zone the run tables print
