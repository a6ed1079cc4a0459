"""The one home for on-disk state: atomic writes, file locks and process records.

Every file the project writes outside a SavedModel goes through here (docs/state.md lists them
all, with who writes and who reads each):

- :mod:`pipeline.state.files`: whole-file writes a reader never sees half of (bytes, text, JSON,
  or a path a library writes to), staged folders that replace a folder whole, leftovers of dead
  writers removed, logs rotated and old files pruned;
- :mod:`pipeline.state.locks`: one ``flock`` context manager (optionally re-entrant per thread);
- :mod:`pipeline.state.proc`: what ``/proc`` says about a pid (alive, start time, command line);
- :mod:`pipeline.state.processes`: the process record ``(pid, start time, command line)``, the
  only way anything in the project signals another process, so a recycled pid is never hit.

A leaf: it imports only the standard library, so every part of the project (the model server
included) may use it. Linux only, like the rest of the project (``flock``, ``/proc``).
"""

from pipeline.state.files import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    fsync_dir,
    fsync_tree,
    prune_oldest,
    read_json,
    remove_leftovers,
    rotate,
    staged_dir,
)
from pipeline.state.locks import file_lock
from pipeline.state.proc import command_line, pid_alive, start_time
from pipeline.state.processes import ProcessRecord, read_record, remove_record, write_record

__all__ = [
    "ProcessRecord", "atomic_path", "atomic_write_bytes", "atomic_write_json", "atomic_write_text",
    "command_line", "file_lock", "fsync_dir", "fsync_tree", "pid_alive", "prune_oldest", "read_json",
    "read_record", "remove_leftovers", "remove_record", "rotate", "staged_dir", "start_time", "write_record",
]
