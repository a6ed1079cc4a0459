"""TF Serving's request logging, made real: every model's `logging_config`, honoured.

TF Serving's open-source server refuses a `logging_config` ("No request-logger-creator provided");
here `log_collector_config { type: "file" filename_prefix: "PATH" }` with `sampling_config {
sampling_rate: R }` writes each finished predict, classify, regress and multi-inference request,
REST or gRPC, with probability R, to TFRecord files of `PredictionLog` whose names start with PATH
(`log_files.py` has the layout, `request_log.py` the writer).

`RequestLogs` holds one `RequestLogger` per model: `apply(configs)` at start-up and on every config
reload (the manager calls it, so `--model_config_file`, its polling and gRPC's
HandleReloadConfigRequest take one path), `record(...)` from the front ends for every finished
request (or `sampled_logger(model)` first, then the logger's `log(...)`, when the record costs work
to gather), `close()` when the server stops (what is queued is written first).

A `logging_config` is refused, with a message saying why, when its collector type is not `file`,
it sets `custom_logging_config`, its prefix is empty or cannot be written (the prefix's folder is
created if missing, then a probe file is written and removed), or its sampling rate is outside
[0, 1]. That model is then served without request logging; its other settings and the other
models are unaffected.

Thread-safety: `record` from any thread (a lock-free dict lookup); `apply` and `close` from one
thread at a time (the manager serializes config changes).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections.abc import Callable, Iterable

from pipeline.serving import log_files
from pipeline.serving.log_files import Api, Transport
from pipeline.serving.model_config import LoggingConfig, ModelConfig
from pipeline.serving.request_log import DEFAULT_OPTIONS, LogOptions, Message, Outcome, RequestLogger

log = logging.getLogger(__name__)

FILE_COLLECTOR = "file"


class RequestLogError(ValueError):
    """A `logging_config` that cannot be honoured; the message is for the user."""


def check_config(model: str, config: LoggingConfig) -> str:
    """The absolute prefix files will be written under, or RequestLogError saying why `config` is
    refused. Creates the prefix's folder if missing and checks it can be written (a probe file)."""
    refused = f"Model {model}: logging_config refused, the model is served without request logging: "
    if config.custom:
        raise RequestLogError(refused + "custom_logging_config is not supported; use log_collector_config")
    if config.collector_type != FILE_COLLECTOR:
        raise RequestLogError(refused + f"unknown log_collector_config type {config.collector_type!r} "
                              f"(the one collector here is {FILE_COLLECTOR!r})")
    if not config.filename_prefix:
        raise RequestLogError(refused + "log_collector_config has an empty filename_prefix")
    rate = config.sampling_rate
    if not (math.isfinite(rate) and 0.0 <= rate <= 1.0):
        raise RequestLogError(refused + f"sampling_rate must be between 0 and 1, got {rate}")
    prefix = config.filename_prefix
    absolute = os.path.abspath(prefix) + ("/" if prefix.endswith("/") else "")
    folder = log_files.prefix_folder(absolute)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise RequestLogError(refused + f"filename_prefix {prefix!r} cannot be written "
                              f"({error.strerror or error})") from None
    return absolute


class RequestLogs:
    """Every model's request log, by model name; see the module docstring."""

    def __init__(self, options: LogOptions = DEFAULT_OPTIONS, on_outcome: Outcome | None = None,
                 make_logger: Callable[..., RequestLogger] = RequestLogger) -> None:
        """`on_outcome` counts records written and dropped (`ServerMetrics.record_request_log`);
        `make_logger` builds a model's logger (tests give a fake clock or disk)."""
        self.options = options
        self._on_outcome = on_outcome
        self._make_logger = make_logger
        self._loggers: dict[str, RequestLogger] = {}  # replaced whole, read lock-free
        self._refused: set[str] = set()  # refusals logged already (a config poll retries each second)

    def logger(self, model: str) -> RequestLogger | None:
        """The model's logger, None when it logs nothing."""
        return self._loggers.get(model)

    def apply(self, configs: Iterable[ModelConfig]) -> list[str]:
        """Log exactly the models of `configs` whose `logging_config` can be honoured; return one
        message per refused one (logged as an error the first time). A refused config is checked
        again at each call (a folder made writable since is taken). An unchanged config keeps its
        logger (and its file); a changed or removed one is closed (its queue written first)."""
        current, wanted, problems = self._loggers, {}, []
        for config in configs:
            if config.logging is None:
                continue
            old = current.get(config.name)
            if old is not None and old.config == config.logging:
                wanted[config.name] = old
                continue
            try:
                prefix = check_config(config.name, config.logging)
            except RequestLogError as error:
                if str(error) not in self._refused:
                    log.error("%s", error)
                problems.append(str(error))
                continue
            wanted[config.name] = self._make_logger(config.name, config.logging, prefix, self.options,
                                                    on_outcome=self._on_outcome)
            rate = config.logging.sampling_rate
            share = "every request" if rate >= 1 else "no request (sampling_rate 0)" if rate <= 0 \
                else f"{rate:.4g} of requests"
            log.info("Model %s: logging %s to files named %s*", config.name, share, prefix)
        self._loggers, self._refused = wanted, set(problems)
        for name, old in current.items():
            if wanted.get(name) is not old:
                old.close()
        return problems

    def sampled_logger(self, model: str) -> RequestLogger | None:
        """The model's logger when this request is to be logged (its sampling draw), else None: a
        front end asks first, then gathers the request's record only for a sampled one."""
        logger = self._loggers.get(model)
        return logger if logger is not None and logger.sampled() else None

    def record(self, model: str, api: Api, transport: Transport, status: str, latency_s: float, *,
               request: Message = None, response: Message = None, message: str = "",
               version: int | None = None, label: str | None = None, signature: str = "") -> None:
        """One finished request; costs a dict lookup and one random draw unless the model logs and
        the request is sampled. Never raises, never waits for the disk.

        `model` as the request named it; `status` the canonical code name (`OK`,
        `INVALID_ARGUMENT`, ...) and `message` its text; `latency_s` from request to answer;
        `request`/`response` a protobuf message of the API's types (`PredictRequest`/
        `PredictResponse`, ...), its serialized bytes, None (a failed request has no response), or a
        zero-argument callable returning one of these, called only when sampled; `version` the
        version that answered (None if none), `label` the label asked for, `signature` the
        signature name that ran."""
        logger = self.sampled_logger(model)
        if logger is None:
            return
        logger.log(api, transport, status, latency_s, request=request, response=response, message=message,
                   version=version, label=label, signature=signature)

    def flush(self, timeout: float = 10.0) -> bool:
        """Write and fsync every model's queued records now; False if one timed out."""
        return all([logger.flush(timeout) for logger in self._loggers.values()])

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued and close every file (the server's shutdown)."""
        loggers, self._loggers = self._loggers, {}
        for logger in loggers.values():
            logger.close(timeout)
