"""Server-side dynamic batching: concurrent calls to one signature are merged into one call.

TF Serving's `--enable_batching` (a SharedBatchScheduler in front of each session), rebuilt for a
Python server where thread hand-offs cost more than the merged model call saves:

- A `BatchScheduler` (one per server) owns `num_batch_threads` execution slots shared by every
  queue, and the FIFO of batches waiting for a slot. A `BatchQueue` (one per servable signature,
  made by `BatchScheduler.queue`) merges the tasks submitted to it.
- `BatchQueue.submit_async(inputs, done)` answers through `done(outputs, None)` or
  `done(None, error)`, exactly once, in whichever thread runs the batch (possibly the caller's,
  before `submit_async` returns). It raises `QueueFullError` (the caller answers UNAVAILABLE) at
  once, without calling `done`, when the queue already holds `max_enqueued_batches` batches
  waiting for a slot. `BatchQueue.submit(inputs)` is the blocking form: outputs, or the error raised.
- A task joins the open batch of its queue whose inputs have the same dtypes and the same shapes
  apart from dim 0 (with `pad_variable_length_inputs`: the same ranks; each batch is then padded
  to its largest dims with each tensor's first element, as upstream's `PadTensor`), if its rows
  still fit in one model call (`max_batch_size`, or `max_execution_batch_size` with
  large batch splitting); otherwise it opens a new batch. As TF Serving's BatchingSession,
  a rank-0 input, inputs of unequal dim 0, or more rows than `max_batch_size` are INVALID_ARGUMENT
  with upstream's texts (with `enable_large_batch_splitting`, a larger task runs as pieces of
  `max_execution_batch_size` rows, one after the other). Tasks with no rows or no inputs run alone.
- No dedicated batch threads: a submitting thread that finds a free slot runs the ready batch
  itself, then keeps running batches that queued meanwhile until none is left (its own task was
  answered first). With `batch_timeout_micros` 0 (the default) a batch is ready at once, so a lone
  request runs in its own thread and pays only a lock; tasks merge only while every slot is busy.
  With a timeout, a batch is ready when full or when its first task has waited that long; a timer
  thread runs batches whose time is up if no submitter does.
- A batch runs as one call: inputs concatenated along dim 0 (padded with copies of the first row
  up to the next `allowed_batch_sizes` entry, if any), outputs split back by row counts (the
  tensor work is `batch_tensors.py`). It may take the longest time left to any of its tasks
  (passed to the run function, which stops there). If the
  merged call fails, or an output does not have the batch as its dim 0, every task of the batch is
  run alone instead, so one bad request never fails its neighbours; that is logged as a warning
  and counted (`BatchListeners.on_fallback`), since it costs one model call per request.
- A task may carry a `Deadline` (see `overload.py`): when its batch's turn comes, tasks whose
  deadline passed, or whose caller was already answered, are answered DEADLINE_EXCEEDED without
  running (`BatchListeners.on_drop`), so work nobody waits for never takes a model call.

Thread-safety: every public method may be called from any thread; queue state is guarded by the
scheduler's lock, which is never held while a model or a `done` callback runs. Nothing here knows
HTTP or TensorFlow: a run function maps {input name: array} to {output name: array}.
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.serving.batch_tensors import concatenate, merge_key, split_outputs
from pipeline.serving.errors import Code, InvalidArgument, ServingError
from pipeline.serving.overload import Deadline

log = logging.getLogger(__name__)

Arrays = Mapping[str, np.ndarray]
RunFunction = Callable[..., dict[str, np.ndarray]]
"""Runs one (possibly merged) batch: `run(inputs, timeout)` with {input name: array} and the seconds
the call may take (None: no limit) -> {output name: array}."""

Done = Callable[[dict[str, np.ndarray] | None, BaseException | None], None]
"""Receives one task's answer: (outputs, None) or (None, the error its run raised)."""

BatchListener = Callable[[str, int, int, int, list[float]], None]
"""Told (queue name, requests merged, rows before padding, rows after padding, seconds each request
waited in the queue) after each batched call."""


@dataclass(frozen=True)
class BatchListeners:
    """What the scheduler reports, e.g. to metrics; each takes the queue name (the model name)."""

    on_batch: BatchListener | None = None
    on_fallback: Callable[[str], None] | None = None
    """A merged call failed (or gave outputs without the batch dim): its tasks ran one by one."""
    on_drop: Callable[[str], None] | None = None
    """A task was dropped unrun because its deadline passed."""

QUEUE_FULL_MESSAGE = "The batch scheduling queue to which this task was submitted is full"


class QueueFullError(Exception):
    """The queue holds `max_enqueued_batches` batches already; answer UNAVAILABLE (HTTP 503)."""

    def __init__(self) -> None:
        super().__init__(QUEUE_FULL_MESSAGE)


@dataclass(frozen=True)
class BatchingOptions:
    """TF Serving's `BatchingParameters` with its defaults (`num_batch_threads`: one per CPU)."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False
    enable_large_batch_splitting: bool = False
    max_execution_batch_size: int = 0
    """With `enable_large_batch_splitting`: rows per piece of a larger task (0: `max_batch_size`)."""
    thread_pool_name: str = "batch_threads"
    """Only a metric label here (`queuing_latency{thread_pool_name}`): one pool serves every model."""

    @property
    def execution_batch_size(self) -> int:
        """Most rows in one model call: `max_execution_batch_size` with large batch splitting (tasks
        between it and `max_batch_size` are split), else `max_batch_size`."""
        if self.enable_large_batch_splitting and self.max_execution_batch_size:
            return self.max_execution_batch_size
        return self.max_batch_size

    def validate(self) -> None:
        """Raise ValueError (TF Serving's texts where it has one) for options it would refuse."""
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be positive; was {self.max_batch_size}")
        if self.batch_timeout_micros < 0:
            raise ValueError(f"batch_timeout_micros must be non-negative; was {self.batch_timeout_micros}")
        if self.max_enqueued_batches < 1:
            raise ValueError(f"max_enqueued_batches must be positive; was {self.max_enqueued_batches}")
        if self.num_batch_threads < 1:
            raise ValueError(f"num_batch_threads must be positive; was {self.num_batch_threads}")
        if self.max_execution_batch_size < 0 or self.max_execution_batch_size > self.max_batch_size:
            raise ValueError("max_execution_batch_size must be positive and at most max_batch_size; "
                             f"was {self.max_execution_batch_size}")
        sizes = self.allowed_batch_sizes
        if sizes:
            if sizes[0] < 1 or any(b <= a for a, b in zip(sizes, sizes[1:], strict=False)):
                raise ValueError("allowed_batch_sizes entries must be monotonically increasing")
            if sizes[-1] != self.execution_batch_size:
                raise ValueError("final entry in allowed_batch_sizes must equal max_batch_size; "
                                 f"last entry was {sizes[-1]}, max_batch_size is {self.execution_batch_size}")


class _Task:
    __slots__ = ("inputs", "rows", "done", "deadline", "queued_at")

    def __init__(self, inputs: Arrays, rows: int, done: Done, deadline: Deadline | None) -> None:
        self.inputs = inputs
        self.rows = rows
        self.done = done
        self.deadline = deadline
        self.queued_at = time.monotonic()


class _Batch:
    __slots__ = ("queue", "key", "tasks", "rows", "deadline", "full")

    def __init__(self, queue: BatchQueue, key: tuple, deadline: float) -> None:
        self.queue = queue
        self.key = key
        self.tasks: list[_Task] = []
        self.rows = 0
        self.deadline = deadline
        self.full = False


class BatchScheduler:
    """The execution slots and waiting batches shared by all queues of one server."""

    def __init__(self, options: BatchingOptions, listeners: BatchListeners | None = None) -> None:
        options.validate()
        self.options = options
        self.listeners = listeners or BatchListeners()
        self._lock = threading.Lock()
        self._waiting: list[_Batch] = []  # batches not yet running, oldest first
        self._running = 0                  # slots in use
        self._timeout = options.batch_timeout_micros / 1e6
        self._timer_wakeup = threading.Condition(self._lock)
        if self._timeout:
            threading.Thread(target=self._timer_loop, name="batch-timer", daemon=True).start()

    @property
    def running_calls(self) -> int:
        """Model calls running now (slots in use), for a metrics gauge."""
        return self._running

    @property
    def queued_tasks(self) -> int:
        """Tasks waiting in a batch that has not started, for a metrics gauge."""
        with self._lock:
            return sum(len(batch.tasks) for batch in self._waiting)

    def queue(self, name: str, run: RunFunction) -> BatchQueue:
        """A queue merging the calls to `run` (one per servable signature); `name` labels metrics."""
        return BatchQueue(self, name, run)

    def _take_ready_locked(self) -> _Batch | None:
        """Remove and return the oldest ready batch (lock held), or None."""
        now = time.monotonic() if self._timeout else 0.0
        for index, batch in enumerate(self._waiting):
            if batch.full or not self._timeout or now >= batch.deadline:
                del self._waiting[index]
                queue = batch.queue
                queue._waiting -= 1
                if queue._open.get(batch.key) is batch:
                    del queue._open[batch.key]
                return batch
        return None

    def _drain(self, batch: _Batch | None) -> None:
        """Holding a slot: run `batch` (if any), then every batch that is ready by then; free the slot."""
        while True:
            if batch is not None:
                try:
                    batch.queue._execute(batch)
                except BaseException:
                    with self._lock:
                        self._release_slot_locked()
                    raise
            with self._lock:
                batch = self._take_ready_locked()
                if batch is None:
                    self._release_slot_locked()
                    return

    def _idle_locked(self) -> bool:
        """Take a slot for a task that may run alone at once: no timeout, no padding, a slot free."""
        options = self.options
        if self._timeout or options.allowed_batch_sizes or self._running >= options.num_batch_threads:
            return False
        self._running += 1
        return True

    def _release_slot_locked(self) -> None:
        self._running -= 1
        if self._waiting:
            self._timer_wakeup.notify()  # batches whose timeout is yet to come need the timer

    def _timer_loop(self) -> None:
        """Runs batches whose timeout passed while no submitter or runner was there to start them."""
        while True:
            with self._lock:
                batch = None
                while batch is None:
                    if self._running < self.options.num_batch_threads:
                        batch = self._take_ready_locked()
                    if batch is None:  # sleep until the next deadline, or until a slot frees
                        wait = None
                        if self._waiting and self._running < self.options.num_batch_threads:
                            wait = max(0.0, min(b.deadline for b in self._waiting) - time.monotonic())
                        self._timer_wakeup.wait(wait)
                self._running += 1
            self._drain(batch)


class BatchQueue:
    """Merges the tasks for one run function; see the module docstring for the contract."""

    def __init__(self, scheduler: BatchScheduler, name: str, run: RunFunction) -> None:
        self.scheduler = scheduler
        self.name = name
        self._run = run
        self._open: dict[tuple, _Batch] = {}  # per merge key, the batch still taking tasks
        self._waiting = 0                       # this queue's batches not yet running

    def submit(self, inputs: Arrays, deadline: Deadline | None = None) -> dict[str, np.ndarray]:
        """Run `inputs` as part of a batch and return its own outputs (blocks until they exist)."""
        answered = threading.Event()
        answer: list = []

        def done(outputs: dict[str, np.ndarray] | None, error: BaseException | None) -> None:
            answer.extend((outputs, error))
            answered.set()

        self.submit_async(inputs, done, deadline)
        answered.wait()
        if answer[1] is not None:
            raise answer[1]
        return answer[0]

    def submit_async(self, inputs: Arrays, done: Done, deadline: Deadline | None = None) -> None:
        """Queue `inputs`; `done` gets the answer later or before this returns. QueueFullError if full.
        If `deadline` has expired by the time the task's batch runs, `done` gets its error instead."""
        scheduler = self.scheduler
        options = scheduler.options
        key, rows = merge_key(inputs, options.pad_variable_length_inputs)
        if rows > options.max_batch_size:
            raise InvalidArgument(f"Task size {rows} is larger than maximum input "
                               f"batch size {options.max_batch_size}")
        if rows > options.execution_batch_size:  # only with enable_large_batch_splitting
            _answer(done, *self._run_split(inputs, rows, deadline))
            return
        if key is None:
            _answer(done, *self._run_alone(inputs, deadline))
            return
        with scheduler._lock:
            # Without a timeout nothing waits while a slot is free: then run alone, right now.
            alone = scheduler._idle_locked()
            ready = None if alone else self._enqueue_locked(_Task(inputs, rows, done, deadline), key)
        if alone:
            try:
                _answer(done, *self._run_alone(inputs, deadline))
                self._count(1, rows, rows, [0.0])
            except BaseException:
                with scheduler._lock:
                    scheduler._release_slot_locked()
                raise
            scheduler._drain(None)
        elif ready is not None:
            scheduler._drain(ready)

    def _enqueue_locked(self, task: _Task, key: tuple) -> _Batch | None:
        """Add the task to a batch (lock held); return a batch to run now if a slot was free."""
        scheduler = self.scheduler
        options = scheduler.options
        rows = task.rows
        batch = self._open.get(key)
        if batch is None or batch.rows + rows > options.execution_batch_size:
            if self._waiting >= options.max_enqueued_batches:
                raise QueueFullError
            if batch is not None:
                batch.full = True
            batch = _Batch(self, key, time.monotonic() + scheduler._timeout)
            self._open[key] = batch
            self._waiting += 1
            scheduler._waiting.append(batch)
            if scheduler._timeout:
                scheduler._timer_wakeup.notify()
        batch.tasks.append(task)
        batch.rows += rows
        if batch.rows >= options.execution_batch_size:
            batch.full = True
        ready = None
        if scheduler._running < options.num_batch_threads:
            ready = scheduler._take_ready_locked()
            if ready is not None:
                scheduler._running += 1
        return ready

    def _execute(self, batch: _Batch) -> None:
        """Run a batch taken from the queue and answer each of its tasks (expired ones unrun)."""
        started = time.monotonic()
        tasks = self._live_tasks(batch.tasks)
        if not tasks:
            return
        rows = sum(task.rows for task in tasks)
        sizes = self.scheduler.options.allowed_batch_sizes
        padded = sizes[bisect.bisect_left(sizes, rows)] if sizes else rows
        timeout = _batch_timeout(tasks)
        answers: list[tuple[dict[str, np.ndarray] | None, BaseException | None]] | None = None
        if len(tasks) == 1 and padded == rows:
            answers = [self._run_alone(tasks[0].inputs, tasks[0].deadline)]
        else:
            try:
                merged = concatenate([task.inputs for task in tasks], padded - rows,
                                      self.scheduler.options.pad_variable_length_inputs)
                parts = split_outputs(self._run(merged, timeout), [task.rows for task in tasks], padded)
                problem = None if parts is not None else "an output does not have the batch as dim 0"
            except ServingError as error:
                if error.code is Code.DEADLINE_EXCEEDED:  # the batch's time is up: so is every task's
                    parts, problem, answers = None, None, [(None, error)] * len(tasks)
                else:
                    parts, problem = None, f"{error.code}: {error.message}"
            except Exception as error:  # noqa: BLE001 - retried task by task below, each gets its own answer
                parts, problem = None, f"{type(error).__name__}: {error}"
            if parts is not None:
                answers = [(part, None) for part in parts]
            elif answers is None:
                log.warning("Merged call of %d requests (%d rows) to %s failed, running them one by one: %s",
                            len(tasks), rows, self.name, problem)
                self._tell(self.scheduler.listeners.on_fallback, self.name)
                answers = [self._run_alone(task.inputs, task.deadline) for task in tasks]
        for task, (outputs, error) in zip(tasks, answers, strict=True):
            _answer(task.done, outputs, error)
        self._count(len(tasks), rows, padded, [started - task.queued_at for task in tasks])

    def _live_tasks(self, tasks: list[_Task]) -> list[_Task]:
        """The tasks still wanted; the others are answered with their deadline's error now."""
        if all(task.deadline is None or not task.deadline.expired() for task in tasks):
            return tasks
        live = []
        for task in tasks:
            if task.deadline is not None and task.deadline.expired():
                _answer(task.done, None, task.deadline.error())
                self._tell(self.scheduler.listeners.on_drop, self.name)
            else:
                live.append(task)
        return live

    def _count(self, tasks: int, rows: int, padded: int, waits: list[float]) -> None:
        self._tell(self.scheduler.listeners.on_batch, self.name, tasks, rows, padded, waits)

    @staticmethod
    def _tell(listener: Callable[..., None] | None, *args: Any) -> None:
        if listener is not None:
            try:
                listener(*args)
            except Exception:  # noqa: BLE001 - metrics must not break serving
                log.exception("Batch listener failed")

    def _run_alone(self, inputs: Arrays, deadline: Deadline | None = None
                   ) -> tuple[dict[str, np.ndarray] | None, BaseException | None]:
        try:
            return self._run(inputs, _remaining(deadline)), None
        except Exception as error:  # noqa: BLE001 - handed to the task's `done`
            return None, error

    def _run_split(self, inputs: Arrays, rows: int, deadline: Deadline | None
                   ) -> tuple[dict[str, np.ndarray] | None, BaseException | None]:
        """A task larger than one model call (`enable_large_batch_splitting`): its pieces of
        `execution_batch_size` rows run one after the other; their outputs are joined along dim 0."""
        size = self.scheduler.options.execution_batch_size
        pieces = []
        for start in range(0, rows, size):
            piece = {name: array[start:start + size] for name, array in inputs.items()}
            outputs, error = self._run_alone(piece, deadline)
            if error is not None:
                return None, error
            pieces.append(outputs)
        try:
            return {name: np.concatenate([np.asarray(piece[name]) for piece in pieces])
                    for name in pieces[0]}, None
        except ValueError as error:
            return None, InvalidArgument(f"Outputs of the split task do not join: {error}")


def _remaining(deadline: Deadline | None) -> float | None:
    """Seconds `deadline` leaves for a model call (None: no limit)."""
    return deadline.remaining() if deadline is not None else None


def _batch_timeout(tasks: list[_Task]) -> float | None:
    """The time a merged call may take: the largest time left to any of its tasks (as TF Serving's
    BatchingSession); None if one of them has no limit."""
    times = [_remaining(task.deadline) for task in tasks]
    return None if any(t is None for t in times) else max(times)  # type: ignore[type-var]


def _answer(done: Done, outputs: dict[str, np.ndarray] | None, error: BaseException | None) -> None:
    try:
        done(outputs, error)
    except Exception:  # noqa: BLE001 - a callback's bug must not stop the batch's other answers
        log.exception("Batch answer callback failed")
