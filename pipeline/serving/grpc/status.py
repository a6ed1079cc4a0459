"""Canonical code name -> `grpc.StatusCode`, and TF Serving's cut of long messages.

The core's `ServingError.code` is an absl canonical code name; gRPC's status codes are the same
codes by the same names, so the mapping is by name. TF Serving cuts error messages longer than
1,024 characters to their first 1,024 followed by `...TRUNCATED` (`grpc_status_util.cc`), so that a
huge input echoed in an error never makes a huge trailer.
"""

from __future__ import annotations

import grpc

MAX_MESSAGE_CHARS = 1024
TRUNCATED = "...TRUNCATED"


def grpc_code(code_name: str) -> grpc.StatusCode:
    """The gRPC status of a canonical code name (UNKNOWN for a name gRPC does not have)."""
    return getattr(grpc.StatusCode, code_name, grpc.StatusCode.UNKNOWN)


def wire_message(message: str) -> str:
    """`message` as TF Serving sends it over gRPC: at most 1,024 characters, then `...TRUNCATED`."""
    if len(message) > MAX_MESSAGE_CHARS:
        return message[:MAX_MESSAGE_CHARS] + TRUNCATED
    return message
