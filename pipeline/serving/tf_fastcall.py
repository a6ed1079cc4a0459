"""The one place the server relies on a private TensorFlow API: `ConcreteFunction._call_flat`.

Calling a signature function `f(**inputs)` makes TensorFlow bind and check the keyword arguments
against the function type on every call, the costly part of calling a small model. `_call_flat`
takes the already-flat tensors (keyword inputs sorted by name) plus `captured_inputs` and skips
that. It is used only for a signature whose flat specs `flat_specs` derived and then verified with
a probe call through both paths at load time; anything in doubt keeps the public call.

What is relied on (checked by `tests/server/test_tf_fastcall.py`, so a TensorFlow upgrade that
changes it fails a test instead of silently losing the speedup): concrete functions from
`tf.saved_model.load(...).signatures` have `function_type` with keyword-only `TensorSpec`
parameters, `captured_inputs`, and `_call_flat(tensors, captured_inputs)` returning the same
{name: tensor} dict as the public call. `status()` says at start-up which path is active.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

FlatSpecs = tuple[tuple[str, np.dtype, tuple[int | None, ...] | None], ...]
"""Inputs in flat order as (key, numpy dtype, dims or None for any rank)."""


def available() -> bool:
    """Whether this TensorFlow's ConcreteFunction still has `_call_flat`."""
    from tensorflow.python.eager.polymorphic_function.concrete_function import ConcreteFunction

    return callable(getattr(ConcreteFunction, "_call_flat", None))


def status() -> str:
    """One line for the start-up log saying which call path signatures use."""
    try:
        active = available()
    except ImportError as error:
        return f"TensorFlow fast call unavailable ({error}): signatures use the public call"
    if active:
        return "TensorFlow fast call active: verified signatures skip argument binding (_call_flat)"
    return "TensorFlow fast call unavailable (no ConcreteFunction._call_flat): signatures use the public call"


def flat_specs(function: Any, input_shapes: Mapping[str, Any]) -> FlatSpecs | None:
    """The flat input specs for `call`, or None to always use the public call.

    A signature function takes keyword-only TensorSpecs that TF flattens sorted by name. That is
    relied on only after a probe: the fast and the normal call must give equal outputs on inputs
    with a distinct value per input; any doubt (other parameter kinds, composite specs, an error, a
    difference) keeps the normal call.
    """
    import tensorflow as tf

    function_type = getattr(function, "function_type", None)
    if function_type is None or not hasattr(function, "_call_flat"):
        return None
    parameters = list(function_type.parameters.values())
    if sorted(p.name for p in parameters) != sorted(input_shapes) or not all(
            p.kind is inspect.Parameter.KEYWORD_ONLY and type(p.type_constraint) is tf.TensorSpec
            for p in parameters):
        return None
    flat = tuple((p.name, np.dtype(p.type_constraint.dtype.as_numpy_dtype),
                  None if p.type_constraint.shape.rank is None else tuple(p.type_constraint.shape.as_list()))
                 for p in sorted(parameters, key=lambda p: p.name))
    probe = {}
    for number, (key, dtype, dims) in enumerate(flat, start=1):
        shape = [1] if dims is None else [1 if d is None else d for d in dims]
        probe[key] = (np.full(shape, str(number).encode(), dtype=object) if dtype.kind == "O"
                      else np.full(shape, number % 2 if dtype.kind == "b" else number, dtype=dtype))
    try:
        expected = function(**probe)
        got = call(function, flat, probe)
        same = expected.keys() == got.keys() and all(
            _same(expected[key].numpy(), got[key].numpy()) for key in expected)
    except Exception as error:  # noqa: BLE001 - a model that refuses the probe keeps the normal call
        log.debug("Fast call probe refused (%s): the public call is used", error)
        return None
    return flat if same else None


def accepts(flat: FlatSpecs, inputs: Mapping[str, np.ndarray]) -> bool:
    """Whether every input has its spec's dtype and a compatible shape (what TF's binding checks)."""
    for key, dtype, dims in flat:
        array = inputs[key]
        if array.dtype != dtype or dims is not None and (len(array.shape) != len(dims) or any(
                want is not None and want != have for want, have in zip(dims, array.shape, strict=True))):
            return False
    return True


def call(function: Any, flat: FlatSpecs, inputs: Mapping[str, np.ndarray]) -> Mapping[str, Any]:
    """Call `function` on `inputs` through `_call_flat`; the caller checked `accepts` first."""
    import tensorflow as tf

    return function._call_flat([tf.constant(inputs[key]) for key, _, _ in flat], function.captured_inputs)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
