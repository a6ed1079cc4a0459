"""The exchange behind an answer, collapsed: the request and response as sent and received (a
preview of the first rows beyond :data:`PREVIEW_ROWS`, the whole bodies as downloads), and
ready-to-copy curl, Python and gRPC snippets for any signature."""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from dashboard import input_table, session
from dashboard.predict_requests import Answer
from pipeline.client.signatures import NUMPY_DTYPES
from pipeline.client.snippets import (
    curl_command,
    curl_file_command,
    grpc_examples_snippet,
    grpc_predict_snippet,
    python_file_snippet,
    python_snippet,
)

PREVIEW_ROWS = 20
"""Bodies with more rows are shown as their first rows, the whole JSON being a download."""


def _short(value: Any) -> Any:
    if isinstance(value, list):
        return value[:PREVIEW_ROWS]
    if isinstance(value, dict):
        return {k: _short(v) for k, v in value.items()}
    return value


def body_preview(body: dict[str, Any], rows: int) -> str:
    """The JSON of ``body`` when it is small, else its first :data:`PREVIEW_ROWS` rows with a note."""
    if rows <= PREVIEW_ROWS:
        return json.dumps(body)
    short = {k: (_short(v) if k in ("instances", "inputs", "predictions", "outputs", "examples", "results")
                 else v) for k, v in body.items()}
    return f"// first {PREVIEW_ROWS} of {rows:,} rows; download the whole body\n" + json.dumps(short)


def grpc_code(answer: Answer, small: bool) -> str:
    """The gRPC snippet of an answered request (Predict with typed tensors, or Classify/Regress)."""
    request = answer.request
    target, grpc_target = request.target, session.settings().grpc_target
    if request.signature.takes_examples:
        return grpc_examples_snippet(grpc_target, request.model, request.verb, request.examples or [],
                                     version=target.get("version"), label=target.get("label"),
                                     signature=request.signature.name)
    dtypes = {k: NUMPY_DTYPES.get(s.dtype, "float32") for k, s in request.signature.inputs.items()}
    return grpc_predict_snippet(grpc_target, request.model, dtypes,
                                input_table.as_lists(request.inputs or {}) if small else None,
                                version=target.get("version"), label=target.get("label"),
                                signature=request.signature.name, body_file=None if small else "request.json")


def render_exchange(answer: Answer) -> None:
    """The request and response, collapsed, with downloads and copyable snippets: curl and
    requests for REST, the official PredictionServiceStub for gRPC (beside each other)."""
    result, rows = answer.result, answer.request.rows
    grpc = answer.request.transport == "gRPC"
    title = f"Request and response, curl and Python ({rows:,} row{'s' if rows != 1 else ''})"
    with st.expander(title, expanded=rows <= PREVIEW_ROWS):
        request_tab, response_tab, curl_tab, python_tab, grpc_tab = st.tabs(
            ["Request", "Response", "curl", "Python", "Python (gRPC)"])
        request_tab.caption(f"{'gRPC' if grpc else 'POST'} {result.url}")
        request_tab.code(body_preview(result.request, rows), language="json", wrap_lines=True)
        status = "gRPC OK" if grpc else f"HTTP {result.status_code}"
        response_tab.caption(f"{status} in {result.latency_s * 1000:.1f} ms")
        response_tab.code(body_preview(result.response, rows), language="json", wrap_lines=True)
        rest_url = answer.request.rest_url()
        rest_body = answer.request.rest_body() if grpc else result.request
        small = rows <= PREVIEW_ROWS
        if small:
            curl_tab.code(curl_command(rest_url, rest_body), language="bash")
            python_tab.code(python_snippet(rest_url, rest_body), language="python")
        else:
            curl_tab.code(curl_file_command(rest_url), language="bash")
            python_tab.code(python_file_snippet(rest_url), language="python")
        grpc_tab.code(grpc_code(answer, small), language="python")
        left, right = st.columns(2)
        left.download_button("Download request.json", json.dumps(rest_body), "request.json",
                             mime="application/json", key="predict_download_request",
                             icon=":material/download:")
        right.download_button("Download response.json", json.dumps(result.response), "response.json",
                              mime="application/json", key="predict_download_response",
                              icon=":material/download:")
