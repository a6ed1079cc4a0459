"""The floor: a raw ASGI app answering one constant JSON prediction, no TensorFlow, no framework.

Whatever any server spends beyond this is its own cost; uvicorn + httptools + uvloop, access log off,
like every Python contender. Usage: ``python bench/raw_asgi.py --port P``.
"""

from __future__ import annotations

import argparse
from typing import Any

BODY = b'{"predictions":[[3.0]]}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Read the whole request body, then answer ``BODY`` (any path, any method)."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, http="httptools", loop="uvloop",
                access_log=False, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main()
