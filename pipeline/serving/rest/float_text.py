"""Floats as TF Serving writes them in JSON (`WriteDecimal` in `util/json_tensor.cc`), vectorised.

TF Serving prints a float with 6 significant digits (`%g`); if that text does not read back to the
same value at the tensor's own precision, it prints `%.9g` (float32) or `%.17g` (float64); then it
appends `.0` when the text has neither `.` nor `e`. So float32 0.5 -> `0.5`, 9e6 -> `9e+06`,
3e-5 -> `3e-05`, 2.9296489 -> `2.92964888`, 1435774336 -> `1.43577434e+09` (float64:
`1435774336.0`). NaN and infinities are the bare tokens `NaN`, `Infinity`, `-Infinity`.

`json_array(array)` writes a whole float tensor without a Python call per value: numpy rounds
every value to its 6 or 9 significant digits (ties to even, as printf), and the double nearest that
decimal is handed to orjson, whose shortest round-trip text of it is exactly those digits, written
the way `%g` writes them wherever `%g` uses plain notation (decimal exponent -4 to 8) and orjson
does too. The rest (scientific notation, float64 values that need 17 digits, values so close to a
rounding tie that float64 arithmetic cannot decide it, NaN and infinities) are written one by one
by `decimal_text`, the reference implementation (Python's `format`, which follows printf).
"""

from __future__ import annotations

import math
from itertools import chain

import numpy as np
import orjson

_TIE_MARGIN = 1e-6  # |fraction - 0.5| below this (in units of the last digit) is decided by printf
_POW10_LIMIT = 300
_POW10 = np.array([10.0**k for k in range(-_POW10_LIMIT, _POW10_LIMIT + 1)])  # exact for 0 <= k <= 22


def _pow10(exponent: np.ndarray) -> np.ndarray:
    """10.0 ** exponent, element-wise, by table (numpy's power is a libm call per element)."""
    return _POW10[np.minimum(np.maximum(exponent, -_POW10_LIMIT), _POW10_LIMIT) + _POW10_LIMIT]


def decimal_text(value: float, single: bool) -> str:
    """One value as TF's WriteDecimal writes it (`single`: float32 precision, else float64)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = format(value, "g")
    same = np.float32(float(text)) == np.float32(value) if single else float(text) == value
    if not same:
        text = format(value, ".9g" if single else ".17g")
    return text if ("." in text or "e" in text) else text + ".0"


def _round_digits(magnitude: np.ndarray, digits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(m, X, exact): `magnitude` (> 0, float64) rounded to `digits` significant digits as m
    (a whole float64, 10^(digits-1) <= m < 10^digits) times 10^(X - digits + 1); `exact` is False
    where float64 arithmetic came too close to a tie to be sure of the rounding. Rounding up to
    10^digits (9.9999995 -> 10.0000000) cannot happen: such values have exponent X + 1 already."""
    exponent = np.floor(np.log10(magnitude)).astype(np.int64)
    scaled = magnitude * _pow10(digits - 1 - exponent)
    off = (scaled >= 10.0**digits - 0.5).astype(np.int64) - (scaled < 10.0 ** (digits - 1))
    if off.any():  # log10 was one off near a power of ten
        exponent += off
        scaled = magnitude * _pow10(digits - 1 - exponent)
    mantissa = np.rint(scaled)
    exact = np.abs(np.abs(scaled - mantissa) - 0.5) > _TIE_MARGIN
    if np.abs(exponent).max(initial=0) > _POW10_LIMIT - digits:
        exact &= np.abs(digits - 1 - exponent) <= _POW10_LIMIT
    return mantissa, exponent, exact


def _nearest_double(mantissa: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The double nearest mantissa / 10^scale: correctly rounded for 0 <= scale <= 22 (an exact
    power of ten, one rounding), which covers every value written in plain notation; approximate
    beyond (those values are written by `decimal_text`)."""
    quotient = mantissa / _POW10[np.minimum(np.maximum(scale, 0), 22) + _POW10_LIMIT]
    if scale.min(initial=0) < 0:  # 9e6 at 6 digits: 900000 * 10
        product = mantissa * _POW10[np.minimum(np.maximum(-scale, 0), _POW10_LIMIT) + _POW10_LIMIT]
        quotient = np.where(scale >= 0, quotient, product)
    return quotient


def _plan(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(doubles, patch) for a 1-D float32/float64 array: orjson's text of doubles[i] is TF's text
    of flat[i] for every i except the indices in `patch`, which `decimal_text` must write."""
    single = flat.dtype == np.float32
    values = flat.astype(np.float64)
    finite = np.isfinite(values)
    nonzero = finite & (values != 0)
    magnitude = np.abs(values)
    magnitude[~nonzero] = 1.0
    if single:
        nine, exponent, exact = _round_digits(magnitude, 9)
        # 6 digits from the 9: the same rounding unless the 3 digits dropped are exactly 500
        exact &= nine % 1000 != 500
        six = np.floor((nine + 500) / 1000)
        carry = six >= 1e6  # 9999995xx rounds up to 1000000: one more digit before the point
        six[carry] = 1e5
        six_exponent = exponent + carry
        reads_back = _nearest_double(six, 5 - six_exponent).astype(np.float32) == np.abs(flat)
        mantissa = np.where(reads_back, six, nine)
        exponent = np.where(reads_back, six_exponent, exponent)
        digits = np.where(reads_back, 6, 9)
    else:  # 17 digits exceed what float64 arithmetic can round exactly: those values are patched
        mantissa, exponent, exact = _round_digits(magnitude, 6)
        exact &= _nearest_double(mantissa, 5 - exponent) == magnitude
        digits = 6
    value = _nearest_double(mantissa, digits - 1 - exponent)
    plain = (exponent >= -4) & (exponent < digits)
    doubles = np.copysign(value, values)
    doubles[~nonzero] = values[~nonzero]
    patch = np.flatnonzero(~finite | (nonzero & ~(plain & exact)))
    return doubles, patch


def json_array(array: np.ndarray) -> bytes:
    """A float32/float64 tensor (any shape, at least one value) as JSON text, TF's way: nested
    arrays of `decimal_text` values, no spaces; a scalar is the bare value."""
    flat = np.ascontiguousarray(array).ravel()
    doubles, patch = _plan(flat)
    if array.ndim == 0:
        return decimal_text(float(flat[0]), flat.dtype == np.float32).encode()
    if not patch.size:
        return orjson.dumps(doubles.reshape(array.shape), option=orjson.OPT_SERIALIZE_NUMPY)
    # orjson writes NaN as null, and numbers never contain "null": mark the patched values so
    single = flat.dtype == np.float32
    texts = [decimal_text(v, single).encode() for v in flat[patch].astype(np.float64).tolist()]
    doubles[patch] = np.nan
    parts = orjson.dumps(doubles.reshape(array.shape), option=orjson.OPT_SERIALIZE_NUMPY).split(b"null")
    return b"".join(chain.from_iterable(zip(parts, [*texts, b""], strict=True)))


def json_items(array: np.ndarray) -> list:
    """`array[i]` for each i (rank >= 1, every dim > 0) as values orjson writes TF's way: numpy
    rows of doubles, or pre-written Fragments for the rows holding a value orjson would not."""
    flat = np.ascontiguousarray(array).ravel()
    doubles, patch = _plan(flat)
    items: list = list(doubles.reshape(array.shape))
    for row in np.unique(patch // max(1, math.prod(array.shape[1:]))).tolist():
        items[row] = orjson.Fragment(json_array(array[row]))
    return items
