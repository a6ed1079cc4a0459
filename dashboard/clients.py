"""The dashboard's model server clients: one REST client per URL and one gRPC client per target,
shared by every session of the dashboard process. Pages get them through :func:`get_client` and
:func:`get_grpc_client` only."""

from __future__ import annotations

import streamlit as st

from dashboard.session import serving_url, settings
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
    port 8500). Its messages are TF Serving's protos, read without importing TensorFlow."""
    return _grpc_client_for(settings().grpc_target, timeout)

