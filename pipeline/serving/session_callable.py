"""The one place the server relies on a private TensorFlow API: `Session._make_callable_from_options`.

TF Serving runs a signature by handing the Session the SignatureDef's tensor names and the request's
tensors (`Session::Run` with named feeds and fetches). The Python `Session.run` does the same but
first checks every fed array's shape against the placeholder's static shape, which TF Serving never
does: `[1.0, 2.0, 5.0]` fed to a placeholder of shape `[-1, 1]` is refused by `Session.run` while
TF Serving lets the graph compute it (`[2.5, 3.0, 4.5]`). `Session._make_callable_from_options(
CallableOptions(feed=..., fetch=...))` builds the executor for one feed/fetch set once and then runs
it with no Python-side checks (about 20 us per call), exactly as the C++ session is called.

What is relied on (checked by `tests/server/test_servable_session_callable.py`, so a TensorFlow
upgrade that changes it fails a test instead of silently changing answers): `tf.compat.v1.Session`
has `_make_callable_from_options`, it accepts a `config_pb2.CallableOptions`, the callable it
returns takes the feeds positionally as numpy arrays, returns the fetches as a list of numpy arrays,
and does not apply the feed-shape check. Without it, `make_callable` falls back to the public
`Session.run` (which applies the check) and `status()` says so at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

Runner = Callable[..., list[np.ndarray]]
"""Runs one feed/fetch set: the feeds' arrays positionally in, the fetches' arrays out (a list)."""

_PRIVATE = "_make_callable_from_options"


def available() -> bool:
    """Whether this TensorFlow's Session still has the private callable factory."""
    from tensorflow.python.client.session import BaseSession

    return callable(getattr(BaseSession, _PRIVATE, None))


def status() -> str:
    """One line for the start-up log saying which path runs signatures."""
    try:
        active = available()
    except ImportError as error:
        return f"Session callables unavailable ({error}): signatures run through Session.run (shape-checked)"
    if active:
        return ("Session callables active: signatures run by tensor name with no feed-shape check, "
                "as TF Serving does (Session._make_callable_from_options)")
    return ("Session callables unavailable (no Session._make_callable_from_options): signatures run "
            "through the public Session.run, which refuses feeds whose shape differs from the placeholder's")


def make_callable(session: Any, feeds: Sequence[str], fetches: Sequence[str],
                  targets: Sequence[str] = (), timeout_ms: int | None = None) -> Runner:
    """A runner for `session` feeding `feeds` and fetching `fetches` (tensor names like `x:0`) and
    running `targets` (operation names). With `timeout_ms`, each run carries
    `RunOptions(timeout_in_ms=...)`, as TF Serving passes it: a run still going then is cancelled and
    raises DeadlineExceededError (`Timed out waiting for notification`). The private path is used
    when present; otherwise, and if it refuses the options, the public `Session.run` (logged once
    per call site as a warning)."""
    if available():
        from tensorflow.core.protobuf import config_pb2

        options = config_pb2.CallableOptions(feed=list(feeds), fetch=list(fetches), target=list(targets))
        if timeout_ms is not None:
            options.run_options.timeout_in_ms = timeout_ms
        try:
            return getattr(session, _PRIVATE)(options)
        except TypeError as error:  # a changed signature of the private method: keep serving
            log.warning("Session callables refused the options (%s); using Session.run", error)
    return _public_runner(session, feeds, fetches, targets, timeout_ms)


def _public_runner(session: Any, feeds: Sequence[str], fetches: Sequence[str],
                   targets: Sequence[str], timeout_ms: int | None) -> Runner:
    feed_names, fetch_list = list(feeds), [*fetches, *targets]
    count = len(fetches)
    options = None
    if timeout_ms is not None:
        from tensorflow.core.protobuf import config_pb2

        options = config_pb2.RunOptions(timeout_in_ms=timeout_ms)

    def run(*arrays: np.ndarray) -> list[np.ndarray]:
        return list(session.run(fetch_list, dict(zip(feed_names, arrays, strict=True)),
                                options=options)[:count])

    return run
