"""The tensor side of server-side batching: which tasks may share a model call, and how their
inputs are joined and the call's outputs split back (`batching.py` schedules; this module only
computes). Pure numpy, TF Serving's rules and texts (its BatchingSession and batching_util).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from pipeline.serving.errors import InvalidArgument

Arrays = Mapping[str, np.ndarray]


def merge_key(inputs: Arrays, pad: bool) -> tuple[tuple | None, int]:
    """(what must be equal to merge, rows): dtype and dims past 0 of every input (with `pad`, the
    rank), and the shared dim 0. The key is None for tasks that run alone (no inputs, no rows).
    Raises ServingError for inputs TF Serving's BatchingSession refuses (rank 0, unequal dim 0)."""
    key, rows = [], -1
    for name, array in inputs.items():
        shape = array.shape
        if not shape:
            raise InvalidArgument("Batching Run() input tensors must have at least one "
                               "dimension")
        if rows >= 0 and shape[0] != rows:
            raise InvalidArgument("Batching Run() input tensors must have equal "
                               "0th-dimension size")
        rows = shape[0]
        key.append((name, array.dtype, len(shape) if pad else shape[1:]))
    return (tuple(key) if rows > 0 else None), max(rows, 0)


def concatenate(inputs: list[Arrays], padding: int, pad_variable: bool = False) -> dict[str, np.ndarray]:
    """Each input concatenated along dim 0, then `padding` copies of the first row appended. With
    `pad_variable`, every part is first padded at the end of each dim past 0 to the batch's largest
    size, with its own first element (TF Serving's `pad_variable_length_inputs`)."""
    merged = {}
    for name in inputs[0]:
        parts = [task_inputs[name] for task_inputs in inputs]
        if pad_variable:
            parts = pad_lengths(parts)
        if padding:
            parts.append(np.repeat(parts[0][:1], padding, axis=0))
        merged[name] = np.concatenate(parts)
    return merged


def pad_lengths(parts: list[np.ndarray]) -> list[np.ndarray]:
    widest = np.max([part.shape for part in parts], axis=0)
    padded = []
    for part in parts:
        widths = [(0, 0)] + [(0, int(w) - n) for w, n in zip(widest[1:], part.shape[1:], strict=True)]
        if any(after for _, after in widths) and part.size:
            part = np.pad(part, widths, mode="constant", constant_values=part.flat[0])
        padded.append(part)
    return padded


def split_outputs(outputs: Mapping[str, Any], rows: list[int],
                  total: int) -> list[dict[str, np.ndarray]] | None:
    """Each task's slice of every output, or None if an output does not have `total` rows."""
    arrays = {name: np.asarray(value) for name, value in outputs.items()}
    if any(array.ndim == 0 or array.shape[0] != total for array in arrays.values()):
        return None
    parts, start = [], 0
    for count in rows:
        end = start + count
        parts.append({name: array[start:end] for name, array in arrays.items()})
        start = end
    return parts
