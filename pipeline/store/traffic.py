"""The embedded server's request logs: where they go and how much of them is kept.

The dashboard's embedded server logs every request of every model it serves (its models.config
gives each model a `logging_config` with `sampling_rate: 1.0`, `store.serving_config`), under the
run folder beside that config:

    <run>/traffic/<model>/requests.<UTC stamp>-<pid>-<n>.tfrecord (+ .requests.jsonl)

Files are started anew every `FILE_BYTES`; past `max_bytes` (a setting the Traffic page changes,
kept in `<run>/traffic/settings.json`) the oldest files of a model are removed, by the server each
time it starts a file (`--request_log_max_total_bytes`, from the setting when the server starts)
and by `prune` when the setting changes.
"""

from __future__ import annotations

from pathlib import Path

from pipeline import state
from pipeline.serving import log_files

TRAFFIC_DIR = "traffic"
PREFIX_NAME = "requests"
SETTINGS_NAME = "settings.json"
MiB = 1024 * 1024
DEFAULT_MAX_BYTES = 256 * MiB
"""Kept per model unless the user says otherwise."""
MIN_MAX_BYTES = 1 * MiB
FILE_BYTES = 4 * MiB
"""The embedded server's `--request_log_max_file_bytes`: small files, so the cap removes little at a time."""


def traffic_dir(run_dir: Path | str) -> Path:
    return Path(run_dir) / TRAFFIC_DIR


def prefix(run_dir: Path | str, model_name: str) -> Path:
    """The `filename_prefix` of `model_name`'s request logs under `run_dir`."""
    return traffic_dir(run_dir).resolve() / model_name / PREFIX_NAME


def max_bytes(run_dir: Path | str) -> int:
    """The bytes of request logs kept per model (the setting, else `DEFAULT_MAX_BYTES`)."""
    saved = state.read_json(traffic_dir(run_dir) / SETTINGS_NAME)
    value = saved.get("max_bytes") if isinstance(saved, dict) else None
    return int(value) if isinstance(value, int) and value >= MIN_MAX_BYTES else DEFAULT_MAX_BYTES


def set_max_bytes(run_dir: Path | str, value: int) -> list[Path]:
    """Keep at most `value` bytes of request logs per model from now on: saved for the next start
    of the embedded server, and the oldest files past it removed now. ValueError below
    `MIN_MAX_BYTES`. The files removed."""
    if value < MIN_MAX_BYTES:
        raise ValueError(f"keep at least {MIN_MAX_BYTES // MiB} MiB of request logs per model")
    state.atomic_write_json(traffic_dir(run_dir) / SETTINGS_NAME, {"max_bytes": int(value)})
    return prune(run_dir, value)


def model_prefixes(run_dir: Path | str) -> dict[str, Path]:
    """Every model that has a request log folder under `run_dir`, with its prefix."""
    root = traffic_dir(run_dir)
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir())
    except OSError:
        return {}
    return {folder.name: folder.resolve() / PREFIX_NAME for folder in folders}


def prune(run_dir: Path | str, value: int) -> list[Path]:
    """Remove every model's oldest request log files past `value` bytes, keeping each model's
    newest file (the one its server may be writing)."""
    removed = []
    for model_prefix in model_prefixes(run_dir).values():
        files = log_files.log_files(str(model_prefix))
        if files:
            removed += log_files.prune(str(model_prefix), value, keep=files[-1])
    return removed


def usage(run_dir: Path | str) -> dict[str, int]:
    """Bytes of request logs (log and companion files) per model."""
    found = {}
    for model, model_prefix in model_prefixes(run_dir).items():
        total = 0
        for path in log_files.log_files(str(model_prefix)):
            for part in (path, log_files.sidecar_path(path)):
                try:
                    total += part.stat().st_size
                except OSError:
                    continue
        found[model] = total
    return found
