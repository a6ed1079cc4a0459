"""KServe's `ModelServer` serving the bench's SavedModel through a custom `kserve.Model`.

Runs in the bench's own venv (``bench/.work/kserve-venv``: ``pip install kserve tensorflow``), never
in the project's. ``predict`` calls the ``serving_default`` signature's concrete function with
``tf.constant``, exactly like the plain-Starlette baseline. Set up like the other contenders: bound
to 127.0.0.1 (KServe hard-codes 0.0.0.0 for REST and ``[::]`` for gRPC; patched below) and no log
line per request (KServe's latency log, its ``kserve.trace`` timing log, its gRPC interceptor's
``grpc method: ...`` line and uvicorn's access log are all off), so its numbers are not a measure of
logging. gRPC (the open inference protocol v2, ``inference.GRPCInferenceService``) is off unless
``--grpc_port`` is given, as ``--port=0`` turns ours off. Usage::

    python bench/kserve_model.py --http_port P [--grpc_port G] --model_name linear_model \\
        --model_dir VERSION_DIR
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def make_model(name: str, model_dir: str) -> Any:
    """A loaded ``kserve.Model`` whose ``predict`` runs the SavedModel signature."""
    import kserve
    import tensorflow as tf
    from kserve.protocol.infer_type import InferRequest
    from kserve.utils.utils import get_predict_input, get_predict_response

    class SavedModelSignature(kserve.Model):
        def __init__(self) -> None:
            super().__init__(name)
            self.signature: Any = None
            self.input_name = "inputs"

        def load(self) -> bool:
            self.signature = tf.saved_model.load(model_dir).signatures["serving_default"]
            self.input_name = next(iter(self.signature.structured_input_signature[1]))
            self.signature(**{self.input_name: tf.constant([[0.0, 0.0]], dtype=tf.float32)})  # warm-up
            self.ready = True
            return self.ready

        def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
            if isinstance(payload, InferRequest):  # v2 (gRPC ModelInfer), via KServe's own helpers
                rows = get_predict_input(payload)
                outputs = self.signature(**{self.input_name: tf.constant(rows, dtype=tf.float32)})
                return get_predict_response(payload, next(iter(outputs.values())).numpy(), self.name)
            outputs = self.signature(**{self.input_name: tf.constant(payload["instances"], dtype=tf.float32)})
            return {"predictions": next(iter(outputs.values())).numpy().tolist()}

    model = SavedModelSignature()
    model.load()
    return model


def bind_loopback() -> None:
    """KServe's REST server passes ``host="0.0.0.0"`` to uvicorn; the bench serves loopback only."""
    import uvicorn

    original = uvicorn.Config

    class LoopbackConfig(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["host"] = "127.0.0.1"
            kwargs["access_log"] = False
            super().__init__(*args, **kwargs)

    uvicorn.Config = LoopbackConfig  # type: ignore[misc]


def bind_grpc_loopback() -> None:
    """KServe's gRPC server listens on ``[::]:PORT``; rewrite that address to 127.0.0.1."""
    from kserve.protocol.grpc import server as grpc_server

    original = grpc_server.aio

    class LoopbackAio:
        """``grpc.aio`` as KServe's server module sees it, with loopback-only ports."""

        def __getattr__(self, name: str) -> Any:
            return getattr(original, name)

        @staticmethod
        def server(*args: Any, **kwargs: Any) -> Any:
            made = original.server(*args, **kwargs)
            add_port = made.add_insecure_port
            made.add_insecure_port = lambda address: add_port(address.replace("[::]", "127.0.0.1"))
            return made

    grpc_server.aio = LoopbackAio()


class DropGrpcMethodLines(logging.Filter):
    """Drops the ``grpc method: ...`` line KServe's LoggingInterceptor writes for every call."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("grpc method:")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--model_name", default="linear_model")
    parser.add_argument("--grpc_port", type=int, default=0, help="0 (default) turns KServe's gRPC off")
    args, _ = parser.parse_known_args()  # kserve parses its own flags (--http_port, ...) from sys.argv
    bind_loopback()
    import kserve
    from kserve.logging import logger as kserve_logger

    model = make_model(args.model_name, args.model_dir)
    if args.grpc_port:
        bind_grpc_loopback()
        server = kserve.ModelServer(grpc_port=args.grpc_port, enable_grpc=True, enable_latency_logging=False)
    else:
        server = kserve.ModelServer(enable_grpc=False, enable_latency_logging=False)
    for per_request_logger in ("uvicorn.access", "kserve.trace"):  # both log every request by default
        logging.getLogger(per_request_logger).disabled = True
    kserve_logger.addFilter(DropGrpcMethodLines())
    server.start([model])


if __name__ == "__main__":
    main()
