"""KServe's `ModelServer` serving the bench's SavedModel through a custom `kserve.Model`.

Runs in the bench's own venv (``bench/.work/kserve-venv``: ``pip install kserve tensorflow``), never
in the project's. ``predict`` calls the ``serving_default`` signature's concrete function with
``tf.constant``, exactly like the plain-Starlette baseline. Set up like the other contenders: bound
to 127.0.0.1 (KServe hard-codes 0.0.0.0; patched below), gRPC off, and no log line per request
(KServe's latency log, its ``kserve.trace`` timing log and uvicorn's access log are all off), so its
numbers are not a measure of logging. Usage::

    python bench/kserve_model.py --http_port P --model_name linear_model --model_dir VERSION_DIR
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

        def predict(self, payload: dict, headers: dict[str, str] | None = None) -> dict:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--model_name", default="linear_model")
    args, _ = parser.parse_known_args()  # kserve parses its own flags (--http_port, ...) from sys.argv
    bind_loopback()
    import kserve

    model = make_model(args.model_name, args.model_dir)
    server = kserve.ModelServer(enable_grpc=False, enable_latency_logging=False)
    for per_request_logger in ("uvicorn.access", "kserve.trace"):  # both log every request by default
        logging.getLogger(per_request_logger).disabled = True
    server.start([model])


if __name__ == "__main__":
    main()
