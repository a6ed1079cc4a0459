"""With TF Serving's default flags the answers are TF Serving's (issue 23): no batching unless asked.

`tensorflow_model_server` runs every request as its own session run unless `--enable_batching`.
Two models whose answers change when requests are merged, hit concurrently by a server started with
default flags: `minus_batch_mean` (y = x - mean over the batch: every request of one row must get 0)
and `counter` (each call returns how many calls ran: no two requests may share a number).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.server.harness import Server, ok_json, start_server

THREADS = 16
REQUESTS = 160
CONFIG = """
model_config_list {{
  config {{ name: 'mean' base_path: '{root}/mean' model_platform: 'tensorflow' }}
  config {{ name: 'counter' base_path: '{root}/counter' model_platform: 'tensorflow' }}
}}
"""


@pytest.fixture(scope="module")
def defaults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with no flags but the model config (and the test harness's ports)."""
    from tests.server.savedmodels import export_minus_batch_mean, export_slow_rows

    root = tmp_path_factory.mktemp("defaults")
    export_minus_batch_mean(root / "mean" / "1", 20_000)
    export_slow_rows(root / "counter" / "1", 20_000, count_calls=True)
    (root / "models.config").write_text(CONFIG.format(root=root))
    server = start_server([f"--model_config_file={root / 'models.config'}"], root / "server.log")
    yield server
    server.stop()


def concurrently(server: Server, model: str, values: list[float]) -> list[dict]:
    def send(x: float) -> dict:
        return ok_json(server.post(f"/v1/models/{model}:predict", {"instances": [[x]]}))

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(send, values, timeout=300))


def test_batching_is_off_by_default(defaults: Server) -> None:
    assert "Batching disabled" in defaults.log()


def test_a_batch_dependent_model_answers_each_request_alone(defaults: Server) -> None:
    answers = concurrently(defaults, "mean", [float(i) for i in range(REQUESTS)])
    wrong = [a for a in answers if a != {"predictions": [[0.0]]}]
    assert not wrong, f"{len(wrong)} of {REQUESTS} answers mixed other requests' rows: {wrong[:3]}"


def test_a_stateful_model_counts_every_request_as_its_own_call(defaults: Server) -> None:
    answers = concurrently(defaults, "counter", [1.0] * REQUESTS)
    calls = [a["predictions"][0]["calls"] for a in answers]
    assert len(set(calls)) == REQUESTS, f"{REQUESTS - len(set(calls))} requests shared a model call"
