"""Typed training settings (pipeline.training.inputs): one sentence per bad value, nothing rounded."""

import pytest

from pipeline.training.inputs import config_from_inputs, parse_batch_size

GOOD = {"samples": 800, "w1": 2.0, "w2": -1.0, "b": 3.0, "noise": 0.004, "seed": 0, "epochs": 100,
        "batch": "auto", "optimizer": "adam", "learning_rate": 0.004, "schedule": "cosine"}


def test_the_exact_values_typed_are_the_values_used():
    cfg = config_from_inputs(**GOOD)
    assert cfg.noise == 0.004 and cfg.learning_rate == 0.004 and cfg.batch_size is None


@pytest.mark.parametrize(("change", "message"), [
    ({"samples": 1}, "samples must be between 2 and 10,000,000, got 1"),
    ({"samples": "12,000,001"}, "samples must be between 2 and 10,000,000, got 12,000,001"),
    ({"samples": "1.5k"}, "samples must be a whole number such as 10,000, got '1.5k'"),
    ({"epochs": 2.5}, "epochs must be a whole number, got 2.5"),
    ({"w1": 20_000.0}, "True w1 must be between -10,000 and 10,000, got 20,000"),
    ({"batch": "1.5"}, "Batch size must be 'auto' or a whole number"),
    ({"learning_rate": 0.0}, "learning_rate must be a number in (0, 10]"),
])
def test_a_bad_value_is_named(change, message):
    with pytest.raises(ValueError) as caught:
        config_from_inputs(**{**GOOD, **change})
    assert message in str(caught.value)


def test_batch_sizes_accept_auto_and_separators():
    assert parse_batch_size(" Auto ") is None and parse_batch_size("1,024") == 1024


def test_samples_typed_with_thousands_separators_are_the_number():
    for typed in ("10,000,000", "10 000 000", "10_000_000", "10000000", 10_000_000):
        assert config_from_inputs(**{**GOOD, "samples": typed}).samples == 10_000_000
