"""The Predict page's requests, apart from its widgets: one predict over REST or gRPC with the
page's choices (kept in the request history, errors included), the version a request reaches,
the truth its answers are compared with, and the fingerprint that tells a stale answer."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from dashboard import clients, predict_history, session
from pipeline.client.errors import ClientError
from pipeline.client.rest import PredictResult, served_version
from pipeline.client.urls import is_local_url
from pipeline.store.versions import read_run_record


def true_weights(version: int | None) -> tuple[list[float], float, str]:
    """The true ``w0``, ``b0`` the served version was trained against (its run record, read
    from this machine's model folder when the server is local), else the project defaults;
    and where they came from, for the caption."""
    if version is not None and is_local_url(session.serving_url()):
        record = read_run_record(session.base_path() / str(version)) or {}
        true = record.get("true") or {}
        if len(true.get("w") or []) == 2 and true.get("b") is not None:
            return [float(v) for v in true["w"]], float(true["b"]), f"version {version}'s run record"
    settings = session.settings()
    return list(settings.true_w), settings.true_b, "the project defaults"


def served(target: dict[str, Any]) -> int | None:
    """The version a request to ``target`` reaches (an explicit one, else from the metadata)."""
    if "version" in target:
        return int(target["version"])
    try:
        return served_version(clients.get_client().metadata(session.model_name(), **target))
    except ClientError:
        return None


def send_grpc(rows: np.ndarray, target: dict[str, Any], signature: str) -> tuple[PredictResult, int]:
    """The same predict over gRPC (PredictionService/Predict with the official stubs), shown like
    a REST exchange: the request's model_spec and rows, the response's outputs; and the version
    that answered (gRPC says it). Kept in the request history as a gRPC request."""
    values = np.asarray(rows).tolist()
    clients.load_grpc_protos_quietly()  # quiet even if they fall back to importing TensorFlow
    client = clients.get_grpc_client()
    spec = {"name": session.model_name(), "signature_name": signature, **target}
    request = {"model_spec": spec, "inputs": values}
    try:
        answer = client.predict(session.model_name(), values, version=target.get("version"),
                                label=target.get("label"), signature=signature)
    except ClientError as exc:
        predict_history.record(target, request, len(values), error=exc, transport="gRPC")
        raise
    result = PredictResult(url=f"{client.url}/tensorflow.serving.PredictionService/Predict", request=request,
                           response={"model_spec": {"name": answer.model, "version": answer.version,
                                                    "signature_name": answer.signature},
                                     "outputs": answer.outputs},
                           status_code=0, latency_s=answer.latency_s)
    predict_history.record(target, request, len(values), result=result, version=answer.version,
                           transport="gRPC")
    return result, answer.version


def send(rows: np.ndarray, target: dict[str, Any], signature: str, fmt: str,
         version: int | None = None) -> PredictResult:
    """One predict call for ``rows`` with the page's choices, kept in the request history with
    ``version``, the version it reaches (raises ClientError, after recording it)."""
    values = np.asarray(rows).tolist()
    data = {"instances": values} if fmt == "row" else {"inputs": values}
    signature_name = None if signature == "serving_default" else signature
    try:
        result = clients.get_client().predict(session.model_name(), signature_name=signature_name, **target,
                                            **data)
    except ClientError as exc:
        request = {"signature_name": signature_name, **data} if signature_name else data
        predict_history.record(target, request, len(values), error=exc)
        raise
    predict_history.record(target, result.request, len(values), result=result, version=version)
    return result


def inputs_key(rows: np.ndarray | None, target: dict[str, Any], signature: str, fmt: str,
               transport: str = "REST") -> str:
    """A fingerprint of everything an answer depends on: the rows, version or label, signature,
    format, transport. An answer whose fingerprint differs from the page's is stale."""
    digest = hashlib.sha1(json.dumps([target, signature, fmt, transport], sort_keys=True).encode())
    if rows is not None:
        digest.update(np.ascontiguousarray(rows, dtype=np.float64).tobytes())
    return digest.hexdigest()
