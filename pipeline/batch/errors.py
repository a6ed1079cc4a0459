"""The one exception type of batch scoring: a problem the user can fix, stated in one sentence."""

from __future__ import annotations


class BatchError(Exception):
    """A usage or input problem found before or while scoring (missing model, unknown column,
    unreadable input). `str(error)` is the whole message; the CLI prints it and exits with 2."""
