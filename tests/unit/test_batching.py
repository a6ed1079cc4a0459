"""The batch scheduler (`pipeline.serving.batching`) with fake run functions: merging, splitting,
padding, fallbacks, the queue limit, timeouts; and `--batching_parameters_file` parsing.

Every wait is bounded (WAIT seconds) and every test submits a fixed, small number of tasks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from pipeline.serving.batching import (
    QUEUE_FULL_MESSAGE,
    BatchingOptions,
    BatchListeners,
    BatchScheduler,
    QueueFullError,
)
from pipeline.serving.errors import ServingError
from pipeline.serving.flags import batching_options, parse_flags
from pipeline.serving.model_config import ConfigError, parse_batching_parameters_text
from pipeline.serving.overload import Deadline
from tests.support.net import wait_for

WAIT = 60.0  # seconds: bound of every wait below (threads on a busy 2-core machine)


class FakeModel:
    """y = 2x + 1 per row, recording each call's row count; `gate` (if set) blocks the first call."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: list[int] = []
        self.threads: list[int] = []
        self.gate = gate
        self.entered = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, inputs: dict[str, np.ndarray], timeout: float | None = None) -> dict[str, np.ndarray]:
        with self._lock:
            first = not self.calls
            self.calls.append(len(inputs["x"]) if np.ndim(inputs["x"]) else 0)
            self.threads.append(threading.get_ident())
        if first and self.gate is not None:
            self.entered.set()
            assert self.gate.wait(WAIT)
        return {"y": inputs["x"] * 2 + 1}


def rows(*values: float, width: int = 2) -> dict[str, np.ndarray]:
    return {"x": np.array([[v] * width for v in values], np.float32)}


class Answers:
    """Collects `done` callbacks by task id."""

    def __init__(self) -> None:
        self.results: dict[int, tuple] = {}
        self.all_in = threading.Event()
        self.expected = 0
        self._lock = threading.Lock()

    def done_for(self, task_id: int) -> Callable:
        def done(outputs, error) -> None:
            with self._lock:
                assert task_id not in self.results, "answered twice"
                self.results[task_id] = (outputs, error)
                if len(self.results) == self.expected:
                    self.all_in.set()
        return done

    def wait(self, count: int) -> None:
        with self._lock:
            self.expected = count
            if len(self.results) == count:
                self.all_in.set()
        assert self.all_in.wait(WAIT), f"only {len(self.results)} of {count} answers"


def occupy(queue, model: FakeModel) -> threading.Thread:
    """Start a one-row task in a thread and wait until the model runs it (blocked on its gate)."""
    thread = threading.Thread(target=queue.submit, args=(rows(100.0),), daemon=True)
    thread.start()
    assert model.entered.wait(WAIT)
    return thread


def test_a_lone_task_runs_at_once_in_the_callers_thread() -> None:
    model = FakeModel()
    seen: list[tuple] = []
    listeners = BatchListeners(on_batch=lambda *a: seen.append(a))
    queue = BatchScheduler(BatchingOptions(), listeners).queue("m", model)
    outputs = queue.submit(rows(1.0, 2.0))
    np.testing.assert_array_equal(outputs["y"], [[3, 3], [5, 5]])
    assert model.calls == [2] and model.threads == [threading.get_ident()]
    assert seen == [("m", 1, 2, 2, [0.0])]


def test_tasks_queued_while_the_slot_is_busy_run_as_one_call_and_get_their_own_rows() -> None:
    gate = threading.Event()
    model = FakeModel(gate)
    batches: list[tuple] = []
    queue = BatchScheduler(BatchingOptions(num_batch_threads=1),
                           BatchListeners(on_batch=lambda *a: batches.append(a))).queue("m", model)
    blocker = occupy(queue, model)
    answers = Answers()
    counts = [1, 3, 2, 1, 4]
    for task_id, count in enumerate(counts):
        values = [task_id * 10 + i for i in range(count)]
        queue.submit_async(rows(*values), answers.done_for(task_id))
    assert not answers.results, "nothing may run while the only slot is busy"
    gate.set()
    answers.wait(len(counts))
    blocker.join(WAIT)
    assert model.calls == [1, sum(counts)]
    name, requests, merged_rows, padded_rows, waits = batches[-1]
    assert (name, requests, merged_rows, padded_rows) == ("m", len(counts), sum(counts), sum(counts))
    assert len(waits) == len(counts) and all(wait >= 0 for wait in waits)
    for task_id, count in enumerate(counts):
        outputs, error = answers.results[task_id]
        assert error is None
        expected = [[2 * (task_id * 10 + i) + 1] * 2 for i in range(count)]
        np.testing.assert_array_equal(outputs["y"], expected)


def test_batches_hold_at_most_max_batch_size_rows_and_bigger_tasks_are_refused() -> None:
    """As TF Serving's BatchingSession: `Task size N is larger than maximum input batch size M`."""
    gate = threading.Event()
    model = FakeModel(gate)
    queue = BatchScheduler(BatchingOptions(max_batch_size=4, num_batch_threads=1)).queue("m", model)
    blocker = occupy(queue, model)
    answers = Answers()
    for task_id, count in enumerate([3, 2, 2, 1]):
        queue.submit_async(rows(*range(count)), answers.done_for(task_id))
    with pytest.raises(ServingError) as refused:
        queue.submit(rows(*range(6)))
    assert (refused.value.code, refused.value.message) == (
        "INVALID_ARGUMENT", "Task size 6 is larger than maximum input batch size 4")
    gate.set()
    answers.wait(4)
    blocker.join(WAIT)
    assert model.calls[0] == 1
    assert model.calls[1:] == [3, 4, 1]  # only the newest batch takes tasks: [3], [2, 2], [1]


def test_with_large_batch_splitting_a_big_task_runs_in_pieces() -> None:
    model = FakeModel()
    options = BatchingOptions(max_batch_size=8, max_execution_batch_size=3, enable_large_batch_splitting=True,
                              num_batch_threads=1)
    queue = BatchScheduler(options).queue("m", model)
    big = queue.submit(rows(*range(7)))
    np.testing.assert_array_equal(big["y"][:, 0], np.arange(7) * 2 + 1)
    assert model.calls == [3, 3, 1]
    with pytest.raises(ServingError, match="Task size 9 is larger than maximum input batch size 8"):
        queue.submit(rows(*range(9)))


def test_tasks_whose_shapes_differ_past_dim_0_run_in_separate_batches() -> None:
    gate = threading.Event()
    model = FakeModel(gate)
    queue = BatchScheduler(BatchingOptions(num_batch_threads=1)).queue("m", model)
    blocker = occupy(queue, model)
    answers = Answers()
    queue.submit_async(rows(1.0, width=2), answers.done_for(0))
    queue.submit_async(rows(2.0, width=3), answers.done_for(1))
    queue.submit_async(rows(3.0, width=2), answers.done_for(2))
    gate.set()
    answers.wait(3)
    blocker.join(WAIT)
    assert sorted(model.calls[1:]) == [1, 2]
    np.testing.assert_array_equal(answers.results[1][0]["y"], [[5, 5, 5]])
    np.testing.assert_array_equal(answers.results[2][0]["y"], [[7, 7]])


def test_inputs_batching_cannot_split_are_refused_with_tf_servings_words() -> None:
    queue = BatchScheduler(BatchingOptions(num_batch_threads=1)).queue("m", FakeModel())
    with pytest.raises(ServingError, match=r"Batching Run\(\) input tensors must have at least one"):
        queue.submit({"x": np.float32(4.0)})  # rank 0: nothing to split along
    with pytest.raises(ServingError, match="must have equal 0th-dimension size"):
        queue.submit({"a": np.zeros((2, 1), np.float32), "b": np.zeros((3, 1), np.float32)})


def test_pad_variable_length_inputs_merges_widths_padding_with_the_first_element() -> None:
    gate = threading.Event()
    seen: list[np.ndarray] = []

    def model(inputs: dict[str, np.ndarray], timeout: float | None = None) -> dict[str, np.ndarray]:
        seen.append(inputs["x"])
        if len(seen) == 1:
            assert gate.wait(WAIT)
        return {"y": inputs["x"] * 2}

    options = BatchingOptions(num_batch_threads=1, pad_variable_length_inputs=True)
    queue = BatchScheduler(options).queue("m", model)
    blocker = threading.Thread(target=queue.submit, args=({"x": np.ones((1, 1), np.float32)},))
    blocker.start()
    wait_for(lambda: len(seen) == 1, WAIT)
    answers = Answers()
    queue.submit_async({"x": np.array([[5.0, 6.0]], np.float32)}, answers.done_for(0))
    queue.submit_async({"x": np.array([[7.0, 8.0, 9.0]], np.float32)}, answers.done_for(1))
    gate.set()
    answers.wait(2)
    blocker.join(WAIT)
    np.testing.assert_array_equal(seen[1], [[5, 6, 5], [7, 8, 9]])  # one call, padded with 5
    np.testing.assert_array_equal(answers.results[0][0]["y"], [[10, 12, 10]])


def test_a_failing_merged_call_is_retried_task_by_task(caplog: pytest.LogCaptureFixture) -> None:
    gate = threading.Event()
    fallbacks: list[str] = []
    calls: list[int] = []

    def picky(inputs: dict[str, np.ndarray], timeout: float | None = None) -> dict[str, np.ndarray]:
        calls.append(len(inputs["x"]))
        if len(calls) == 1:
            assert gate.wait(WAIT)
        if (inputs["x"] < 0).any():
            raise ValueError("negative input")
        return {"y": inputs["x"] + 1}

    queue = BatchScheduler(BatchingOptions(num_batch_threads=1),
                           BatchListeners(on_fallback=fallbacks.append)).queue("m", picky)
    blocker = threading.Thread(target=queue.submit, args=(rows(0.0),), daemon=True)
    blocker.start()
    wait_for(lambda: calls, WAIT)  # the blocker's call runs now, held at the gate
    answers = Answers()
    for task_id, value in enumerate([1.0, -1.0, 2.0]):
        queue.submit_async(rows(value), answers.done_for(task_id))
    gate.set()
    answers.wait(3)
    blocker.join(WAIT)
    assert calls == [1, 3, 1, 1, 1]  # the merged call failed, then each alone
    assert answers.results[0][0]["y"][0, 0] == 2.0
    assert isinstance(answers.results[1][1], ValueError)
    assert answers.results[2][0]["y"][0, 0] == 3.0
    # Not hidden: the failed merge is a warning naming the error, and counted for metrics.
    assert fallbacks == ["m"]
    assert any(r.levelname == "WARNING" and "negative input" in r.getMessage() for r in caplog.records)


def test_tasks_whose_deadline_passed_while_queued_are_answered_without_running() -> None:
    model = FakeModel(gate=threading.Event())
    dropped: list[str] = []
    queue = BatchScheduler(BatchingOptions(num_batch_threads=1),
                           BatchListeners(on_drop=dropped.append)).queue("m", model)
    blocker = occupy(queue, model)
    answers = Answers()
    gone, live = Deadline(60.0), Deadline(60.0)
    queue.submit_async(rows(1.0), answers.done_for(0), gone)
    queue.submit_async(rows(2.0), answers.done_for(1), live)
    queue.submit_async(rows(3.0), answers.done_for(2), Deadline(0.0))
    gone.abandon()  # its caller was answered (e.g. 504) while it waited
    model.gate.set()
    answers.wait(3)
    blocker.join(WAIT)
    assert model.calls == [1, 1]  # the blocker, then only the live task: no work for the other two
    assert answers.results[1][0]["y"][0, 0] == 5.0
    for task_id in (0, 2):
        outputs, error = answers.results[task_id]
        assert outputs is None and error.code == "DEADLINE_EXCEEDED"
    assert dropped == ["m", "m"]


def test_outputs_without_the_batch_as_dim_0_fall_back_to_one_call_per_task() -> None:
    gate = threading.Event()
    calls: list[int] = []

    def summing(inputs: dict[str, np.ndarray], timeout: float | None = None) -> dict[str, np.ndarray]:
        calls.append(len(inputs["x"]))
        if len(calls) == 1:
            assert gate.wait(WAIT)
        return {"total": np.float32(inputs["x"].sum())}

    queue = BatchScheduler(BatchingOptions(num_batch_threads=1)).queue("m", summing)
    blocker = threading.Thread(target=queue.submit, args=(rows(0.0),), daemon=True)
    blocker.start()
    wait_for(lambda: calls, WAIT)  # the blocker's call runs now, held at the gate
    answers = Answers()
    queue.submit_async(rows(1.0), answers.done_for(0))
    queue.submit_async(rows(5.0), answers.done_for(1))
    gate.set()
    answers.wait(2)
    blocker.join(WAIT)
    assert float(answers.results[0][0]["total"]) == 2.0
    assert float(answers.results[1][0]["total"]) == 10.0


def test_allowed_batch_sizes_pad_with_the_first_row_and_cut_the_padding_off() -> None:
    seen: list[np.ndarray] = []

    def recording(inputs: dict[str, np.ndarray], timeout: float | None = None) -> dict[str, np.ndarray]:
        seen.append(inputs["x"].copy())
        return {"y": inputs["x"] * 2}

    queue = BatchScheduler(BatchingOptions(max_batch_size=8, allowed_batch_sizes=(2, 4, 8))).queue(
        "m", recording)
    outputs = queue.submit(rows(1.0, 2.0, 3.0))
    np.testing.assert_array_equal(seen[0][:, 0], [1, 2, 3, 1])
    np.testing.assert_array_equal(outputs["y"][:, 0], [2, 4, 6])


def test_a_full_queue_refuses_at_once_and_the_queued_task_still_runs() -> None:
    gate = threading.Event()
    model = FakeModel(gate)
    options = BatchingOptions(max_batch_size=1, max_enqueued_batches=1, num_batch_threads=1)
    queue = BatchScheduler(options).queue("m", model)
    blocker = occupy(queue, model)
    answers = Answers()
    queue.submit_async(rows(1.0), answers.done_for(0))  # waits: the one allowed batch
    with pytest.raises(QueueFullError, match=QUEUE_FULL_MESSAGE):  # raised while the gate is still
        queue.submit_async(rows(2.0), answers.done_for(1))       # closed: it never waited for room
    assert not gate.is_set() and model.calls == [1]
    gate.set()
    answers.wait(1)
    blocker.join(WAIT)
    assert 1 not in answers.results


def test_with_a_timeout_a_batch_waits_to_fill_then_the_timer_runs_it() -> None:
    model = FakeModel()
    queue = BatchScheduler(BatchingOptions(batch_timeout_micros=200_000)).queue("m", model)
    answers = Answers()
    started = time.monotonic()
    queue.submit_async(rows(1.0), answers.done_for(0))
    queue.submit_async(rows(2.0, 3.0), answers.done_for(1))
    assert not answers.results
    answers.wait(2)
    assert time.monotonic() - started >= 0.15
    assert model.calls == [3]
    np.testing.assert_array_equal(answers.results[1][0]["y"][:, 0], [5, 7])


def test_with_a_timeout_a_full_batch_runs_without_waiting() -> None:
    """The batch timer is ten minutes, the wait for the answer one: a full batch cannot have waited
    for the timer."""
    model = FakeModel()
    queue = BatchScheduler(BatchingOptions(max_batch_size=2, batch_timeout_micros=600_000_000)).queue(
        "m", model)
    answered, result = threading.Event(), {}

    def submit() -> None:
        result["outputs"] = queue.submit(rows(1.0, 2.0))
        answered.set()

    threading.Thread(target=submit, daemon=True).start()
    assert answered.wait(WAIT), "the full batch waited for the timer"
    np.testing.assert_array_equal(result["outputs"]["y"][:, 0], [3, 5])


def test_many_threads_get_exactly_their_own_answers() -> None:
    model = FakeModel()
    queue = BatchScheduler(BatchingOptions(max_batch_size=16, num_batch_threads=2)).queue("m", model)
    rng = np.random.default_rng(7)
    cases = [rng.integers(0, 1000, size=(int(rng.integers(1, 5)), 3)).astype(np.float32)
             for _ in range(300)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(queue.submit, {"x": case}) for case in cases]
        results = [future.result(timeout=WAIT) for future in futures]
    for case, result in zip(cases, results, strict=True):
        np.testing.assert_array_equal(result["y"], case * 2 + 1)
    assert sum(model.calls) == sum(len(case) for case in cases)


@pytest.mark.parametrize("options, message", [
    (BatchingOptions(max_batch_size=0), "max_batch_size must be positive"),
    (BatchingOptions(num_batch_threads=0), "num_batch_threads must be positive"),
    (BatchingOptions(max_enqueued_batches=0), "max_enqueued_batches must be positive"),
    (BatchingOptions(batch_timeout_micros=-1), "batch_timeout_micros must be non-negative"),
    (BatchingOptions(max_batch_size=8, allowed_batch_sizes=(4, 2, 8)), "monotonically increasing"),
    (BatchingOptions(max_batch_size=8, allowed_batch_sizes=(2, 4)), "must equal max_batch_size"),
])
def test_invalid_options_are_refused(options: BatchingOptions, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BatchScheduler(options)


def test_batching_parameters_file_in_tf_servings_text_format() -> None:
    options = parse_batching_parameters_text("""
        max_batch_size { value: 128 }
        batch_timeout_micros { value: 0 }
        max_enqueued_batches { value: 1000000 }
        num_batch_threads { value: 8 }
        allowed_batch_sizes: 32
        allowed_batch_sizes: 128
        pad_variable_length_inputs: true
        thread_pool_name { value: "batch_threads" }
    """)
    assert options == BatchingOptions(max_batch_size=128, batch_timeout_micros=0,
                                      max_enqueued_batches=1_000_000, num_batch_threads=8,
                                      allowed_batch_sizes=(32, 128), pad_variable_length_inputs=True)
    assert parse_batching_parameters_text("") == BatchingOptions()


@pytest.mark.parametrize("text, message", [
    ("max_batch_size: 3", "Invalid batching parameters"),
    ("no_such_field { value: 1 }", "no field named"),
    ("max_batch_size { value: 4 } allowed_batch_sizes: 2", "must equal max_batch_size"),
])
def test_bad_batching_parameters_files_are_config_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_batching_parameters_text(text)


def test_batching_is_off_by_default_as_in_tf_serving_and_on_with_enable_batching(tmp_path) -> None:
    assert batching_options(parse_flags([])) is None
    assert batching_options(parse_flags(["--enable_batching"])) == BatchingOptions(
        thread_pool_name="model_server_batch_threads")  # tensorflow_model_server names its pool so
    assert batching_options(parse_flags(["--enable_batching=true"])).max_batch_size == 1000
    config = tmp_path / "batching.config"
    config.write_text("max_batch_size { value: 8 }")
    assert batching_options(parse_flags([f"--batching_parameters_file={config}"])) is None
    assert batching_options(parse_flags(["--enable_batching",
                                         f"--batching_parameters_file={config}"])).max_batch_size == 8
