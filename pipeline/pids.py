"""Is this pid still the process we started? The one check before anything is signalled.

Pids are reused: a pid file outlives its process (a dashboard restart, a crash), and by the time
someone reads it the number may belong to an unrelated program. A pid is therefore trusted only
while `/proc/<pid>/cmdline` still equals the command line recorded when it was started, and never
when the process is a zombie or someone else's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def _zombie(pid: int) -> bool:
    """True if /proc says `pid` has exited but is not reaped yet (False where /proc cannot tell)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def command_line(pid: int) -> list[str] | None:
    """The argv of live process `pid` from /proc, or None if it is gone, a zombie or unreadable."""
    if _zombie(pid):
        return None
    try:
        return [part.decode() for part in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]]
    except (OSError, UnicodeDecodeError):
        return None


def pid_alive(pid: int) -> bool:
    """True while some process (anyone's, not a zombie) has `pid`: a leftover's writer may still be
    writing. Nothing is signalled on this answer; use `process_matches` before signalling."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def process_matches(pid: int, command: Sequence[str]) -> bool:
    """True while `pid` runs, is ours to signal, and (when `command` is given) still runs exactly
    `command`; so a recycled pid is never reported alive nor signalled."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process: not ours to report or signal
    if not Path("/proc").is_dir():
        return True
    argv = command_line(pid)
    return argv is not None and (not command or argv == list(command))
