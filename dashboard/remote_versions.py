"""A model's versions as a remote model server tells them, for when its folder is not on this machine.

With the dashboard pointed at a cluster (``SERVING_URL`` at a Kubernetes Service or a KServe
predictor), the versions live on a volume the dashboard cannot read. TF Serving's REST API still
says what exists: ``GET /v1/models/<name>`` (``model_version_status``: every version it knows,
its state and load error) and ``GET /v1/models/<name>[/versions/<N>]/metadata`` (the version
that answers requests without a version, and each loaded version's signatures). This module
reads both through :class:`pipeline.client.rest.ServingClient` and returns plain data; the Models
page draws it. No Streamlit here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.client.errors import ClientError
from pipeline.client.rest import ServingClient, served_version, signature_rows

SIGNATURE = "serving_default"


@dataclass(frozen=True)
class RemoteVersion:
    """One version as the server reports it."""

    version: int
    state: str
    load_error: str = ""
    metadata: dict[str, Any] | None = field(default=None, compare=False)
    """The version's ``metadata`` answer (only for versions that are AVAILABLE)."""
    metadata_error: str = ""


@dataclass(frozen=True)
class RemoteModel:
    """What the server says about one model: its versions (newest first) and which one serves
    requests that name no version (``None`` if the server did not say)."""

    versions: list[RemoteVersion]
    default_version: int | None


def load_error(entry: dict[str, Any] | None) -> str:
    """The server's error for a version it failed to load ("" when it loaded or was not tried)."""
    status = (entry or {}).get("status") or {}
    if status.get("error_code", "OK") in ("OK", 0, None):
        return ""
    return str(status.get("error_message") or status.get("error_code"))


def signature_summary(metadata: dict[str, Any] | None, signature: str = SIGNATURE) -> str:
    """``inputs inputs DT_FLOAT (-1, 2) → outputs outputs DT_FLOAT (-1, 1)``: a signature's
    tensors in one line, as the versions table shows them ("" when there is no such signature)."""
    rows = [r for r in signature_rows(metadata or {}) if r["signature"] == signature]
    inputs = ", ".join(f"{r['key']} {r['dtype']} {r['shape']}" for r in rows if r["kind"] == "input")
    outputs = ", ".join(f"{r['key']} {r['dtype']} {r['shape']}" for r in rows if r["kind"] == "output")
    return f"{inputs} → {outputs}" if rows else ""


def read_remote_model(client: ServingClient, model: str) -> RemoteModel:
    """Every version the server at ``client`` reports for ``model``, with each AVAILABLE
    version's metadata. ``ClientError`` when the model's status cannot be read at all (server
    down, or no version of the model: TF Serving's 404); a version whose metadata cannot be read
    keeps the error text instead, so one bad answer does not hide the others."""
    statuses = client.model_status(model)
    try:
        default = served_version(client.metadata(model))
    except ClientError:
        default = None
    found: dict[int, RemoteVersion] = {}
    for entry in statuses:
        try:
            number = int(entry["version"])
        except (KeyError, TypeError, ValueError):
            continue
        state = str(entry.get("state", "unknown"))
        metadata, problem = None, ""
        if state == "AVAILABLE":
            try:
                metadata = client.metadata(model, version=number)
            except ClientError as exc:
                problem = str(exc)
        found[number] = RemoteVersion(number, state, load_error(entry), metadata, problem)
    return RemoteModel(sorted(found.values(), key=lambda v: v.version, reverse=True), default)
