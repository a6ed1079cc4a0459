"""The project's settings: read once from the environment, then passed explicitly.

One place for the numbers the tutorial fixes (true weights, noise, sample count) and for where
things live (model name, base path, server URLs and ports), so the CLI, the dashboard and the server
agree without importing each other. Nothing reads the environment at import time: a caller builds
`Settings.from_env()` when it starts (or a test builds `Settings(...)` with what it needs) and hands
it down.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The repository root; default paths are resolved from here, never from the working directory."""

MIN_SAMPLES = 2
MAX_SAMPLES = 10_000_000

_FALSE = ("0", "false", "no", "off")


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(part) for part in text.split(","))


@dataclass(frozen=True)
class Settings:
    """Where things live and what the tutorial's data is; immutable, cheap to copy with `replace`."""

    model_name: str = "linear_model"
    models_dir: Path = PROJECT_ROOT / "models"
    model_base_path: Path = PROJECT_ROOT / "models" / "linear_model"
    rest_port: int = 8501
    grpc_port: int = 8500
    dashboard_port: int = 8502
    serving_url: str = "http://127.0.0.1:8501"
    """The model server's REST root the dashboard talks to."""
    grpc_target: str = "127.0.0.1:8500"
    """The model server's gRPC `host:port` the dashboard talks to."""
    autostart_server: bool = True
    """Start the embedded server from the dashboard when `serving_url` is local and silent."""
    true_w: tuple[float, ...] = field(default=(2.0, -1.0))
    true_b: float = 3.0
    noise_std: float = 2.0
    num_samples: int = 800
    run_dir: Path = PROJECT_ROOT / ".run"
    """Where the embedded server started from here keeps its pid file, log and models.config."""
    model_config_file: Path | None = None
    """A models.config whose model names the dashboard's model picker offers (e.g. the file a
    real TF Serving was started with)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from environment variables (MODEL_NAME, MODELS_DIR, MODEL_BASE_PATH,
        REST_API_PORT, GRPC_PORT, DASHBOARD_PORT, SERVING_URL, GRPC_TARGET, AUTOSTART_SERVER, TRUE_W,
        TRUE_B, NOISE_STD, NUM_SAMPLES, SERVING_RUN_DIR, MODEL_CONFIG_FILE); anything unset keeps its default.
        ValueError names a bad value."""
        env = os.environ if env is None else env
        d = cls()
        try:
            name = env.get("MODEL_NAME") or d.model_name
            models_dir = Path(env.get("MODELS_DIR") or d.models_dir)
            rest_port = int(env.get("REST_API_PORT") or d.rest_port)
            grpc_port = int(env.get("GRPC_PORT") or d.grpc_port)
            return cls(
                model_name=name,
                models_dir=models_dir,
                model_base_path=Path(env.get("MODEL_BASE_PATH") or models_dir / name),
                rest_port=rest_port,
                grpc_port=grpc_port,
                dashboard_port=int(env.get("DASHBOARD_PORT") or d.dashboard_port),
                serving_url=(env.get("SERVING_URL") or f"http://127.0.0.1:{rest_port}").rstrip("/"),
                grpc_target=env.get("GRPC_TARGET") or f"127.0.0.1:{grpc_port}",
                autostart_server=(env.get("AUTOSTART_SERVER") or "1").lower() not in _FALSE,
                true_w=_floats(env["TRUE_W"]) if env.get("TRUE_W") else d.true_w,
                true_b=float(env.get("TRUE_B") or d.true_b),
                noise_std=float(env.get("NOISE_STD") or d.noise_std),
                num_samples=int(env.get("NUM_SAMPLES") or d.num_samples),
                run_dir=Path(env.get("SERVING_RUN_DIR") or d.run_dir),
                model_config_file=Path(env["MODEL_CONFIG_FILE"]) if env.get("MODEL_CONFIG_FILE") else None,
            )
        except ValueError as error:
            raise ValueError(f"bad setting in the environment: {error}") from None

    def with_model(self, name: str) -> Settings:
        """The same settings for another model name (its base path under `models_dir`)."""
        return replace(self, model_name=name, model_base_path=self.models_dir / name)
