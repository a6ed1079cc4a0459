"""docker-compose.yml serves the project's model folder with the real tensorflow/serving image."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from pipeline.settings import Settings

config = Settings.from_env({})  # the project's defaults, as the server reads them from an empty environment

REPO = Path(__file__).resolve().parents[2]


def serving_service() -> dict:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = [s for s in compose["services"].values() if s["image"].startswith("tensorflow/serving:")]
    assert len(services) == 1
    return services[0]


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # the `- NAME=value` form
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def test_image_is_a_pinned_2x_release() -> None:
    assert re.fullmatch(r"tensorflow/serving:2\.\d+\.\d+", serving_service()["image"])


def test_rest_and_grpc_ports_are_published_unchanged() -> None:
    ports = [str(port) for port in serving_service()["ports"]]
    assert f"{config.rest_port}:8501" in ports and "8500:8500" in ports
    assert config.serving_url.endswith(f":{config.rest_port}")


def test_model_folder_is_mounted_where_the_image_looks_for_model_name() -> None:
    service = serving_service()
    name = environment(service)["MODEL_NAME"]
    assert name == config.model_name
    mounts = [volume.split(":") for volume in service["volumes"]]
    targets = {parts[1]: parts[0] for parts in mounts}
    # The image runs --model_base_path=${MODEL_BASE_PATH:-/models}/${MODEL_NAME}.
    assert f"/models/{name}" in targets
    source = (REPO / targets[f"/models/{name}"]).resolve()
    assert source == (REPO / "models" / name).resolve()
    assert source.name == config.model_base_path.name
