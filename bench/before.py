"""``--before REV``: another revision's tree, materialised under ``bench/.work/`` to run beside ours.

Contract: :func:`materialise` resolves REV with ``git rev-parse`` and unpacks ``git archive SHA``
into ``bench/.work/before-<short sha>/`` (reused when a previous run finished unpacking it; nothing
is written elsewhere in the checkout), and returns a :class:`BeforeTree`, or raises
:class:`BeforeError` saying why there is none (unknown revision, git failed). A server started with
``cwd`` set to the tree imports the tree's ``pipeline`` (``python -m`` puts the cwd first on
``sys.path``); :func:`imported_from` checks that, so a comparison never silently measures our own
code twice.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import contenders as cs

COMPLETE = ".bench-complete"
"""Written last into an unpacked tree: a tree without it is unpacked again."""


class BeforeError(RuntimeError):
    """REV could not be resolved or unpacked; the message says why."""


@dataclass(frozen=True)
class BeforeTree:
    """A revision's tree on disk."""

    rev: str
    """As given on the command line."""
    sha: str
    short: str
    path: Path

    @property
    def label(self) -> str:
        """How the report names it: ``before <short sha>`` (plus REV when it is a name)."""
        named = "" if self.sha.startswith(self.rev) or self.rev == self.short else f" ({self.rev})"
        return f"before {self.short}{named}"


def _git(*args: str, repo: Path) -> str:
    out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise BeforeError(f"git {' '.join(args)}: {(out.stderr.strip() or 'failed').splitlines()[0]}")
    return out.stdout.strip()


def resolve(rev: str, repo: Path = cs.REPO) -> tuple[str, str]:
    """(full sha, short sha) of the commit REV names; BeforeError for an unknown revision."""
    if not rev or rev.startswith("-"):
        raise BeforeError(f"not a revision: {rev!r}")
    try:
        sha = _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", repo=repo)
    except BeforeError:
        raise BeforeError(f"unknown revision {rev!r} (git rev-parse found no commit)") from None
    return sha, _git("rev-parse", "--short", sha, repo=repo)


def materialise(rev: str, work: Path = cs.WORK, repo: Path = cs.REPO) -> BeforeTree:
    """REV's tree under ``work/before-<short>/``, unpacked by ``git archive | tar -x`` unless a
    complete copy is there already."""
    sha, short = resolve(rev, repo)
    path = work / f"before-{short}"
    stamp = path / COMPLETE
    if stamp.exists() and stamp.read_text().strip() == sha:
        return BeforeTree(rev, sha, short, path)
    partial = work / f"before-{short}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(path, ignore_errors=True)
    partial.mkdir(parents=True)
    archive = subprocess.Popen(["git", "archive", "--format=tar", sha], cwd=repo, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    untar = subprocess.run(["tar", "-x", "-C", str(partial)], stdin=archive.stdout, capture_output=True,
                           timeout=300)
    archive.stdout.close()  # type: ignore[union-attr]
    archive_err = archive.stderr.read().decode(errors="replace")  # type: ignore[union-attr]
    if archive.wait(60) != 0 or untar.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        reason = archive_err.strip() or untar.stderr.decode(errors="replace").strip() or "failed"
        raise BeforeError(f"git archive {short} | tar -x: {reason.splitlines()[0]}")
    (partial / COMPLETE).write_text(sha + "\n")
    partial.rename(path)
    return BeforeTree(rev, sha, short, path)


def imported_from(tree: Path, python: str = sys.executable) -> Path:
    """The ``pipeline`` package a ``python -m`` child with cwd ``tree`` imports (sys.path[0] is
    the cwd, as for ``python -m pipeline.serving``); BeforeError unless it is the tree's own."""
    out = subprocess.run([python, "-c", "import pipeline; print(pipeline.__file__)"],  # sys.path[0] = cwd
                         cwd=tree, env=cs.child_env(tree), capture_output=True, text=True, timeout=120)
    if out.returncode != 0 or not out.stdout.strip():
        raise BeforeError(f"cannot import pipeline in {tree}: {out.stderr.strip()[-300:]}")
    found = Path(out.stdout.strip().splitlines()[-1]).resolve()
    if not found.is_relative_to(tree.resolve()):
        raise BeforeError(f"a child in {tree} imports {found}, not the before tree's pipeline")
    return found

