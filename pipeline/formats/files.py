"""Atomic writes inside a version folder, so a reader sees a whole file or folder or none of it.

Exports sit beside the SavedModel that a model server may be loading at the same moment; a crash
or a failed conversion must leave at most a hidden leftover (a name starting with `.`), which the
next export of the same format removes. Nothing here ever touches `saved_model.pb` or `variables/`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pipeline.pids import pid_alive


def fsync_dir(path: Path) -> None:
    """Flush a directory entry (a rename inside it) to disk; a no-op where directories can't be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(target: Path, data: bytes) -> Path:
    """Write `data` to `target` through a hidden temporary file in the same folder (fsync, rename)."""
    fd, tmp_name = tempfile.mkstemp(prefix=_prefix(target.name), dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)
    return target


def _prefix(name: str) -> str:
    """Hidden temporaries carry the writer's pid, so only a dead writer's leftovers are removed."""
    return f".{name}.tmp-{os.getpid()}-"


def _writer_alive(leftover: Path, name: str) -> bool:
    """Whether the process that made `leftover` still runs (unparseable names count as dead)."""
    pid_text = leftover.name[len(f".{name}.tmp-"):].split("-", 1)[0]
    return pid_text.isdigit() and pid_alive(int(pid_text))


def remove_leftovers(folder: Path, name: str) -> None:
    """Delete hidden temporaries that a crashed export of `name` (a process now gone) left in `folder`."""
    for leftover in folder.glob(f".{name}.tmp-*"):
        if _writer_alive(leftover, name):
            continue  # another export of the same version is still writing it
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


@contextlib.contextmanager
def staged_dir(target: Path) -> Iterator[Path]:
    """Yield an empty hidden folder beside `target`; on success it replaces `target` whole.

    If the body raises, the staged folder is deleted and `target` (if any) is left as it was. A
    previous `target` is moved aside before the rename and deleted after, so readers see either
    the old folder or the new one.
    """
    remove_leftovers(target.parent, target.name)
    staging = Path(tempfile.mkdtemp(prefix=_prefix(target.name), dir=target.parent))
    try:
        yield staging
        for child in staging.iterdir():
            with child.open("rb") as handle:
                os.fsync(handle.fileno())
        os.chmod(staging, 0o755)
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=_prefix(target.name) + "old-", dir=target.parent))
            target.rename(old / target.name)
        try:
            staging.rename(target)
        except BaseException:
            if old is not None:
                (old / target.name).rename(target)
            raise
        fsync_dir(target.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
