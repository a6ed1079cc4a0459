"""The one exception every client-side failure ends in.

Whatever goes wrong between the caller and a model server (no server, a timeout, a bad URL, an
HTTP error with TF Serving's `{"error": ...}`, an answer that is not TF Serving's) is a
`ClientError` whose `str()` is a sentence a user can act on. The server has its own error type
(`pipeline.serving.errors`); the two never meet in one process.
"""

from __future__ import annotations


class ClientError(Exception):
    """A call to the model server failed; ``str()`` says what happened and what to do next.

    ``status_code`` is the HTTP status (``None`` when no HTTP answer came back: connection
    refused, timeout, bad URL), ``message`` the server's own error text (TF Serving's
    ``{"error": ...}``) or a description of the transport failure, ``url`` the URL called.
    """

    def __init__(self, message: str, *, url: str, status_code: int | None = None, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.url = url
        self.status_code = status_code
        self.hint = hint

    def __str__(self) -> str:
        where = f"HTTP {self.status_code} from {self.url}" if self.status_code is not None else self.url
        return f"{self.message} ({where}). {self.hint}".strip()
