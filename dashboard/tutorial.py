"""The tutorial's assumptions, in one place: its signature (float ``inputs [-1, 2]`` to
``output_0 [-1, 1]``), its two input columns ``x1``, ``x2`` and two example rows, and how one number
per row is read from a regression's answer. Every other model is described by its own signatures
(`pipeline/client/signatures.py`); a model whose signature is the tutorial's also gets the
tutorial's views (truth, residuals, 3-D). Pure functions (no Streamlit), unit-tested."""

from __future__ import annotations

from typing import Any

from pipeline.client.signatures import Signature, TensorSpec, tutorial_like

DEFAULT_ROWS = ((1.0, 2.0), (5.0, 7.0))
"""The TF Serving tutorial's two input rows."""
FEATURES = ("x1", "x2")
INPUT, OUTPUT = "inputs", "output_0"
SIGNATURE = Signature("serving_default", "predict", {INPUT: TensorSpec(INPUT, "DT_FLOAT", (-1, 2))},
                      {OUTPUT: TensorSpec(OUTPUT, "DT_FLOAT", (-1, 1))})
"""What the tutorial's exports serve (``model.export()`` of the Keras model)."""


def is_tutorial(signature: Signature | None) -> bool:
    """Whether ``signature`` is the tutorial's (one float [-1, 2] input, one float output)."""
    return tutorial_like(signature, FEATURES)


def default_inputs() -> dict[str, list[list[float]]]:
    """The tutorial's two rows as the inputs of its signature."""
    return {INPUT: [list(row) for row in DEFAULT_ROWS]}


def prediction_values(values: Any, rows: int) -> list[float]:
    """One number per input row from a predict answer's ``predictions``/``outputs``.

    Accepts what TF Serving returns for a one-output regression: ``[[3.0], [6.0]]``,
    ``[3.0, 6.0]``, per-row objects ``[{"output_0": [3.0]}, ...]`` or a columnar object
    ``{"output_0": [[3.0], [6.0]]}``; with several outputs, ``output_0`` is used.
    ``ValueError`` when the answer does not hold exactly one number per row.
    """
    def pick(obj: dict) -> Any:
        if len(obj) == 1:
            return next(iter(obj.values()))
        if "output_0" in obj:
            return obj["output_0"]
        raise ValueError(f"the answer has several outputs ({', '.join(sorted(obj))}) and no output_0")

    if isinstance(values, dict):
        values = pick(values)
    if not isinstance(values, list) or len(values) != rows:
        raise ValueError(f"expected {rows} predictions, got {values!r:.200}")
    result = []
    for item in values:
        while isinstance(item, dict | list):
            if isinstance(item, dict):
                item = pick(item)
            elif len(item) == 1:
                item = item[0]
            else:
                raise ValueError(f"expected one number per row, got {item!r:.100}")
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise ValueError(f"expected a number per row, got {item!r:.100}")
        result.append(float(item))
    return result
