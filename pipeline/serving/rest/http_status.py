"""Canonical status code -> HTTP status, as TensorFlow Serving's REST API answers (spec §2.1).

The core raises `ServingError(code, message)` with canonical code names; only the REST front end
turns a code into an HTTP status, here. (A gRPC front end uses the code itself.)
"""

from __future__ import annotations

HTTP_STATUS: dict[str, int] = {
    "OK": 200, "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400,
    "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "ABORTED": 409, "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401, "RESOURCE_EXHAUSTED": 429, "CANCELLED": 499, "DEADLINE_EXCEEDED": 504,
    "UNIMPLEMENTED": 501, "UNAVAILABLE": 503, "UNKNOWN": 500, "INTERNAL": 500, "DATA_LOSS": 500,
}


def http_status(code: str) -> int:
    """The HTTP status for a canonical code name; codes not in the table are 500."""
    return HTTP_STATUS.get(code, 500)
