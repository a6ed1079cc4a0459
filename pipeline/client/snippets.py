"""Commands a user can copy: repeat a call with curl or Python, start the embedded server.

Pure text builders, so every place that shows a snippet (the dashboard, an error hint, the README)
shows the same one.
"""

from __future__ import annotations

import contextlib
import json
import shlex
from pathlib import Path
from typing import Any

from pipeline.settings import PROJECT_ROOT


def start_command(port: int, model_name: str, base_path: Path | str) -> str:
    """The shell command that starts the embedded server for `model_name` on `port` (the base
    path relative to the project root when it lies inside it)."""
    base = Path(base_path)
    with contextlib.suppress(ValueError):
        base = base.resolve().relative_to(PROJECT_ROOT)
    return (f"python -m pipeline.serving --rest_api_port {port} --model_name {model_name} "
            f"--model_base_path {base}")


def curl_command(url: str, body: dict[str, Any] | None = None) -> str:
    """A shell command that repeats the call: a GET without ``body``, else a JSON POST."""
    if body is None:
        return f"curl -sS {shlex.quote(url)}"
    return (f"curl -sS -X POST {shlex.quote(url)} \\\n  -H 'Content-Type: application/json' \\\n"
            f"  -d {shlex.quote(json.dumps(body))}")


def python_snippet(url: str, body: dict[str, Any] | None = None) -> str:
    """A Python ``requests`` script that repeats the call and prints the answer.

    The body is embedded as the exact JSON text sent (``NaN`` tokens included, which the
    ``json=`` argument of requests would refuse)."""
    lines = ["import requests", "", f"url = {url!r}"]
    if body is None:
        lines.append("response = requests.get(url, timeout=10)")
    else:
        lines += [f"body = {json.dumps(body)!r}",
                  'response = requests.post(url, data=body, headers={"Content-Type": "application/json"}, '
                  "timeout=10)"]
    lines.append("print(response.status_code, response.json())")
    return "\n".join(lines) + "\n"


def curl_file_command(url: str, filename: str = "request.json") -> str:
    """A shell command that POSTs the JSON body saved in ``filename`` (for bodies too large to
    paste into a command line)."""
    return (f"curl -sS -X POST {shlex.quote(url)} \\\n  -H 'Content-Type: application/json' \\\n"
            f"  -d @{shlex.quote(filename)}")


def python_file_snippet(url: str, filename: str = "request.json") -> str:
    """A Python ``requests`` script that POSTs the JSON body saved in ``filename``."""
    return "\n".join([
        "import requests", "", f"url = {url!r}",
        f"with open({filename!r}, 'rb') as body:",
        '    response = requests.post(url, data=body, headers={"Content-Type": "application/json"},',
        "                             timeout=60)",
        "print(response.status_code, response.json())"]) + "\n"


def grpc_python_snippet(target: str, model: str, rows: list[list[float]], *, version: int | None = None,
                        label: str | None = None, signature: str = "serving_default",
                        input_name: str = "inputs") -> str:
    """A Python script that sends ``rows`` (one float32 input, ``input_name``) over gRPC with TF
    Serving's official ``PredictionServiceStub`` (pip install tensorflow-serving-api) and prints the
    outputs: :func:`grpc_predict_snippet` for a single-input model."""
    return grpc_predict_snippet(target, model, {input_name: "float32"}, {input_name: rows}, version=version,
                                label=label, signature=signature)


def grpc_predict_snippet(target: str, model: str, dtypes: dict[str, str], inputs: dict[str, Any] | None, *,
                         version: int | None = None, label: str | None = None,
                         signature: str = "serving_default", body_file: str | None = None) -> str:
    """A Python script that sends a Predict with one typed tensor per input (``dtypes``: input key
    -> numpy dtype name, ``object`` for strings) to TF Serving's gRPC API with the official
    ``PredictionServiceStub`` and prints every output. With ``body_file``, the inputs are read from
    that saved REST body (``instances`` or ``inputs``) instead of being written into the script."""
    lines = ["import grpc", "import numpy as np", "import tensorflow as tf",
             "from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc", ""]
    lines.append(f"dtypes = {json.dumps(dtypes)}")
    if body_file is not None:
        only = next(iter(dtypes)) if len(dtypes) == 1 else None
        lines += ["import json", "", f"with open({body_file!r}) as body:", "    saved = json.load(body)",
                  'if "instances" in saved:',
                  '    rows = saved["instances"]',
                  "    inputs = ({k: [row[k] for row in rows] for k in rows[0]} if isinstance(rows[0], dict)",
                  f"              else {{{only!r}: rows}})",
                  "else:",
                  '    inputs = saved["inputs"]',
                  f"    inputs = inputs if isinstance(inputs, dict) else {{{only!r}: inputs}}"]
    else:
        lines.append(f"inputs = {json.dumps(inputs)}")
    lines += ["", f"channel = grpc.insecure_channel({target!r})",
              "stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)",
              "request = predict_pb2.PredictRequest()",
              f"request.model_spec.name = {model!r}",
              f"request.model_spec.signature_name = {signature!r}"]
    if label:
        lines.append(f"request.model_spec.version_label = {label!r}")
    elif version is not None:
        lines.append(f"request.model_spec.version.value = {int(version)}")
    lines += ["for key, value in inputs.items():",
              "    request.inputs[key].CopyFrom(tf.make_tensor_proto(np.array(value, dtype=dtypes[key])))",
              "response = stub.Predict(request, timeout=10)",
              "print('version', response.model_spec.version.value)",
              "for name, tensor in response.outputs.items():",
              "    print(name, tf.make_ndarray(tensor).tolist())"]
    return "\n".join(lines) + "\n"


def grpc_examples_snippet(target: str, model: str, verb: str, examples: list[dict[str, Any]], *,
                          version: int | None = None, label: str | None = None,
                          signature: str = "serving_default") -> str:
    """A Python script that sends ``examples`` as ``tf.Example``s to TF Serving's gRPC Classify or
    Regress (``verb``) with the official stub and prints the result."""
    request_class = "ClassificationRequest" if verb == "classify" else "RegressionRequest"
    module = "classification_pb2" if verb == "classify" else "regression_pb2"
    lines = ["import grpc",
             f"from tensorflow_serving.apis import {module}, prediction_service_pb2_grpc", "",
             f"examples = {json.dumps(examples)}", "",
             f"channel = grpc.insecure_channel({target!r})",
             "stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)",
             f"request = {module}.{request_class}()",
             f"request.model_spec.name = {model!r}",
             f"request.model_spec.signature_name = {signature!r}"]
    if label:
        lines.append(f"request.model_spec.version_label = {label!r}")
    elif version is not None:
        lines.append(f"request.model_spec.version.value = {int(version)}")
    lines += ["for values in examples:",
              "    example = request.input.example_list.examples.add()",
              "    for name, value in values.items():",
              "        items = value if isinstance(value, list) else [value]",
              "        feature = example.features.feature[name]",
              "        if all(isinstance(v, int) for v in items):",
              "            feature.int64_list.value.extend(items)",
              "        elif all(isinstance(v, (int, float)) for v in items):",
              "            feature.float_list.value.extend(items)",
              "        else:",
              "            feature.bytes_list.value.extend(str(v).encode() for v in items)",
              f"print(stub.{'Classify' if verb == 'classify' else 'Regress'}(request, timeout=10).result)"]
    return "\n".join(lines) + "\n"
