"""tf.Examples from the JSON examples of TF Serving's REST classify/regress API, without TensorFlow.

One reading of ``{feature: value or [values]}`` for every place that turns REST-style examples into
``tensorflow.Example`` protos (`pipeline.tf_protos` messages): the gRPC client's Classify and
Regress, and warm-up files. Whole numbers become an int64 list, numbers a float list, strings (or
``{"b64": ...}``) a bytes list, as TF Serving's REST handler reads them.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any


def fill_example(example: Any, features: Mapping[str, Any]) -> None:
    """Fill the ``tensorflow.Example`` message ``example`` with ``features``; ValueError (naming the
    feature) for a value list that mixes numbers and strings or holds anything else."""
    for name, value in features.items():
        values = value if isinstance(value, list) else [value]
        feature = example.features.feature[name]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            feature.int64_list.value.extend(values)
        elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            feature.float_list.value.extend(float(v) for v in values)
        elif all(isinstance(v, str) or (isinstance(v, Mapping) and set(v) == {"b64"}) for v in values):
            feature.bytes_list.value.extend(_bytes(v) for v in values)
        else:
            raise ValueError(f"feature {name!r} mixes numbers and strings or holds other values")


def fill_example_list(model_input: Any, examples: Any, context: Any = None) -> None:
    """Fill a ``tensorflow.serving.Input`` message's ``example_list`` with REST ``examples`` (a list
    of objects), ``context`` (an object, or None) merged into every example: what TF Serving does
    with ``example_list_with_context`` before parsing. ValueError for a body of another shape."""
    context = context or {}
    if not isinstance(examples, list) or not all(isinstance(e, Mapping) for e in examples):
        raise ValueError("\"examples\" must be a list of objects")
    if not isinstance(context, Mapping):
        raise ValueError("\"context\" must be an object")
    for values in examples:
        fill_example(model_input.example_list.examples.add(), {**context, **values})


def _bytes(value: str | Mapping[str, str]) -> bytes:
    return base64.b64decode(value["b64"]) if isinstance(value, Mapping) else value.encode()
