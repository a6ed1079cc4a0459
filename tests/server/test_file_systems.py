"""TensorFlow's file systems for base paths and config files (issue 23 item 5), as TF Serving reads
`--model_base_path=gs://...`: versions listed, SavedModels loaded and models.config read through
`tf.io.gfile`. Tested on `ram://`, TensorFlow's in-memory file system (no network here; `gs://` goes
through the same calls, see docs/serving.md): the server process copies the files in before serving
(tests/server/launchers/ram_fs_server.py).
"""

from __future__ import annotations

import pytest

from tests.server.harness import REPO, Models, error_of, install_version, ok_json, start_server

LAUNCHER = [str(REPO / "tests" / "server" / "launchers" / "ram_fs_server.py")]
CONFIG = """
model_config_list {
  config { name: 'from_config' base_path: 'ram://store/hpt' model_platform: 'tensorflow' }
}
"""


def test_a_ram_base_path_is_listed_loaded_and_served(models: Models, tmp_path) -> None:
    install_version(models.half_plus_two, tmp_path / "hpt", "7")
    server = start_server([f"--copy={tmp_path / 'hpt'}=ram://store/hpt", "--model_name=hpt",
                           "--model_base_path=ram://store/hpt", "--file_system_poll_wait_seconds=0"],
                          tmp_path / "server.log", launcher=LAUNCHER)
    try:
        status = ok_json(server.get("/v1/models/hpt"))
        assert status["model_version_status"][0]["version"] == "7"
        assert status["model_version_status"][0]["state"] == "AVAILABLE"
        assert ok_json(server.post("/v1/models/hpt:predict", {"instances": [1.0, 2.0]})) == {
            "predictions": [2.5, 3.0]}
        assert "ram://store/hpt" in server.log() and "ram:/store" not in server.log()
    finally:
        server.stop()


def test_a_models_config_on_ram_is_read(models: Models, tmp_path) -> None:
    install_version(models.half_plus_two, tmp_path / "hpt", "3")
    (tmp_path / "models.config").write_text(CONFIG)
    server = start_server([f"--copy={tmp_path / 'hpt'}=ram://store/hpt",
                           f"--copy={tmp_path / 'models.config'}=ram://etc/models.config",
                           "--model_config_file=ram://etc/models.config",
                           "--file_system_poll_wait_seconds=0"],
                          tmp_path / "server.log", launcher=LAUNCHER)
    try:
        assert ok_json(server.post("/v1/models/from_config/versions/3:predict", {"instances": [4.0]})) == {
            "predictions": [4.0]}
        assert error_of(server.get("/v1/models/hpt"), 404)
    finally:
        server.stop()


@pytest.mark.parametrize("base_path", ["file://{root}/hpt", "{root}/hpt"])
def test_file_uris_and_plain_paths_name_the_same_folder(models: Models, tmp_path, base_path: str) -> None:
    install_version(models.half_plus_two, tmp_path / "hpt", "1")
    server = start_server(["--model_name=hpt", f"--model_base_path={base_path.format(root=tmp_path)}",
                           "--file_system_poll_wait_seconds=0"], tmp_path / "server.log")
    try:
        assert ok_json(server.post("/v1/models/hpt:predict", {"instances": [2.0]})) == {"predictions": [3.0]}
    finally:
        server.stop()
