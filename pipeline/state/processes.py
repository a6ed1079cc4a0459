"""Process records: ``(pid, start time, command line)``, checked before every signal.

A pid file outlives its process (a crash, a dashboard restart), and the kernel reuses pids: by
the time someone reads the file the number may belong to an unrelated program, even one that
runs the same command. A :class:`ProcessRecord` names one process for good: its pid, its start
time (``/proc/<pid>/stat`` field 22, fixed at fork) and its command line. It reads as running
(:meth:`ProcessRecord.matches`) only while ``/proc`` shows that pid with that very start time
and command, owned by us and not a zombie; :meth:`ProcessRecord.signal` signals only then, so a
recycled pid is never signalled and never read as running.

On disk a record is a JSON object ``{"pid", "start_time", "command", ...info}``; ``info`` holds
what the writer adds (a server's port, a run's id) under its own keys. A record without a start
time (written before start times were recorded) never matches.
"""

from __future__ import annotations

import contextlib
import os
import signal as signals
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.state.files import atomic_write_json, read_json
from pipeline.state.proc import command_line, start_time

_KEYS = ("pid", "start_time", "command")
EXEC_SETTLE_S = 5.0
"""How long :meth:`ProcessRecord.of` waits for a just-exec'ed child's command line to appear."""


@dataclass(frozen=True)
class ProcessRecord:
    """One process, for good: ``pid`` + ``start_time`` (clock ticks after boot) + ``command``,
    with the writer's own ``info`` (a port, a run id) alongside."""

    pid: int
    start_time: int | None
    command: tuple[str, ...]
    info: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, pid: int, **info: Any) -> ProcessRecord | None:
        """The record of live process ``pid`` as ``/proc`` shows it (None if it is gone).

        For a child just started with ``subprocess.Popen``: Popen returns once the exec is
        committed, but for a moment after that the kernel has not yet set up the new program's
        arguments and ``/proc/<pid>/cmdline`` reads empty; this waits (up to
        :data:`EXEC_SETTLE_S`) until it shows the child's own command line."""
        deadline = time.monotonic() + EXEC_SETTLE_S
        while True:
            started, command = start_time(pid), command_line(pid)
            if started is None or command is None:
                return None
            if command or time.monotonic() > deadline:  # a kernel thread's command line is empty for good
                return cls(pid, started, command, dict(info))
            time.sleep(0.002)

    @classmethod
    def current(cls, **info: Any) -> ProcessRecord:
        """This process's record."""
        found = cls.of(os.getpid(), **info)
        if found is None:
            raise OSError("cannot read this process's start time from /proc")
        return found

    def matches(self) -> bool:
        """True while this very process runs and is ours to signal: same pid, same start time,
        same command line, not a zombie, not someone else's."""
        if self.start_time is None:
            return False
        try:
            os.kill(self.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False  # gone, or someone else's: not ours to report or signal
        return start_time(self.pid) == self.start_time and command_line(self.pid) == tuple(self.command)

    def signal(self, sig: int = signals.SIGTERM, *, group: bool = False) -> bool:
        """Send ``sig`` to this process (``group``: to the process group it leads, so its
        children go too) if it still :meth:`matches`; True when sent. A pidfd opened before the
        check pins the process, so the pid cannot be recycled between the check and the signal."""
        try:
            pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            return False
        except OSError:
            pidfd = None
        try:
            if not self.matches():
                return False
            if group:
                if os.getpgid(self.pid) != self.pid:
                    return False  # it leads no group of its own: never signal someone else's group
                os.killpg(self.pid, sig)
            elif pidfd is not None:
                signals.pidfd_send_signal(pidfd, sig)
            else:
                os.kill(self.pid, sig)
        except ProcessLookupError:
            return False
        finally:
            if pidfd is not None:
                os.close(pidfd)
        return True

    def to_json(self) -> dict[str, Any]:
        return {**self.info, "pid": self.pid, "start_time": self.start_time, "command": list(self.command)}

    @classmethod
    def from_json(cls, data: Any) -> ProcessRecord | None:
        """The record in a JSON object, or None when it is not one."""
        if not isinstance(data, dict):
            return None
        pid, started, command = data.get("pid"), data.get("start_time"), data.get("command")
        if not isinstance(pid, int) or isinstance(pid, bool) or not isinstance(command, list):
            return None
        if started is not None and (not isinstance(started, int) or isinstance(started, bool)):
            return None
        info = {k: v for k, v in data.items() if k not in _KEYS}
        return cls(pid, started, tuple(str(part) for part in command), info)


def write_record(path: Path | str, record: ProcessRecord) -> Path:
    """Write ``record`` to ``path`` atomically; return ``path``."""
    return atomic_write_json(path, record.to_json())


def read_record(path: Path | str) -> ProcessRecord | None:
    """The record at ``path`` (None when missing or unreadable); whether it still runs is
    :meth:`ProcessRecord.matches`."""
    return ProcessRecord.from_json(read_json(path))


def remove_record(path: Path | str, record: ProcessRecord | None = None) -> bool:
    """Delete the record at ``path``; with ``record``, only if the file still names that process
    (so a newer process's record is never removed by an older one's cleanup). True if deleted."""
    path = Path(path)
    if record is not None:
        found = read_record(path)
        if found is None or (found.pid, found.start_time) != (record.pid, record.start_time):
            return False
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
        return True
    return False
