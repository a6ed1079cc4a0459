"""The version source: which versions of a model exist on disk, and which of them are aspired.

Mirrors TF Serving's `FileSystemStoragePathSource`: a model's base path holds one directory per
version, by the project's one version-folder rule (`pipeline.model_dir.version_dirs`: a whole
base-10 name in int64 range; `v1`, `.tmp-1234`, files are ignored). The version policy then picks the
aspired versions: the N highest (`latest`), every one (`all`), or a fixed list (`specific`).

A poll that fails (the base path is missing, is not a directory, or cannot be listed) is not an
answer: `poll` returns None and the manager changes nothing, as TF Serving's source sends no
aspired versions when its file-system poll fails. So an NFS blip, a remount or a deploy that
renames the base path away and back never unloads a model. A base path that exists and holds no
version is an answer (no versions aspired): the model unloads, as upstream.

Thread-safety: a `VersionSource` is used by the one polling thread of its model; the pure
functions are safe anywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from pipeline.serving.model_config import VersionPolicy
from pipeline.serving.storage import StoragePath, versions

log = logging.getLogger(__name__)



def aspired_versions(on_disk: Mapping[int, StoragePath], policy: VersionPolicy) -> dict[int, StoragePath]:
    """The subset of `on_disk` that `policy` wants loaded."""
    if policy.kind == "all":
        return dict(on_disk)
    if policy.kind == "specific":
        return {v: on_disk[v] for v in policy.versions if v in on_disk}
    newest = sorted(on_disk, reverse=True)[: max(1, policy.num_versions)]
    return {v: on_disk[v] for v in newest}


class VersionSource:
    """Polls one model's base path; logs problems once per change instead of at every poll."""

    def __init__(self, model_name: str, base_path: StoragePath, policy: VersionPolicy) -> None:
        self.model_name = model_name
        self.base_path = base_path
        self.policy = policy
        self._last_problem: str | None = None

    def poll(self) -> dict[int, StoragePath] | None:
        """The aspired versions now on disk ({} when the base path holds none), or None when the
        base path could not be listed (missing, not a directory, an I/O error): nothing is known,
        so nothing may change. Each distinct problem is logged once, until the poll succeeds."""
        try:
            on_disk = versions(self.base_path)
        except OSError as error:
            self._report(f"FileSystemStoragePathSource encountered a file-system access error: Could not "
                         f"find base path {self.base_path} for servable {self.model_name} with error "
                         f"{error.strerror or error}; the versions loaded keep serving")
            return None
        if not on_disk:
            self._report(f"No versions of servable {self.model_name} found under base path "
                         f"{self.base_path}. Did you forget to name your leaf directory as a number "
                         "(eg. '/1/')?")
            return {}
        aspired = aspired_versions(on_disk, self.policy)
        missing = [v for v in self.policy.versions if v not in on_disk]  # empty unless "specific"
        self._report(f"Versions {missing} of servable {self.model_name} are not under base path "
                     f"{self.base_path}" if missing else None)
        return aspired

    def _report(self, problem: str | None) -> None:
        if problem != self._last_problem and problem is not None:
            log.warning("%s", problem)
        self._last_problem = problem
