"""Every deployment format of a version at once, each failure kept apart from the others."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline.formats.errors import FormatError
from pipeline.formats.tfjs import export_tfjs
from pipeline.formats.tflite import export_tflite

EXPORTERS: dict[str, Callable[[Path], Path]] = {"tflite": export_tflite, "tfjs": export_tfjs}
"""Format name -> exporter; each writes inside the version folder and returns what it wrote."""


def export_all(
    version_path: Path | str, formats: tuple[str, ...] = tuple(EXPORTERS)
) -> dict[str, Path | FormatError]:
    """Export a version to each format: `{format: written path or the FormatError}`.

    Never raises for one failing format, so a model TF.js cannot run still gets its `.tflite`
    (and the reverse). Unexpected exceptions are turned into FormatError with their text; the
    SavedModel is never changed.
    """
    results: dict[str, Path | FormatError] = {}
    for name in formats:
        try:
            results[name] = EXPORTERS[name](Path(version_path))
        except FormatError as error:
            results[name] = error
        except Exception as error:  # noqa: BLE001 - one format's bug must not stop the others
            text = f"{type(error).__name__}: {error}"
            results[name] = FormatError(f"{name} export of {version_path} failed: {text}")
    return results
