"""A failing warm-up is not hidden (issue 9, bug 6): the version still loads and serves, and the
failure is a warning in the log and a count in `tensorflow_serving_warmup_failure_count`."""

from __future__ import annotations

from pathlib import Path

from tests.server.harness import error_of, metric_value, ok_json, start_server


def test_a_failing_warm_up_is_a_warning_and_a_metric_and_the_version_still_serves(tmp_path: Path) -> None:
    from tests.server.savedmodels import export_needs_two_rows

    export_needs_two_rows(tmp_path / "picky" / "1")
    server = start_server(["--model_name=picky", f"--model_base_path={tmp_path / 'picky'}",
                           "--enable_prometheus", "--file_system_poll_wait_seconds=0"],
                          tmp_path / "server.log")
    try:
        assert metric_value(server, "tensorflow_serving_warmup_failure_count_total", model_name="picky") == 1
        expected = "Warm-up of picky version 1 signature serving_default failed"
        warnings = [line for line in server.log().splitlines() if "WARNING" in line and expected in line]
        assert len(warnings) == 1 and "needs at least two rows" in warnings[0]
        assert ok_json(server.get("/v1/models/picky"))["model_version_status"][0]["state"] == "AVAILABLE"
        answer = server.post("/v1/models/picky:predict", {"instances": [[1.0], [2.0]]})
        assert ok_json(answer) == {"predictions": [[2.0], [3.0]]}
        assert "needs at least two rows" in error_of(server.post("/v1/models/picky:predict",
                                                                 {"instances": [[1.0]]}), 400)
    finally:
        server.stop()
