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
does too. Where `%g` uses scientific notation (probabilities like 3e-07, values from 1e6 or 1e9
up), orjson writes the mantissa d.ddd and a table gives the exponent text (`e-07`, `e+09`). The
rest (float64 values that need 17 digits, values so close to a rounding tie that float64
arithmetic cannot decide it, NaN and infinities) are written one by one by `decimal_text`, the
reference implementation (Python's `format`, which follows printf).
Tensors of at most `SMALL_TENSOR` values (a 1-row prediction) skip the vectorised plan, whose fixed
cost is tens of microseconds, and are written value by value with `decimal_text` directly.
"""

from __future__ import annotations

import math
import struct
from itertools import chain
from typing import NamedTuple

import numpy as np
import orjson

_TIE_MARGIN = 1e-6  # |fraction - 0.5| below this (in units of the last digit) is decided by printf
_POW10_LIMIT = 300
_POW10 = np.array([10.0**k for k in range(-_POW10_LIMIT, _POW10_LIMIT + 1)])  # exact for 0 <= k <= 22
_POW10_EXACT = np.array([10.0**k for k in range(23)])  # the powers of ten a double holds exactly
# Up to this many values, one `decimal_text` call per value beats the vectorised plan's fixed cost
# (measured: 1 value 3 µs vs 50 µs; 16 values 27 µs; they cross near 45 values).
SMALL_TENSOR = 32
_FLOAT32 = struct.Struct("<f")
_EXPONENT_LIMIT = 400  # beyond any float64 decimal exponent (-324 to 308)
_EXPONENT_TEXT = [f"e{k:+03d}".encode() for k in range(-_EXPONENT_LIMIT, _EXPONENT_LIMIT + 1)]  # %g's


def _reads_back_float32(text: str, value: float) -> bool:
    """Whether `text` parsed and rounded to float32 is `value` (a float32 held as a double)."""
    try:
        return _FLOAT32.unpack(_FLOAT32.pack(float(text)))[0] == value
    except OverflowError:  # beyond float32's range: it reads back as infinity, never a finite value
        return False


def _pow10(exponent: np.ndarray) -> np.ndarray:
    """10.0 ** exponent, element-wise, by table (numpy's power is a libm call per element)."""
    return np.take(_POW10, exponent + _POW10_LIMIT, mode="clip")  # clip: exponents beyond the table


def decimal_text(value: float, single: bool) -> str:
    """One value as TF's WriteDecimal writes it (`single`: float32 precision, else float64)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = format(value, "g")
    if single:  # compared at float32 precision, as TF compares a float with a float
        same = _reads_back_float32(text, _FLOAT32.unpack(_FLOAT32.pack(value))[0])
    else:
        same = float(text) == value
    if not same:
        text = format(value, ".9g" if single else ".17g")
    return text if ("." in text or "e" in text) else text + ".0"


def _round_digits(magnitude: np.ndarray, digits: int) -> tuple[np.ndarray, ...]:
    """(m, X, exact, scaled): `magnitude` (> 0, float64) rounded to `digits` significant digits as m
    (a whole float64, 10^(digits-1) <= m < 10^digits) times 10^(X - digits + 1); `exact` is False
    where float64 arithmetic came too close to a tie to be sure of the rounding, or where an
    inexact power of ten rounded m up to 10^digits (exact ones cannot: 9.9999995 has exponent 1).
    `scaled` is the float64 product m was rounded from: magnitude x 10^(digits - 1 - X)."""
    exponent = np.floor(np.log10(magnitude)).astype(np.int64)
    scaled = magnitude * _pow10(digits - 1 - exponent)
    off = (scaled >= 10.0**digits - 0.5).astype(np.int64) - (scaled < 10.0 ** (digits - 1))
    if off.any():  # log10 was one off near a power of ten
        exponent += off
        scaled = magnitude * _pow10(digits - 1 - exponent)
    mantissa = np.rint(scaled)
    exact = np.abs(np.abs(scaled - mantissa) - 0.5) > _TIE_MARGIN
    exact &= mantissa < 10.0**digits  # an inexact power of ten (1e28 * 1e-22) can round up to it
    if np.abs(exponent).max(initial=0) > _POW10_LIMIT - digits:
        exact &= np.abs(digits - 1 - exponent) <= _POW10_LIMIT
    return mantissa, exponent, exact, scaled


def _nearest_double(mantissa: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The double nearest mantissa / 10^scale: correctly rounded for 0 <= scale <= 22 (an exact
    power of ten, one rounding), which covers every value written in plain notation; approximate
    beyond (those values are written by `decimal_text`)."""
    quotient = mantissa / np.take(_POW10_EXACT, scale, mode="clip")
    if scale.min(initial=0) < 0:  # 9e6 at 6 digits: 900000 * 10 (the product where scale < 0)
        product = mantissa * np.take(_POW10, _POW10_LIMIT - scale, mode="clip")
        quotient = np.where(scale >= 0, quotient, product)
    return quotient


class _Plan(NamedTuple):
    """How to write a 1-D float array `flat` TF's way with orjson."""

    doubles: np.ndarray  # orjson's text of doubles[i] is TF's text of flat[i], except at `patch`
    patch: np.ndarray  # indices whose text is written otherwise, ascending
    scientific: np.ndarray  # over `patch`: written as `leads` (d.ddd) + the exponent's text
    leads: np.ndarray  # signed mantissas in [1, 10) of flat[patch[scientific]]
    exponents: np.ndarray  # and their decimal exponents; the other patched values: decimal_text


def _plan(flat: np.ndarray) -> _Plan:
    """The `_Plan` of a 1-D float32/float64 array."""
    single = flat.dtype == np.float32
    values = flat.astype(np.float64)
    finite = np.isfinite(values)
    nonzero = finite & (values != 0)
    magnitude = np.abs(values)
    every_nonzero = bool(nonzero.all())  # the usual case: skip the masked writes
    if not every_nonzero:
        magnitude[~nonzero] = 1.0
    if single:
        nine, exponent, exact, scaled = _round_digits(magnitude, 9)
        # For X in [-4, 8], scaled = float32 x 10^(8 - X) with 8 - X in [0, 12] holds at most
        # 24 + 28 significant bits: float64 computed it exactly, so rint's ties-to-even is printf's
        # and the 6-digit rounding below can tell an exact tie from a near one. Elsewhere a value
        # whose 3 dropped digits are exactly 500 is left to decimal_text.
        scaled_exactly = (exponent >= -4) & (exponent <= 8)
        kept = np.floor(nine / 1000)
        dropped = nine - 1000 * kept
        tie_up = (scaled > nine) | ((scaled == nine) & (kept % 2 == 1))  # above the tie, or to even
        six = kept + ((dropped > 500) | ((dropped == 500) & tie_up))
        exact = scaled_exactly | (exact & (dropped != 500))
        carry = six >= 1e6  # 9999995xx rounds up to 1000000: one more digit before the point
        if carry.any():
            six[carry] = 1e5
        six_exponent = exponent + carry
        reads_back = _nearest_double(six, 5 - six_exponent).astype(np.float32) == np.abs(flat)
        # that check is exact only where _nearest_double is (|5 - six_exponent| <= 22): 1e-17 to
        # 1e27; values beyond (subnormals, 1e30) are left to decimal_text
        exact &= (six_exponent >= -17) & (six_exponent <= 27)
        mantissa = np.where(reads_back, six, nine)
        exponent = np.where(reads_back, six_exponent, exponent)
        digits = np.where(reads_back, 6, 9)
    else:  # 17 digits exceed what float64 arithmetic can round exactly: those values are patched
        mantissa, exponent, exact, _ = _round_digits(magnitude, 6)
        exact &= _nearest_double(mantissa, 5 - exponent) == magnitude
        exact &= (exponent >= -17) & (exponent <= 27)  # where that check is exact, as above
        digits = 6
    value = _nearest_double(mantissa, digits - 1 - exponent)
    plain = (exponent >= -4) & (exponent < digits)
    doubles = np.copysign(value, values)
    if every_nonzero:
        patch = np.flatnonzero(~(plain & exact))
        scientific = exact[patch]  # (not plain, else it would not be patched)
    else:
        doubles[~nonzero] = values[~nonzero]
        patch = np.flatnonzero(~finite | (nonzero & ~(plain & exact)))
        scientific = (nonzero & exact)[patch]
    chosen = patch[scientific]
    lead_digits = digits if isinstance(digits, int) else digits[chosen]
    leads = np.copysign(mantissa[chosen] / np.take(_POW10_EXACT, lead_digits - 1), values[chosen])
    return _Plan(doubles, patch, scientific, leads, exponent[chosen])


def _scientific_texts(leads: np.ndarray, exponents: np.ndarray) -> list[bytes]:
    """`%g`'s scientific text of each lead x 10^exponent: orjson writes the lead (its shortest
    text is the rounded digits: `1.23456789`, `-3.0`), `.0` goes as `%g` drops trailing zeros,
    and the exponent has a sign and at least two digits (`e-07`, `e+100`)."""
    leads_text = orjson.dumps(leads, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b",")
    suffixes = map(_EXPONENT_TEXT.__getitem__, (exponents + _EXPONENT_LIMIT).tolist())
    return b",".join(map(bytes.__add__, leads_text, suffixes)).replace(b".0e", b"e").split(b",")


def _patch_texts(flat: np.ndarray, plan: _Plan) -> list[bytes]:
    """TF's text of flat[i] for each i in `plan.patch`, in order."""
    scientific = _scientific_texts(plan.leads, plan.exponents) if plan.leads.size else []
    if len(scientific) == plan.patch.size:
        return scientific
    single = flat.dtype == np.float32
    others = [decimal_text(v, single).encode()
              for v in flat[plan.patch[~plan.scientific]].astype(np.float64).tolist()]
    if not scientific:
        return others
    from_scientific, from_others = iter(scientific), iter(others)
    return [next(from_scientific) if is_scientific else next(from_others)
            for is_scientific in plan.scientific.tolist()]


def json_array(array: np.ndarray) -> bytes:
    """A float32/float64 tensor (any shape, at least one value) as JSON text, TF's way: nested
    arrays of `decimal_text` values, no spaces; a scalar is the bare value."""
    flat = np.ascontiguousarray(array).ravel()
    if flat.size <= SMALL_TENSOR or array.ndim == 0:
        return _small_json(flat, array.shape)
    if array.ndim >= 2 and array.shape[-1] == 1:  # [n, 1]: a regression's output
        # orjson writes 10,000 one-value rows 2.7x slower than one flat array. Numbers hold no
        # comma, so wrapping each in brackets is: every "," -> "],[" and one more bracket each end.
        inner = json_array(array.reshape(array.shape[:-1]))
        return b"[" + inner.replace(b",", b"],[") + b"]"
    plan = _plan(flat)
    doubles, patch = plan.doubles, plan.patch
    if not patch.size:
        return orjson.dumps(doubles.reshape(array.shape), option=orjson.OPT_SERIALIZE_NUMPY)
    # orjson writes NaN as null, and numbers never contain "null": mark the patched values so
    texts = _patch_texts(flat, plan)
    doubles[patch] = np.nan
    parts = orjson.dumps(doubles.reshape(array.shape), option=orjson.OPT_SERIALIZE_NUMPY).split(b"null")
    return b"".join(chain.from_iterable(zip(parts, [*texts, b""], strict=True)))


def _small_json(flat: np.ndarray, shape: tuple[int, ...]) -> bytes:
    """`json_array` for a few values (every dim > 0): `decimal_text` each, nested by `shape`."""
    single = flat.dtype == np.float32
    texts = [decimal_text(v, single) for v in flat.tolist()]
    if not shape:
        return texts[0].encode()
    for dim in reversed(shape):
        texts = ["[" + ",".join(texts[i:i + dim]) + "]" for i in range(0, len(texts), dim)]
    return texts[0].encode()


def json_items(array: np.ndarray) -> list:
    """`array[i]` for each i (rank >= 1, every dim > 0) as values orjson writes TF's way: numpy
    rows of doubles, or pre-written Fragments for the rows holding a value orjson would not."""
    flat = np.ascontiguousarray(array).ravel()
    if flat.size <= SMALL_TENSOR:
        return [orjson.Fragment(json_array(array[row])) for row in range(array.shape[0])]
    doubles, patch = _plan(flat)[:2]
    items: list = list(doubles.reshape(array.shape))
    for row in np.unique(patch // max(1, math.prod(array.shape[1:]))).tolist():
        items[row] = orjson.Fragment(json_array(array[row]))
    return items
