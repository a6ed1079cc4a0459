"""The embedded server's log as the Serving page shows it: TensorFlow's C++ info noise left out."""

from __future__ import annotations

import re

_CPP_NOISE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\)"
                        r"|I\d{4} [\d:.]+\s+\d+ \S+:\d+\])")


def without_cpp_noise(log: str) -> tuple[str, int]:
    """``log`` without TensorFlow's C++ info lines (oneDNN, CUDA stubs, absl's preamble), which
    TF_CPP_MIN_LOG_LEVEL does not silence before absl logging starts; and how many were hidden.
    Warnings and errors from C++ (``W``/``E`` lines) are kept: they may say why a load failed."""
    lines = log.splitlines()
    kept = [line for line in lines if not _CPP_NOISE.match(line)]
    return "\n".join(kept), len(lines) - len(kept)
