"""The serving core's outcomes: canonical status codes (`Code`) and one error type per code.

Every failure a request can meet (a missing servable, a bad input, a model error, a full queue, an
expired deadline) is a `ServingError` subclass named after its outcome (`NotFound`,
`InvalidArgument`, `Unavailable`, `DeadlineExceeded`, `ResourceExhausted`, `FailedPrecondition`,
...), carrying TF Serving's message text; its `code` is a member of `Code`, absl's/TensorFlow's
canonical codes by name and number. A misspelt code is an AttributeError where it is written, never
a silent 500. The core knows no transport: each front end maps a `Code` once to its wire status
(REST: `rest/http_status.py`, an HTTP status per code; gRPC: `grpc/status.py`, the gRPC status of
the same code). `Code` is a `StrEnum`, so its members are also their names (metric labels, logs).
"""

from __future__ import annotations

import enum
import re
from typing import ClassVar


class Code(enum.StrEnum):
    """Canonical status codes (absl::StatusCode, tensorflow.error.Code); `number` is the wire value."""

    OK = "OK"
    CANCELLED = "CANCELLED"
    UNKNOWN = "UNKNOWN"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    ABORTED = "ABORTED"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    UNIMPLEMENTED = "UNIMPLEMENTED"
    INTERNAL = "INTERNAL"
    UNAVAILABLE = "UNAVAILABLE"
    DATA_LOSS = "DATA_LOSS"
    UNAUTHENTICATED = "UNAUTHENTICATED"

    @property
    def number(self) -> int:
        """The canonical code number (0 OK ... 16 UNAUTHENTICATED), as status protos carry it."""
        return _NUMBERS[self]

    @classmethod
    def of(cls, code: Code | str | int) -> Code:
        """The member for a name or a number; UNKNOWN for anything that is not a canonical code."""
        if isinstance(code, int):
            return _BY_NUMBER.get(code, cls.UNKNOWN)
        try:
            return cls(code)
        except ValueError:
            return cls.UNKNOWN


_NUMBERS = {code: number for number, code in enumerate(Code)}
_BY_NUMBER = {number: code for code, number in _NUMBERS.items()}


class ServingError(Exception):
    """A failed serving call: the subclass names the outcome (`code`), `message` is TF's text."""

    code: ClassVar[Code] = Code.UNKNOWN

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class Cancelled(ServingError):
    code = Code.CANCELLED


class Unknown(ServingError):
    code = Code.UNKNOWN


class InvalidArgument(ServingError):
    """The request is wrong: bad JSON or tensor, unknown signature or label, ..."""

    code = Code.INVALID_ARGUMENT


class DeadlineExceeded(ServingError):
    code = Code.DEADLINE_EXCEEDED


class NotFound(ServingError):
    """No such model, version, or servable AVAILABLE."""

    code = Code.NOT_FOUND


class AlreadyExists(ServingError):
    code = Code.ALREADY_EXISTS


class PermissionDenied(ServingError):
    code = Code.PERMISSION_DENIED


class ResourceExhausted(ServingError):
    """Over a limit (a request body too large, a tensor too big)."""

    code = Code.RESOURCE_EXHAUSTED


class FailedPrecondition(ServingError):
    """The server is not in the state the request needs (a label on an unavailable version, ...)."""

    code = Code.FAILED_PRECONDITION


class Aborted(ServingError):
    code = Code.ABORTED


class OutOfRange(ServingError):
    code = Code.OUT_OF_RANGE


class Unimplemented(ServingError):
    code = Code.UNIMPLEMENTED


class Internal(ServingError):
    """A bug: it costs the one request, never the server."""

    code = Code.INTERNAL


class Unavailable(ServingError):
    """Try again later: overloaded, a full batch queue, shutting down."""

    code = Code.UNAVAILABLE


class DataLoss(ServingError):
    code = Code.DATA_LOSS


class Unauthenticated(ServingError):
    code = Code.UNAUTHENTICATED


_ERROR_TYPES: dict[Code, type[ServingError]] = {
    cls.code: cls for cls in (Cancelled, Unknown, InvalidArgument, DeadlineExceeded, NotFound, AlreadyExists,
                              PermissionDenied, ResourceExhausted, FailedPrecondition, Aborted, OutOfRange,
                              Unimplemented, Internal, Unavailable, DataLoss, Unauthenticated)}


def error_for(code: Code | str | int, message: str) -> ServingError:
    """The error of a code known only at run time (a TensorFlow status, a model folder problem):
    its outcome's type, UNKNOWN for anything that is not a canonical code (OK included)."""
    member = Code.of(code)
    return _ERROR_TYPES.get(member, Unknown)(message)


def from_code_number(number: int, message: str) -> ServingError:
    """The error for a numeric canonical code (e.g. a TensorFlow OpError's `error_code`)."""
    return error_for(number, clean_tf_message(message))


def clean_tf_message(message: str) -> str:
    """A TF runtime error text without the eager wrapper's header and `[Op:...]` suffix."""
    text = message
    if text.startswith("Graph execution error:"):
        marker = "<stack traces unavailable>\n"
        text = text.split(marker, 1)[1] if marker in text else text[len("Graph execution error:"):]
    return re.sub(r"\s*\[Op:[^\]]*\]\s*$", "", text).strip()
