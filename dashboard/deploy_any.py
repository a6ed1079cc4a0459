"""The Deploy page's routes for any model, apart from its widgets: the same example answered over
REST and gRPC by the server, and by the version's ``model.tflite`` in LiteRT when it has one; the
browser (TF.js) and Java routes feed one numeric ``[-1, k]`` input, and say so for other models.
Every answer is flattened to its numeric outputs (by output name) so routes can be compared with
the SavedModel's (REST) answer. No Streamlit here."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dashboard import deploy_routes as routes
from dashboard.deploy_routes import RouteAnswer
from pipeline.client.errors import ClientError
from pipeline.client.grpc import as_exchange
from pipeline.client.signatures import Signature, read_outputs, rest_body, typed_array


def flat_outputs(outputs: Mapping[str, Any]) -> list[float]:
    """Every numeric output value, output by output (in name order), as one list; strings left out.
    ``ValueError`` when no output is numeric."""
    values: list[float] = []
    for name in sorted(outputs):
        try:
            array = np.asarray(outputs[name], dtype=np.float64)
        except (TypeError, ValueError):
            continue
        values += array.reshape(-1).tolist()
    if not values:
        raise ValueError("the model's outputs are not numbers, so routes cannot be compared")
    return values


def single_numeric_input(signature: Signature) -> str | None:
    """Why the TF.js and Java routes cannot feed this signature (``None`` when they can: one numeric
    ``[-1, k]`` input, predict method)."""
    if signature.takes_examples:
        return f"it takes tf.Examples ({signature.method}); this route sends rows of numbers"
    if len(signature.inputs) != 1:
        names = ", ".join(signature.inputs)
        return f"it takes {len(signature.inputs)} inputs ({names}); this route sends one"
    (spec,) = signature.inputs.values()
    if not spec.numeric or not spec.batched or len(spec.row_shape or ()) != 1:
        return f"its input is {spec.describe()}; this route sends rows of numbers ([-1, k])"
    return None


def rest_any(client: Any, model: str, version: int, signature: Signature, inputs: Mapping[str, Any] | None,
             examples: list[dict[str, Any]] | None) -> tuple[RouteAnswer, dict[str, Any] | None]:
    """The server's answer over REST (version pinned), and its outputs by name."""
    named = None if signature.name == "serving_default" else signature.name
    try:
        if signature.takes_examples:
            call = client.classify if signature.method == "classify" else client.regress
            result = call(model, examples or [], version=version, signature_name=named)
        else:
            result = client.predict_body(model, rest_body(dict(inputs or {}), "row", signature.name),
                                         version=version)
        outputs = read_outputs(result.response, signature)
        values = flat_outputs(outputs)
    except (ClientError, ValueError) as error:
        return RouteAnswer(routes.REST, error=str(error)), None
    return RouteAnswer(routes.REST, values, result.latency_s * 1000, "HTTP round trip"), outputs


def grpc_any(client: Any, model: str, version: int, signature: Signature, inputs: Mapping[str, Any] | None,
             examples: list[dict[str, Any]] | None = None) -> RouteAnswer:
    """The server's answer over gRPC: Predict with one typed tensor per input, or Classify/Regress
    with the same tf.Examples REST sends."""
    if not routes.grpc_listening(client.target):
        return RouteAnswer(routes.GRPC, error=f"nothing answers gRPC at {client.target}: start the server "
                                              "with a gRPC port (`--port 8500`) or set GRPC_TARGET")
    try:
        if signature.takes_examples:
            call = client.classify if signature.method == "classify" else client.regress
            done = call(model, examples or [], version=version, signature=signature.name)
            values = flat_outputs(read_outputs(as_exchange("", {}, done).response, signature))
        else:
            arrays = {k: typed_array(signature.inputs[k], v) for k, v in (inputs or {}).items()}
            done = client.predict_arrays(model, arrays, version=version, signature=signature.name)
            values = flat_outputs(done.outputs)
    except (ClientError, ValueError) as error:
        return RouteAnswer(routes.GRPC, error=str(error))
    return RouteAnswer(routes.GRPC, values, done.latency_s * 1000, "RPC round trip")


def litert_any(version_path: Path | None, signature: Signature,
               inputs: Mapping[str, Any] | None) -> RouteAnswer:
    """The version's ``model.tflite`` in LiteRT with the same named inputs (no TensorFlow)."""
    if version_path is None:
        return RouteAnswer(routes.LITERT, skipped="the version's folder is not on this machine")
    if signature.takes_examples:
        return RouteAnswer(routes.LITERT, skipped="a classify/regress signature parses tf.Examples, which "
                                                  "LiteRT's builtin ops do not")
    tflite = version_path / "model.tflite"
    if not tflite.is_file():
        return RouteAnswer(routes.LITERT, skipped="this version has no model.tflite yet: convert it above")
    from pipeline.formats.errors import FormatError
    from pipeline.formats.tflite import LiteRTModel

    try:
        model = LiteRTModel(tflite)
        feed = {k: typed_array(signature.inputs[k], v) for k, v in (inputs or {}).items()}
        model.run(feed)  # warm-up: the first call allocates tensors for the batch size
        started = time.perf_counter()
        outputs = model.run(feed)
        latency_ms = (time.perf_counter() - started) * 1000
        values = flat_outputs({k: v.tolist() for k, v in outputs.items()})
    except (FormatError, ValueError, ImportError, OSError, KeyError) as error:
        return RouteAnswer(routes.LITERT, error=str(error))
    return RouteAnswer(routes.LITERT, values, latency_ms, "warm call in the dashboard's process")
