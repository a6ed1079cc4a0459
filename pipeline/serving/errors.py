"""The one error type of the serving core: a canonical status code name and TF Serving's message.

Every failure a request can meet (a missing servable, a bad input, a model error, a full queue, an
expired deadline) is a `ServingError(code, message)`. `code` is an absl/TensorFlow canonical code
name (`INVALID_ARGUMENT`, `NOT_FOUND`, ...); `message` is the text TF Serving answers with. The
core never knows a transport: each front end maps the code to its own wire status (the REST front
end to HTTP statuses in `rest/app.py`, a gRPC front end to `grpc.StatusCode` of the same name).
"""

from __future__ import annotations

import re

CODE_NAMES: dict[int, str] = {
    0: "OK", 1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED", 5: "NOT_FOUND",
    6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION",
    10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED", 13: "INTERNAL", 14: "UNAVAILABLE",
    15: "DATA_LOSS", 16: "UNAUTHENTICATED",
}
"""Canonical codes (absl::StatusCode / tensorflow.error.Code) by number."""


class ServingError(Exception):
    """A failed serving call: `code` is a canonical code name (e.g. NOT_FOUND), `message` TF's text."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def invalid(message: str) -> ServingError:
    """An INVALID_ARGUMENT error, the most common one."""
    return ServingError("INVALID_ARGUMENT", message)


def from_code_number(number: int, message: str) -> ServingError:
    """A ServingError for a numeric canonical code (e.g. a TensorFlow OpError's `error_code`)."""
    return ServingError(CODE_NAMES.get(number, "UNKNOWN"), clean_tf_message(message))


def clean_tf_message(message: str) -> str:
    """A TF runtime error text without the eager wrapper's header and `[Op:...]` suffix."""
    text = message
    if text.startswith("Graph execution error:"):
        marker = "<stack traces unavailable>\n"
        text = text.split(marker, 1)[1] if marker in text else text[len("Graph execution error:"):]
    return re.sub(r"\s*\[Op:[^\]]*\]\s*$", "", text).strip()
