"""The baseline: the plainest Starlette app serving the SavedModel, one route, nothing else.

The route parses ``{"instances": [...]}``, calls the ``serving_default`` signature's concrete function
with ``tf.constant`` on the event loop, and answers ``{"predictions": [...]}``. Same stack as the
server under test (uvicorn + httptools + uvloop, access log off), so the difference is what the
server does beyond this. Usage: ``python bench/plain_starlette.py --port P --model_dir VERSION_DIR``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def build_app(model_dir: str, model_name: str) -> Any:
    """A Starlette app with one route, ``POST /v1/models/<model_name>:predict``."""
    import tensorflow as tf
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    signature = tf.saved_model.load(model_dir).signatures["serving_default"]
    input_name = next(iter(signature.structured_input_signature[1]))
    signature(**{input_name: tf.constant([[0.0, 0.0]], dtype=tf.float32)})  # warm-up

    async def predict(request: Request) -> JSONResponse:
        body = await request.json()
        outputs = signature(**{input_name: tf.constant(body["instances"], dtype=tf.float32)})
        return JSONResponse({"predictions": next(iter(outputs.values())).numpy().tolist()})

    return Starlette(routes=[Route(f"/v1/models/{model_name}:predict", predict, methods=["POST"])])


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model_dir", required=True, help="one SavedModel version directory")
    parser.add_argument("--model_name", default="linear_model")
    args = parser.parse_args()
    uvicorn.run(build_app(args.model_dir, args.model_name), host="127.0.0.1", port=args.port,
                http="httptools", loop="uvloop", access_log=False, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main()
