"""The dashboard's model server clients: one REST client per URL and one gRPC client per target,
shared by every session of the dashboard process, and the quiet first load of the gRPC protos.
Pages get them through :func:`get_client` and :func:`get_grpc_client` only."""

from __future__ import annotations

import os
import sys
import threading

import streamlit as st

from dashboard.session import serving_url, settings
from pipeline.client import serving_protos
from pipeline.client.grpc import GrpcClient
from pipeline.client.rest import ServingClient

CLIENT_TIMEOUT_S = 5.0


@st.cache_resource(show_spinner=False)
def client_for(url: str) -> ServingClient:
    """The shared :class:`ServingClient` for ``url``."""
    return ServingClient(url, timeout=CLIENT_TIMEOUT_S)


def get_client() -> ServingClient:
    """The shared (cached per URL) :class:`ServingClient` for :func:`serving_url`."""
    return client_for(serving_url())


@st.cache_resource(show_spinner=False)
def _grpc_client_for(target: str, timeout: float) -> GrpcClient:
    return GrpcClient(target, timeout=timeout)


def get_grpc_client(timeout: float = CLIENT_TIMEOUT_S) -> GrpcClient:
    """The shared :class:`GrpcClient` for the gRPC target (``Settings.grpc_target``, TF Serving's
    port 8500). Its first Predict imports TensorFlow's protos (seconds), never at start-up."""
    return _grpc_client_for(settings().grpc_target, timeout)


_TF_IMPORT_LOCK = threading.Lock()


def load_grpc_protos_quietly() -> None:
    """Import TensorFlow Serving's gRPC protos before the first gRPC request. They load without
    TensorFlow's runtime (`pipeline.client.serving_protos`); should that fall back to importing
    TensorFlow, the process's stderr is silenced meanwhile, so its C++ start-up lines (oneDNN,
    CUDA stubs, absl's preamble, which no environment variable silences) never reach the terminal
    the dashboard runs in."""
    if "tensorflow_serving.apis.predict_pb2" in sys.modules:
        return
    with _TF_IMPORT_LOCK:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        saved = os.dup(2)
        try:
            with open(os.devnull, "wb") as null:
                os.dup2(null.fileno(), 2)
                serving_protos.load()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
