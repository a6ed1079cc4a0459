"""Project-wide defaults, each overridable by an environment variable.

One place for the numbers the tutorial fixes (true weights, noise, sample
count) and for where things live (model name, base path, server URL), so the
CLI, the dashboard and the server agree without importing each other.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The repository root; paths are resolved from here, never from the cwd."""


def _env_float_list(name: str, default: tuple[float, ...]) -> tuple[float, ...]:
    raw = os.environ.get(name)
    if not raw:
        return default
    return tuple(float(part) for part in raw.split(","))


MODEL_NAME: str = os.environ.get("MODEL_NAME", "linear_model")
MODELS_DIR: Path = Path(os.environ.get("MODELS_DIR", PROJECT_ROOT / "models"))
MODEL_BASE_PATH: Path = Path(os.environ.get("MODEL_BASE_PATH", MODELS_DIR / MODEL_NAME))
AUTOSTART_SERVER: bool = os.environ.get("AUTOSTART_SERVER", "1").lower() not in ("0", "false", "no", "off")
"""Start the embedded server from the dashboard when SERVING_URL is local and silent."""
REST_PORT: int = int(os.environ.get("REST_API_PORT", "8501"))
GRPC_PORT: int = int(os.environ.get("GRPC_PORT", "8500"))
SERVING_URL: str = os.environ.get("SERVING_URL", f"http://127.0.0.1:{REST_PORT}").rstrip("/")

TRUE_W: tuple[float, ...] = _env_float_list("TRUE_W", (2.0, -1.0))
TRUE_B: float = float(os.environ.get("TRUE_B", "3.0"))
NOISE_STD: float = float(os.environ.get("NOISE_STD", "2.0"))
NUM_SAMPLES: int = int(os.environ.get("NUM_SAMPLES", "800"))

MIN_SAMPLES = 2
MAX_SAMPLES = 10_000_000
