"""What a logged request asked and what it was answered, as plain values: previews for people,
named arrays for comparing two answers, REST bodies and gRPC requests for sending it again.

An answer is compared as `{name: numpy array}`: a predict response's outputs by name, a classify
response's `classes` and `scores`, a regress response's `values`, a multi-inference response's
results by task (`0:classes`, `1:values`, ...). The same request answered over REST (JSON) and
over gRPC (protos), or recorded in a log, gives the same names (REST's one-output columnar answer
carries no name: `compare` pairs two one-output answers whatever their names). No TensorFlow: the
gRPC front end's TensorProto reader reads tensors, `pipeline.client.warmup_records` requests.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

MAX_PREVIEW = 120


def _tensor(proto: Any, key: str) -> np.ndarray:
    from pipeline.serving.errors import ServingError
    from pipeline.serving.grpc.tensors import to_array

    try:
        return to_array(proto, key)
    except ServingError as error:
        raise ValueError(error.message) from None


def _short(text: str, limit: int = MAX_PREVIEW) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return f"<{len(value)} bytes>"
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return float(f"{value:.6g}")
    return value


def _array_text(array: np.ndarray) -> str:
    return json.dumps(_plain(array.tolist()), separators=(",", ":"), ensure_ascii=False)


def request_preview(log: Any, api: str) -> str:
    """One short line of what the request sent."""
    request = getattr(log, f"{api}_log").request
    if api == "predict":
        parts = [f"{key}: {_array_text(_tensor(proto, key))}"
                 for key, proto in sorted(request.inputs.items())]
        return _short("; ".join(parts))
    from pipeline.client.warmup_records import examples_of

    examples = examples_of(request.input)
    first = ", ".join(f"{k}={_plain(v[0]) if len(v) == 1 else _plain(v)}" for k, v in examples[0].items()) \
        if examples else ""
    text = f"{len(examples)} example{'s' * (len(examples) != 1)}" + (f": {first}" if first else "")
    if api == "multi_inference":
        text = f"{len(request.tasks)} tasks; " + text
    return _short(text)


def response_preview(log: Any, api: str) -> str:
    """One short line of what the answer held ("" when no response was logged)."""
    entry = getattr(log, f"{api}_log")
    if not entry.HasField("response"):
        return ""
    return _short("; ".join(f"{name}: {_array_text(array)}"
                            for name, array in response_outputs(entry.response, api).items()))


def of_log(log: Any, api: str) -> tuple[str, str]:
    """(request preview, response preview); a part that cannot be read says so instead."""
    try:
        inputs = request_preview(log, api)
    except (ValueError, IndexError) as error:
        inputs = f"(unreadable: {error})"
    try:
        outputs = response_preview(log, api)
    except (ValueError, IndexError) as error:
        outputs = f"(unreadable: {error})"
    return inputs, outputs


# -- answers as named arrays ---------------------------------------------------------------------

def _classification(result: Any, prefix: str = "") -> dict[str, np.ndarray]:
    classes = [[c.label for c in row.classes] for row in result.classifications]
    scores = [[c.score for c in row.classes] for row in result.classifications]
    return {f"{prefix}classes": np.array(classes, dtype=object), f"{prefix}scores": np.array(scores, float)}


def _regression(result: Any, prefix: str = "") -> dict[str, np.ndarray]:
    return {f"{prefix}values": np.array([r.value for r in result.regressions], float)}


def response_outputs(response: Any, api: str) -> dict[str, np.ndarray]:
    """A response message (any class set) as named arrays (see the module docstring)."""
    if api == "predict":
        return {name: _tensor(proto, name) for name, proto in sorted(response.outputs.items())}
    if api == "classify":
        return _classification(response.result)
    if api == "regress":
        return _regression(response.result)
    found: dict[str, np.ndarray] = {}
    for index, result in enumerate(response.results):
        kind = result.WhichOneof("result")
        if kind == "classification_result":
            found.update(_classification(result.classification_result, f"{index}:"))
        elif kind == "regression_result":
            found.update(_regression(result.regression_result, f"{index}:"))
    return found


def rest_outputs(answer: Mapping[str, Any], api: str) -> dict[str, np.ndarray]:
    """A REST answer (`outputs`/`predictions`/`results`) as named arrays."""
    if api == "predict":
        values = answer.get("outputs", answer.get("predictions"))
        if isinstance(values, dict):
            return {name: _json_array(v) for name, v in sorted(values.items())}
        return {"": _json_array(values)}
    results = answer.get("results") or []
    if api == "classify":
        classes = [[pair[0] for pair in row] for row in results]
        scores = [[pair[1] for pair in row] for row in results]
        return {"classes": np.array(classes, dtype=object), "scores": np.array(scores, float)}
    return {"values": np.array(results, float)}


def _json_array(value: Any) -> np.ndarray:
    if isinstance(value, dict) and set(value) == {"b64"}:
        import base64

        return np.array(base64.b64decode(value["b64"]), dtype=object)
    array = np.array(value, dtype=object)
    try:
        return array.astype(float)
    except (TypeError, ValueError):
        return array


def compare(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> tuple[float, str]:
    """The largest absolute difference between two answers (0.0 the same; `inf` when they cannot
    be compared value by value), and a note saying why when they cannot."""
    if set(a) != set(b):
        if len(a) == 1 and len(b) == 1:
            a, b = {"": next(iter(a.values()))}, {"": next(iter(b.values()))}
        else:
            return math.inf, f"outputs {sorted(a)} vs {sorted(b)}"
    largest = 0.0
    for name in a:
        left, right = np.asarray(a[name]), np.asarray(b[name])
        if left.shape != right.shape:
            return math.inf, f"{name or 'output'}: shape {left.shape} vs {right.shape}"
        difference, note = _difference(left, right)
        if note:
            return math.inf, f"{name or 'output'}: {note}"
        largest = max(largest, difference)
    return largest, ""


def _difference(left: np.ndarray, right: np.ndarray) -> tuple[float, str]:
    try:
        x, y = left.astype(float), right.astype(float)
    except (TypeError, ValueError):
        same = all(_same(p, q) for p, q in zip(left.ravel().tolist(), right.ravel().tolist(), strict=True))
        return (0.0, "") if same else (math.inf, "values differ")
    if x.size == 0:
        return 0.0, ""
    both_nan = np.isnan(x) & np.isnan(y)
    if np.any(np.isnan(x) != np.isnan(y)):
        return math.inf, "NaN on one side only"
    with np.errstate(invalid="ignore"):
        gaps = np.where(both_nan, 0.0, np.abs(x - y))
    gaps = np.where(np.isnan(gaps), np.where(x == y, 0.0, math.inf), gaps)  # inf - inf
    return float(np.max(gaps)), ""


def _same(p: Any, q: Any) -> bool:
    if isinstance(p, bytes) != isinstance(q, bytes):
        p, q = (_plain(p) if isinstance(p, bytes) else p), (_plain(q) if isinstance(q, bytes) else q)
    return p == q
