"""`Code` -> HTTP status, as TensorFlow Serving's REST API answers (spec §2.1): the one place a
canonical code becomes an HTTP status. Every member of `Code` is mapped (a test checks it), so an
outcome can never fall through to an unplanned 500. (The gRPC front end's mapping is
`grpc/status.py`.)
"""

from __future__ import annotations

from pipeline.serving.errors import Code

HTTP_STATUS: dict[Code, int] = {
    Code.OK: 200, Code.INVALID_ARGUMENT: 400, Code.FAILED_PRECONDITION: 400, Code.OUT_OF_RANGE: 400,
    Code.NOT_FOUND: 404, Code.ALREADY_EXISTS: 409, Code.ABORTED: 409, Code.PERMISSION_DENIED: 403,
    Code.UNAUTHENTICATED: 401, Code.RESOURCE_EXHAUSTED: 429, Code.CANCELLED: 499,
    Code.DEADLINE_EXCEEDED: 504, Code.UNIMPLEMENTED: 501, Code.UNAVAILABLE: 503, Code.UNKNOWN: 500,
    Code.INTERNAL: 500, Code.DATA_LOSS: 500,
}


def http_status(code: Code) -> int:
    """The HTTP status TF Serving answers with for `code`."""
    return HTTP_STATUS[code]
