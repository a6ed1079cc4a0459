"""Whole-file writes: a reader sees the old file or the new one, never half of one.

Every write goes to a hidden temporary file in the target's own folder, named
``.<name>.tmp-<writer pid>-<random>`` (hidden, so no model server takes it for a version, and
carrying the writer's pid, so only a dead writer's leftovers are ever removed), is flushed and
fsynced, gets its mode (the old file's, else what ``open()`` would give a new file), and is
renamed over the target; the folder entry is fsynced last. A crash leaves at most the hidden
leftover, which :func:`remove_leftovers` (called by the next staged write) deletes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pipeline.state.proc import pid_alive


def fsync_dir(path: Path | str) -> None:
    """Flush a directory entry (a rename inside it) to disk; a no-op where it cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path | str) -> None:
    """Flush every file and folder under ``root`` (before the rename that publishes it)."""
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as handle:
                os.fsync(handle.fileno())
        fsync_dir(dirpath)


def _prefix(name: str) -> str:
    return f".{name}.tmp-{os.getpid()}-"


def _new_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: 0o666 less this process's umask (read from
    /proc, because asking ``os.umask`` means changing it for every thread for a moment)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    return 0o644


def _mode_for(target: Path) -> int:
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        return _new_file_mode()


@contextlib.contextmanager
def atomic_path(target: Path | str, *, mode: int | None = None) -> Iterator[Path]:
    """Yield a hidden temporary path beside ``target`` for a library that writes to a path (a
    TFRecord writer, say); when the body returns, the file is fsynced, given ``mode`` (default:
    the old file's, else a new file's usual mode) and renamed over ``target``. If the body
    raises, the temporary file is removed and ``target`` is left as it was."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=_prefix(target.name), dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, _mode_for(target) if mode is None else mode)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def atomic_write_bytes(target: Path | str, data: bytes, *, mode: int | None = None) -> Path:
    """Write ``data`` to ``target`` whole (see the module docstring); return ``target``."""
    with atomic_path(target, mode=mode) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
    return Path(target)


def atomic_write_text(target: Path | str, text: str, *, mode: int | None = None) -> Path:
    """Write ``text`` (UTF-8) to ``target`` whole; return ``target``."""
    return atomic_write_bytes(target, text.encode("utf-8"), mode=mode)


def atomic_write_json(target: Path | str, data: Any, *, indent: int | None = None,
                      sort_keys: bool = False) -> Path:
    """Write ``data`` as JSON to ``target`` whole (NaN and infinities allowed, as Python's json
    reads them back); return ``target``."""
    return atomic_write_text(target, json.dumps(data, indent=indent, sort_keys=sort_keys, allow_nan=True))


def read_json(path: Path | str) -> Any | None:
    """The JSON value in ``path``, or None when it is missing or not JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _writer_alive(leftover: Path, name: str) -> bool:
    """Whether the process that made ``leftover`` still runs (unparseable names count as dead)."""
    pid_text = leftover.name[len(f".{name}.tmp-"):].split("-", 1)[0]
    return pid_text.isdigit() and pid_alive(int(pid_text))


def remove_leftovers(folder: Path | str, name: str) -> None:
    """Delete the hidden temporaries of ``name`` in ``folder`` whose writer is gone (a crash)."""
    for leftover in Path(folder).glob(f".{name}.tmp-*"):
        if _writer_alive(leftover, name):
            continue  # another writer of the same file is still at it
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


@contextlib.contextmanager
def staged_dir(target: Path | str) -> Iterator[Path]:
    """Yield an empty hidden folder beside ``target``; when the body returns it replaces
    ``target`` whole (every file fsynced first).

    If the body raises, the staged folder is deleted and ``target`` (if any) is left as it was.
    A previous ``target`` is moved aside before the rename and deleted after, so readers see
    either the old folder or the new one.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target.parent, target.name)
    staging = Path(tempfile.mkdtemp(prefix=_prefix(target.name), dir=target.parent))
    try:
        yield staging
        fsync_tree(staging)
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


def rotate(path: Path | str, keep: int) -> None:
    """Move ``path`` to ``path.1`` (``path.1`` to ``path.2``, ...), keeping ``keep`` old copies;
    the oldest beyond that is deleted. A missing ``path`` is left alone."""
    path = Path(path)
    if not path.exists():
        return
    if keep <= 0:
        path.unlink(missing_ok=True)
        return
    path.with_name(f"{path.name}.{keep}").unlink(missing_ok=True)
    for n in range(keep - 1, 0, -1):
        older = path.with_name(f"{path.name}.{n}")
        if older.exists():
            os.replace(older, path.with_name(f"{path.name}.{n + 1}"))
    os.replace(path, path.with_name(f"{path.name}.1"))


def prune_oldest(files: Iterable[Path], keep: int) -> list[Path]:
    """Delete all but the last ``keep`` of ``files`` (given oldest first); return those deleted."""
    ordered = list(files)
    doomed = ordered[: max(0, len(ordered) - max(0, keep))]
    for path in doomed:
        with contextlib.suppress(FileNotFoundError):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink()
    return doomed
