"""The one exception type of the format exports, with messages written for the person reading them."""

from __future__ import annotations


class FormatError(Exception):
    """A version could not be converted to (or loaded from) a deployment format.

    `str(error)` is a complete sentence a user can act on: what failed, on which file or op, and
    why. The SavedModel the conversion started from is never changed when this is raised.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
