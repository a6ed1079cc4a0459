"""The one request path of the server, for every transport: `DataPlane` (KServe's shape).

A front end (REST in `rest/app.py`, gRPC in `grpc/services.py`) is a codec: it parses its wire
request into a call object, hands it to the data plane, and formats what comes back. Everything
between is here, once:

- admission (`Admission`: past `--max_pending_requests` a request is refused UNAVAILABLE at once,
  counted as dropped `overloaded`);
- the request's `Deadline` (from `--rest_api_timeout_in_ms` or the gRPC client's deadline): it
  travels into the worker and the batch queue; work whose deadline passed before it started is
  dropped unrun (counted `deadline_exceeded`); the awaiting caller gets DEADLINE_EXCEEDED on the
  loop `backstop` seconds after the deadline if nothing answered before (`workers.Expiry`: one
  loop timer for all the loop's requests, not one per request);
- cancellation: a client that goes away (`Ticket.cancel`, or the awaiting task cancelled) frees its
  admission slot at once and abandons its work (never started, or its answer discarded);
- the hand-off to a worker thread of the front end's `Lane` (`workers.WorkerPool`: one queue put
  per request) and back to its event loop (`workers.Mailbox`: answers given while the loop is busy,
  e.g. a batch's, reach it in one wake-up; a batch may answer from the worker that ran it);
- the servable lease (a version unloaded meanwhile is closed only after the request let go);
- batching (`Servable.run_async` joins the signature's batch queue);
- the per-request metrics (`Lane.record`, runtime and example counts) and where an OK request's
  time went (`ServerMetrics.record_stages`): its wait for a worker after admission, the codec's
  parse (`parse(trace)` and `PredictCall.inputs`: wire request to arrays) and write
  (`PredictCall.response` / `ExamplesCall.response`: arrays to the wire answer), each timed here
  around the codec's step, labelled with the `API` the codec names (its `request_latency` label);
- request logging (each model's `logging_config`, `request_logs.py`): the data plane draws the
  sample, times the request and writes the record with its status; the codec only says what its
  request and answer look like as `PredictionLog` messages (a `RequestTrace` it fills as it runs).

Errors are `errors.ServingError` subclasses; each front end maps `Code` to its wire status once.
The public request API of the serving core for front ends is this module and `errors`
(the import-graph rule in `tests/support/import_graph.py`).

Thread-safety: a `DataPlane` and its `Lane`s are shared by every request; `submit` runs on a
front end's event loop, call objects' methods run in worker threads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from pipeline.serving.errors import Cancelled, Code, DeadlineExceeded, ServingError, Unavailable
from pipeline.serving.log_files import Api as LogApi
from pipeline.serving.log_files import Transport
from pipeline.serving.manager import ServableManager
from pipeline.serving.metrics import ServerMetrics
from pipeline.serving.overload import Admission, Deadline
from pipeline.serving.servable import CLASSIFY_METHOD, REGRESS_METHOD, Servable, Signature
from pipeline.serving.workers import Expiry, Mailbox, WorkerPool

__all__ = ["CLASSIFY_METHOD", "REGRESS_METHOD", "Code", "DataPlane", "Deadline", "ExamplesCall", "Lane",
           "PredictCall", "RequestTrace", "Servable", "Signature", "Target", "Ticket"]


@dataclass(frozen=True, slots=True)
class Target:
    """Which servable a request names: a model, and a version or a label (neither: the latest)."""

    model_name: str
    version: int | None = None
    label: str | None = None


class PredictCall(Protocol):
    """A codec's predict, parsed (in a worker) from its wire request."""

    target: Target
    signature_name: str

    def inputs(self, signature: Signature) -> Mapping[str, np.ndarray]:
        """The input tensors for the signature the request names (errors: InvalidArgument, ...)."""

    def response(self, version: int, outputs: Mapping[str, np.ndarray]) -> Any:
        """The wire answer for the outputs version `version` computed."""


class ExamplesCall(Protocol):
    """A codec's classify, regress or multi-inference, parsed (in a worker): runs on the servable."""

    target: Target
    runtime_api: str   # "Classify", "Regress": the runtime metric's label; "" records none
    example_count: int

    def run(self, servable: Servable, deadline: Deadline) -> Any:
        """What the servable's classify/regress computed (bounded by `deadline`), in the codec's
        own shape, for `response`."""

    def response(self, version: int, result: Any) -> Any:
        """The wire answer for what `run` returned, computed by version `version`."""


class RequestTrace(Protocol):
    """A sampled request as its request log records it, filled by the codec as the request runs
    (the data plane sets `version` once the servable is known)."""

    api: str                # "predict", "classify", "regress", "multi_inference"
    label: str | None
    version: int | None
    signature: str

    def request(self) -> Any:
        """The request as a `PredictionLog` holds it (a gRPC request message)."""

    def response(self) -> Any:
        """The answer as a `PredictionLog` holds it; None if there is none."""


Parse = Callable[["RequestTrace | None"], Any]
"""A codec's parse of its wire request (run in a worker), given the request's trace if sampled."""
Watch = Callable[["Ticket"], None]
"""Lets a codec cancel a request when its client goes away."""


class DataPlane:
    """The serving core's request side: lookups, admission, metrics; front ends get a `Lane` each."""

    def __init__(self, manager: ServableManager, metrics: ServerMetrics | None = None,
                 admission: Admission | None = None, request_logs: Any = None) -> None:
        """`request_logs`: a `request_logs.RequestLogs` (each model's `logging_config`), or None."""
        self.manager = manager
        self.metrics = metrics
        self.admission = admission
        self.request_logs = request_logs

    def lane(self, entrypoint: str, num_threads: int, backstop_seconds: float = 0.0) -> Lane:
        """A front end's worker pool and metric entrypoint (`REST`, `GRPC`)."""
        return Lane(self, entrypoint, num_threads, backstop_seconds)

    def model_names(self) -> list[str]:
        """The models configured now, sorted."""
        return sorted(self.manager.model_names)

    def serves(self, model_name: str | None) -> bool:
        return model_name is not None and self.manager.serves(model_name)

    def servable(self, target: Target) -> Servable:
        """The servable a target names now, for a cheap read (metadata): no lease is held."""
        return self.manager.servable(target.model_name, target.version, target.label)

    def model_status(self, model_name: str, version: int | None) -> Any:
        """GetModelStatusResponse for a model (one version, or all)."""
        return self.manager.model_status(model_name, version)


class Ticket:
    """One admitted request between the loop and a worker; settled once, on the loop."""

    __slots__ = ("_mailbox", "_waiter", "_admission", "deadline", "_settled", "trace", "submitted", "queued",
                 "parse", "write")

    def __init__(self, mailbox: Mailbox, admission: Admission | None, deadline: Deadline) -> None:
        self._mailbox = mailbox
        self._waiter = mailbox.loop.create_future()
        self._admission = admission
        self.deadline = deadline
        self._settled = False
        self.trace: RequestTrace | None = None  # a sampled request's record, filled as it runs
        # where its time went, in seconds (`ServerMetrics.record_stages`), set by the worker before
        # it answers: admitted at `submitted` (perf_counter), waited `queued` for a worker, spent
        # `parse` in the codec's parse and `write` in its response
        self.submitted = time.perf_counter()
        self.queued = self.parse = self.write = 0.0

    def answer(self, result: Any, error: BaseException | None) -> None:
        """The worker's answer (from any thread; the first answer counts). Answers reach the loop
        through its mailbox: those given while the loop is busy are settled in one loop callback."""
        self._mailbox.post(self._settle, result, error)

    def cancel(self, error: ServingError | None = None) -> None:
        """On the loop: the client went away (or its time is up): the admission slot is free now,
        the work is abandoned (dropped if not started), the awaiting caller gets `error`."""
        self.deadline.abandon()
        self._settle(None, error or Cancelled("The client went away"))

    def expire(self, message: str) -> None:
        """On the loop: nothing answered by the deadline (plus the lane's backstop)."""
        self.cancel(DeadlineExceeded(message))

    def _settle(self, result: Any, error: BaseException | None) -> None:
        if self._settled:
            return
        self._settled = True
        if self._admission is not None:
            self._admission.leave()
        waiter = self._waiter
        if waiter.done():  # the awaiting task was cancelled
            return
        if error is not None:
            waiter.set_exception(error)
        else:
            waiter.set_result(result)


class Lane:
    """One front end's way into the data plane: its worker pool, entrypoint label and backstop."""

    def __init__(self, plane: DataPlane, entrypoint: str, num_threads: int, backstop_seconds: float) -> None:
        self.plane = plane
        self.entrypoint = entrypoint
        self.backstop_seconds = backstop_seconds
        self.executor = WorkerPool(num_threads, f"{entrypoint.lower()}-worker")
        self.transport = Transport.REST if entrypoint == "REST" else Transport.GRPC
        self._mailbox: Mailbox | None = None  # the answers' way back to the loop of the last request
        self._expiry: Expiry | None = None    # the backstops of that loop's requests

    def close(self) -> None:
        """Stop the worker threads once running requests end."""
        self.executor.shutdown(wait=False, cancel_futures=True)

    # -- the request path -------------------------------------------------------------------------

    def predict(self, model_name: str, parse: Parse,
                timeout: float | None, timeout_message: str, watch: Watch | None = None,
                trace_for: Callable[[], RequestTrace] | None = None,
                api: str | None = None) -> Awaitable[Any]:
        """The answer of a predict `parse(trace)` describes (see `submit` for the rest)."""
        return self.submit(model_name, self._predict, parse, timeout, timeout_message, watch, trace_for, api)

    def examples(self, model_name: str, parse: Parse,
                 timeout: float | None, timeout_message: str, watch: Watch | None = None,
                 trace_for: Callable[[], RequestTrace] | None = None,
                 api: str | None = None) -> Awaitable[Any]:
        """The answer of a classify, regress or multi-inference `parse(trace)` describes."""
        return self.submit(model_name, self._examples, parse, timeout, timeout_message, watch, trace_for, api)

    def submit(self, model_name: str, work: Callable[[Ticket, Any], None], arg: Any,
               timeout: float | None, timeout_message: str,
               watch: Callable[[Ticket], None] | None = None,
               trace_for: Callable[[], RequestTrace] | None = None, api: str | None = None) -> Awaitable[Any]:
        """Admit one request, run `work(ticket, arg)` in a worker (it answers once through
        `ticket.answer`, from any thread, or raises), and return (an awaitable of) its answer, or
        raise its ServingError. `timeout` (None: none) is the request's deadline; `timeout_message`
        the DEADLINE_EXCEEDED text the caller gets when the backstop fires. `watch(ticket)` lets the
        codec cancel the request when its client goes away; the awaiting task being cancelled does
        the same. With `trace_for`, a request its model's request log samples gets a trace (handed
        to `parse`) and is logged with its outcome once answered. With `api` (the `API` label the
        codec's `request_latency` uses), an OK answer records where its time went (the ticket's
        stage times, `ServerMetrics.record_stages`). Nothing happens until it is awaited; an
        unsampled request is one coroutine (this is on every request's path)."""
        if trace_for is not None and (logs := self.plane.request_logs) is not None:
            logger = logs.sampled_logger(model_name)
            if logger is not None:
                return self._logged(logger, trace_for(), model_name, work, arg, timeout, timeout_message,
                                    watch, api)
        return self._submit(model_name, work, arg, timeout, timeout_message, watch, None, api)

    async def _logged(self, logger: Any, trace: RequestTrace, model_name: str, work: Callable[..., None],
                      arg: Any, timeout: float | None, timeout_message: str,
                      watch: Callable[[Ticket], None] | None, api: str | None) -> Any:
        """`_submit` for a sampled request, logged with its outcome once answered."""
        started = time.perf_counter()
        code, message = Code.OK, ""
        try:
            return await self._submit(model_name, work, arg, timeout, timeout_message, watch, trace, api)
        except ServingError as error:
            code, message = error.code, error.message
            raise
        except asyncio.CancelledError:
            code = Code.CANCELLED
            raise
        except Exception as error:
            code, message = Code.INTERNAL, f"Internal error: {type(error).__name__}: {error}"
            raise
        finally:
            logger.log(LogApi(trace.api), self.transport, code, time.perf_counter() - started,
                       request=trace.request, response=trace.response if code is Code.OK else None,
                       message=message, version=trace.version, label=trace.label, signature=trace.signature)

    async def _submit(self, model_name: str, work: Callable[..., None], arg: Any,
                      timeout: float | None, timeout_message: str, watch: Callable[[Ticket], None] | None,
                      trace: RequestTrace | None, api: str | None) -> Any:
        plane = self.plane
        admission = plane.admission
        if admission is not None:
            try:
                admission.enter()
            except ServingError:
                self.count_drop(model_name, "overloaded")
                raise
        loop = asyncio.get_running_loop()
        mailbox = self._mailbox
        if mailbox is None or mailbox.loop is not loop:
            mailbox = self._mailbox = Mailbox(loop)
            self._expiry = Expiry(loop)
        expiry = self._expiry
        assert expiry is not None
        ticket = Ticket(mailbox, admission, Deadline(timeout))
        ticket.trace = trace
        try:
            self.executor.post(self._start, work, ticket, model_name, arg)
        except RuntimeError:  # the pool is shut down: the server is stopping
            ticket.cancel()
            raise Unavailable("Server is shutting down") from None
        if watch is not None:
            watch(ticket)
        if timeout is not None:
            expiry.watch(ticket, timeout + self.backstop_seconds, ticket.expire, timeout_message)
        try:
            result = await ticket._waiter
        except asyncio.CancelledError:  # the client cancelled or went away
            ticket.cancel()
            raise
        finally:
            if timeout is not None:
                expiry.unwatch(ticket)
        if api is not None and (metrics := plane.metrics) is not None:
            metrics.record_stages(model_name, api, self.entrypoint, ticket.queued, ticket.parse, ticket.write)
        return result

    def _start(self, work: Callable[..., None], ticket: Ticket, model_name: str,
               arg: Any) -> None:
        """Worker entry: drop a request whose deadline passed (or whose client left) while it
        waited for a worker; otherwise run `work`, whose exception is its answer."""
        ticket.queued = time.perf_counter() - ticket.submitted
        deadline = ticket.deadline
        if deadline.expired():
            self.count_drop(model_name, "deadline_exceeded")
            ticket.answer(None, deadline.error())
            return
        try:
            work(ticket, arg)
        except BaseException as error:  # noqa: BLE001 - becomes the request's error answer
            ticket.answer(None, error)

    def _predict(self, ticket: Ticket, parse: Parse) -> None:
        """The whole predict, in TF Serving's order of checks: parse, look up (leased until the
        model ran), signature, inputs; the model run may join a batch and answer from its worker.
        The ticket gets the time of the codec's parse (request and inputs) and of its response."""
        answer, trace = ticket.answer, ticket.trace
        clock = time.perf_counter
        begun = clock()
        call = parse(trace)
        parsed = clock() - begun
        target = call.target
        servable = self.plane.manager.acquire(target.model_name, target.version, target.label)
        if trace is not None:
            trace.version = servable.version
        try:
            signature = servable.predict_signature(call.signature_name)
            begun = clock()
            inputs = call.inputs(signature)
        except BaseException:
            servable.release()
            raise
        metrics = self.plane.metrics
        started = clock()
        ticket.parse = parsed + started - begun

        def done(outputs: dict | None, error: BaseException | None) -> None:
            servable.release()
            if error is None:
                begun = clock()
                if metrics is not None:
                    metrics.record_runtime(target.model_name, "Predict", begun - started)
                    begun = clock()
                try:
                    response = call.response(servable.version, outputs)  # type: ignore[arg-type]
                except Exception as format_error:  # noqa: BLE001 - answered like any other error
                    error = format_error
                else:
                    ticket.write = clock() - begun
                    return answer(response, None)
            answer(None, error)

        try:
            servable.run_async(signature, inputs, done, ticket.deadline)
        except BaseException:  # refused before running (a full batch queue): `done` is not called
            servable.release()
            raise

    def _examples(self, ticket: Ticket, parse: Parse) -> None:
        """The whole classify/regress/multi-inference: parse, look up (leased while it runs), run,
        answer; the ticket gets the time of the codec's parse and of its response."""
        trace = ticket.trace
        clock = time.perf_counter
        begun = clock()
        call = parse(trace)
        ticket.parse = clock() - begun
        target = call.target
        servable = self.plane.manager.acquire(target.model_name, target.version, target.label)
        if trace is not None:
            trace.version = servable.version
        started = clock()
        try:
            result = call.run(servable, ticket.deadline)
        finally:
            servable.release()
        ran = clock()
        response = call.response(servable.version, result)  # its error is the request's: nothing recorded
        ticket.write = clock() - ran
        metrics = self.plane.metrics
        if metrics is not None:
            if call.runtime_api:
                metrics.record_runtime(target.model_name, call.runtime_api, ran - started)
            metrics.record_examples(target.model_name, call.example_count)
        ticket.answer(response, None)

    # -- metrics ----------------------------------------------------------------------------------

    def count_drop(self, model_name: str | None, reason: str) -> None:
        """A request dropped before model work (`overloaded`, `deadline_exceeded`)."""
        metrics = self.plane.metrics
        if metrics is not None and self.plane.serves(model_name):
            metrics.record_dropped(model_name, reason)  # type: ignore[arg-type]

    def record(self, model_name: str | None, api: str, code: Code, started: float) -> None:
        """One answered request (`started`: its `time.perf_counter()` at arrival)."""
        metrics = self.plane.metrics
        if metrics is not None:
            metrics.record_request(model_name, api, self.entrypoint, code, time.perf_counter() - started)
