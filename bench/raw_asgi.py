"""The floor: a raw ASGI app answering one constant JSON prediction, no TensorFlow, no framework.

Whatever any server spends beyond this is its own cost; uvicorn + httptools + uvloop, access log off,
like every Python contender. The app is `pipeline.loadtest.floor.app`, the same one the load tool
(`python -m pipeline.loadtest`) measures its own ceiling against. Usage:
``python -m bench.raw_asgi --port P``.
"""

from __future__ import annotations

import argparse

from pipeline.loadtest.floor import BODY, HEADERS, app, serve_rest

__all__ = ["BODY", "HEADERS", "app"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    serve_rest(parser.parse_args().port)


if __name__ == "__main__":
    main()
