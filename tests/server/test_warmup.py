"""Warm-up over the wire (issue 10): the server replays a version's `assets.extra` warm-up requests
`--num_request_iterations_for_warmup` times before it is AVAILABLE, and a version whose warm-up fails
does not load (state END with the error, in `:tensorflow:serving:model_warmup_latency{status=...}`),
as TF Serving does. Models are the project's copies of upstream's (tests/support/upstream_models.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.server.harness import ok_json, start_server
from tests.support import upstream_models as um

pytestmark = pytest.mark.slow


def test_warm_up_requests_run_before_the_version_serves_and_a_bad_one_fails_its_load(tmp_path: Path) -> None:
    counter = um.counter(tmp_path / "counter" / "1")
    um.write_warmup(counter, [um.predict_log("incr_counter_by", delta=1.5)])
    picky = um.half_plus_two(tmp_path / "picky" / "1")
    um.write_warmup(picky, [um.predict_log("no_such_signature", x=1.0)])
    config = tmp_path / "models.config"
    config.write_text("model_config_list {\n" + "".join(
        f"  config {{ name: '{name}' base_path: '{tmp_path / name}' model_platform: 'tensorflow' }}\n"
        for name in ("counter", "picky")) + "}\n")
    server = start_server([f"--model_config_file={config}", "--num_request_iterations_for_warmup=2",
                           "--max_num_load_retries=0", "--enable_prometheus",
                           "--file_system_poll_wait_seconds=0"],
                          tmp_path / "server.log")
    try:
        peek = {"signature_name": "incr_counter_by", "inputs": {"delta": 0.0}}
        assert ok_json(server.post("/v1/models/counter:predict", peek)) == {"outputs": 3.0}  # 2 x 1.5
        status = ok_json(server.get("/v1/models/picky"))["model_version_status"][0]
        assert status["state"] == "END" and status["status"]["error_code"] == "INVALID_ARGUMENT"
        assert 'Serving signature name: "no_such_signature" not found' in status["status"]["error_message"]
        failed = [line for line in server.get("/monitoring/prometheus/metrics").text.splitlines()
                  if line.startswith(":tensorflow:serving:model_warmup_latency_count{")
                  and "/picky/1" in line]
        assert len(failed) == 1 and 'status="INVALID_ARGUMENT: ' in failed[0] and failed[0].endswith(" 1")
        assert "Number of warmup records read: 1." in server.log()
    finally:
        server.stop()
