"""The server honours each model's `logging_config` at start-up: a config that can be honoured is
taken (its folder created), one that cannot is refused in the log with its reason while the model
is still served, and the request-log flags parse. (Requests reaching the files:
`test_request_logging_requests.py`.)"""

from __future__ import annotations

from pathlib import Path

from pipeline.serving.flags import parse_flags
from tests.server.harness import start_server, wait_for


def test_request_log_flags_default_to_64_mib_files_and_no_cap() -> None:
    flags = parse_flags(["--model_name=m", "--model_base_path=/m"])
    assert (flags.request_log_max_file_bytes, flags.request_log_max_total_bytes) == (64 * 1024 * 1024, 0)
    flags = parse_flags(["--request_log_max_file_bytes=1000", "--request_log_max_total_bytes=5000"])
    assert (flags.request_log_max_file_bytes, flags.request_log_max_total_bytes) == (1000, 5000)


def test_a_refused_logging_config_is_said_at_start_up_and_the_model_still_serves(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    config = tmp_path / "models.config"
    entries = []
    for name, prefix in (("good", tmp_path / "traffic" / "good" / "requests"), ("bad", blocker / "requests")):
        (tmp_path / name).mkdir()
        entries.append(f"""config {{ name: "{name}" base_path: "{tmp_path / name}"
          model_platform: "tensorflow"
          logging_config {{ log_collector_config {{ type: "file" filename_prefix: "{prefix}" }}
                            sampling_config {{ sampling_rate: 1.0 }} }} }}""")
    config.write_text("model_config_list { " + " ".join(entries) + " }")
    server = start_server([f"--model_config_file={config}"], tmp_path / "server.log")
    try:
        wait_for(lambda: "Model good: logging every request" in server.log(), 60)
        log = server.log()
        assert "Model bad: logging_config refused, the model is served without request logging: " \
               f"filename_prefix '{blocker / 'requests'}' cannot be written" in log
        assert (tmp_path / "traffic" / "good").is_dir()
        answer = server.get("/v1/models/bad")
        assert answer.status_code == 404 and "Could not find any versions of model bad" in answer.text
    finally:
        server.stop()  # SIGTERM: the request logs are closed (what is queued written) before the exit
    assert server.process.returncode == 0
    assert "Request log of model good closed: 0 records written, 0 dropped" in server.log()
