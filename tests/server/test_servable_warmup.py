"""Warm-up replays `assets.extra/tf_serving_warmup_requests` before a version is returned, as TF
Serving does: every record `num_request_iterations_for_warmup` times, and a bad record fails the load."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.serving.errors import ServingError
from pipeline.serving.metrics import ServerMetrics
from pipeline.serving.servable import Servable, ServableOptions
from tests.support import upstream_models as um

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("warmup_templates")
    um.counter(root / "counter")
    um.half_plus_two(root / "half_plus_two")
    return root


def counter_value(servable: Servable) -> float:
    return float(servable.run(servable.predict_signature("get_counter"), {})["output"])


@pytest.mark.parametrize(("iterations", "expected"), [(1, 3.0), (2, 6.0)])
def test_each_record_is_replayed_the_asked_number_of_times(templates: Path, tmp_path: Path,
                                                             iterations: int, expected: float) -> None:
    version = shutil.copytree(templates / "counter", tmp_path / "1")
    um.write_warmup(version, [um.predict_log("incr_counter_by", delta=1.0),
                              um.predict_log("incr_counter_by", delta=2.0)])
    servable = Servable.load("counter", 1, version,
                             ServableOptions(num_request_iterations_for_warmup=iterations))
    assert counter_value(servable) == expected


def test_without_warm_up_enabled_or_without_a_file_nothing_runs(templates: Path, tmp_path: Path) -> None:
    version = shutil.copytree(templates / "counter", tmp_path / "1")
    assert counter_value(Servable.load("counter", 1, version)) == 0.0
    um.write_warmup(version, [um.predict_log("incr_counter_by", delta=5.0)])
    off = ServableOptions(enable_model_warmup=False)
    assert counter_value(Servable.load("counter", 1, version, off)) == 0.0


def test_regress_and_predict_records_are_replayed(templates: Path, tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    version = shutil.copytree(templates / "half_plus_two", tmp_path / "1")
    um.write_warmup(version, [um.regress_log("regress_x_to_y", 2.0),
                              um.predict_log("serving_default", x=1.0)])
    with caplog.at_level("INFO", logger="pipeline.serving.warmup"):
        servable = Servable.load("hpt", 1, version)
    assert "Number of warmup records read: 2." in caplog.text
    np.testing.assert_array_equal(servable.regress("regress_x_to_y", [_example(2.0)]), [3.0])


def _example(x: float) -> bytes:
    from tensorflow_serving.apis import input_pb2

    model_input = input_pb2.Input()
    model_input.example_list.examples.add().features.feature["x"].float_list.value.append(x)
    return model_input.example_list.examples[0].SerializeToString()


def test_a_record_the_model_refuses_fails_the_load_and_is_reported(templates: Path, tmp_path: Path) -> None:
    version = shutil.copytree(templates / "half_plus_two", tmp_path / "1")
    um.write_warmup(version, [um.predict_log("no_such_signature", x=1.0)])
    metrics = ServerMetrics()
    with pytest.raises(ServingError) as error:
        Servable.load("hpt", 1, version, observer=metrics)
    assert error.value.code == "INVALID_ARGUMENT"
    assert 'Serving signature name: "no_such_signature" not found' in error.value.message
    status = f"INVALID_ARGUMENT: {error.value.message}"
    assert metrics.warmup_latency._values[(str(version), status)][0][-1] == 0  # counted, not +Inf
    assert sum(metrics.warmup_latency._values[(str(version), status)][0]) == 1
    assert metrics.load_attempt_count.value(str(version), "success") == 1  # the SavedModel itself loaded


def test_a_corrupt_warm_up_file_fails_the_load(templates: Path, tmp_path: Path) -> None:
    version = shutil.copytree(templates / "half_plus_two", tmp_path / "1")
    path = um.write_warmup(version, [um.predict_log("serving_default", x=1.0)])
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(ServingError) as error:
        Servable.load("hpt", 1, version)
    assert error.value.code == "DATA_LOSS" and "Failed to read warmup data" in error.value.message


def test_example_list_with_context_records_are_replayed(templates: Path, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """The context is merged into each example, as TF Serving builds the serialized inputs."""
    from tensorflow_serving.apis import prediction_log_pb2

    log = prediction_log_pb2.PredictionLog()
    request = log.regress_log.request
    request.model_spec.signature_name = "regress_x_to_y"
    with_context = request.input.example_list_with_context
    with_context.context.features.feature["x"].float_list.value.append(2.0)
    with_context.examples.add()
    version = shutil.copytree(templates / "half_plus_two", tmp_path / "1")
    um.write_warmup(version, [log.SerializeToString()])
    with caplog.at_level("INFO", logger="pipeline.serving.warmup"):
        Servable.load("hpt", 1, version)
    assert "Number of warmup records read: 1." in caplog.text
