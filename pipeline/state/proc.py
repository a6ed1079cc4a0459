"""What ``/proc`` says about a pid: is it alive, when did it start, what does it run.

A pid alone names a process only until it exits; the kernel then hands the number to the next
process that starts. ``/proc/<pid>/stat`` field 22 (``starttime``, clock ticks after boot) is set
once, at fork, and never changes, so ``(pid, start time)`` names one process for the life of the
machine; the command line (``/proc/<pid>/cmdline``) says what it runs.
"""

from __future__ import annotations

import os
from pathlib import Path

_STATE, _STARTTIME = 0, 19
"""Indexes of stat fields 3 (state) and 22 (starttime) after the ``(comm)`` field."""


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after ``(comm)`` (which may itself hold spaces or ``)``)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> int | None:
    """When live process ``pid`` started (clock ticks after boot), or None if it is gone, a
    zombie (exited, not reaped yet) or unreadable."""
    fields = _stat(pid)
    if fields is None or len(fields) <= _STARTTIME or fields[_STATE] in ("Z", "X"):
        return None
    try:
        return int(fields[_STARTTIME])
    except ValueError:
        return None


def command_line(pid: int) -> tuple[str, ...] | None:
    """The argv of live process ``pid``, or None if it is gone, a zombie or unreadable."""
    if start_time(pid) is None:
        return None
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    try:
        return tuple(part.decode() for part in raw.split(b"\0")[:-1])
    except UnicodeDecodeError:
        return None


def pid_alive(pid: int) -> bool:
    """True while some process (anyone's, not a zombie) has ``pid``: the writer of a leftover
    temporary file named after it may still be writing. Never a reason to signal it: use a
    :class:`pipeline.state.processes.ProcessRecord` for that."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return start_time(pid) is not None
