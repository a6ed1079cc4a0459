"""`Code` -> `grpc.StatusCode`, and TF Serving's cut of long messages.

The one place a canonical code becomes a gRPC status: gRPC's status codes are the same canonical
codes under the same names, so every member of `Code` maps to the `grpc.StatusCode` of its name.
TF Serving cuts error messages longer than 1,024 characters to their first 1,024 followed by
`...TRUNCATED` (`grpc_status_util.cc`), so that a huge input echoed in an error never makes a huge
trailer. (The REST front end's mapping is `rest/http_status.py`.)
"""

from __future__ import annotations

import grpc

from pipeline.serving.errors import Code

MAX_MESSAGE_CHARS = 1024
TRUNCATED = "...TRUNCATED"
GRPC_STATUS: dict[Code, grpc.StatusCode] = {code: grpc.StatusCode[code.name] for code in Code}


def grpc_code(code: Code) -> grpc.StatusCode:
    """The gRPC status of a canonical code."""
    return GRPC_STATUS[code]


def wire_message(message: str) -> str:
    """`message` as TF Serving sends it over gRPC: at most 1,024 characters, then `...TRUNCATED`."""
    if len(message) > MAX_MESSAGE_CHARS:
        return message[:MAX_MESSAGE_CHARS] + TRUNCATED
    return message
