"""What a person types into a training form, turned into a :class:`TrainConfig` or one sentence
saying what is wrong: no silent rounding, no clamping, no value the form shows differently from
the one it uses. Pure; the Train page uses it, and anything else that takes typed values can."""

from __future__ import annotations

import re
from typing import Any

from pipeline.training.fit import MAX_BATCH_SIZE, TrainConfig

TRUE_PARAM_BOUND = 1e4
"""True weights and bias typed into a form are limited to ±this, where the synthetic data still looks
like the tutorial's. The defaults learn any value within it (training runs in standardized units;
tests/unit/test_training.py checks 0.1 to 10,000 of either sign)."""


def parse_batch_size(text: str) -> int | None:
    """``"auto"`` (or empty) -> ``None``; a whole number like ``64`` or ``1,024`` -> that number.

    ``ValueError`` with a sentence naming the allowed values for anything else."""
    cleaned = text.strip().lower().replace(",", "").replace("_", "")
    if cleaned in ("", "auto"):
        return None
    if not re.fullmatch(r"\d+", cleaned) or not 1 <= int(cleaned) <= MAX_BATCH_SIZE:
        raise ValueError(f"Batch size must be 'auto' or a whole number from 1 to {MAX_BATCH_SIZE:,}, "
                         f"got {text!r}")
    return int(cleaned)


def parse_count(value: Any, name: str) -> int:
    """A count typed as text with or without thousands separators (``10,000,000``, ``10 000 000``,
    ``10_000_000``, ``10000000``) or given as a number -> the int. ``ValueError`` naming the field
    for anything that is not a whole number (``2.5``, ``ten``)."""
    if not isinstance(value, str):
        return whole_number(value, name)
    cleaned = re.sub(r"[,_\s]", "", value)
    if not re.fullmatch(r"\d+", cleaned):
        raise ValueError(f"{name} must be a whole number such as 10,000, got {value!r}")
    return int(cleaned)


def whole_number(value: float, name: str) -> int:
    """A number field's value as an int; ``ValueError`` for 2.5 (never silently rounded)."""
    if float(value) != int(value):
        raise ValueError(f"{name} must be a whole number, got {value:g}")
    return int(value)


def check_true_params(values: dict[str, float]) -> None:
    """``ValueError`` naming the first true weight or bias outside ±TRUE_PARAM_BOUND."""
    for name, value in values.items():
        if not abs(value) <= TRUE_PARAM_BOUND:
            raise ValueError(f"{name} must be between {-TRUE_PARAM_BOUND:,.0f} and {TRUE_PARAM_BOUND:,.0f}, "
                             f"got {value:,g}")


def config_from_inputs(*, samples: Any, w1: Any, w2: Any, b: Any, noise: Any, seed: Any, epochs: Any,
                       batch: str, optimizer: str, learning_rate: Any, schedule: str) -> TrainConfig:
    """A validated config from the form's raw values; ``ValueError`` naming the first bad one
    (``samples must be between 2 and 10,000,000, got 1``)."""
    check_true_params({"True w1": float(w1), "True w2": float(w2), "True b": float(b)})
    cfg = TrainConfig(samples=parse_count(samples, "samples"), true_w=(float(w1), float(w2)),
                      true_b=float(b), noise=float(noise), seed=whole_number(seed, "seed"),
                      epochs=whole_number(epochs, "epochs"), batch_size=parse_batch_size(batch),
                      optimizer=optimizer, learning_rate=float(learning_rate), lr_schedule=schedule)
    cfg.validate()
    return cfg
