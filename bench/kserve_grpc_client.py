"""The bench's side of KServe's gRPC endpoint, run with the KServe venv's python (its own protos).

Two commands, each printing one JSON line last:

- ``frame OUT``: writes the bench's 1-row request ([[1.0, 2.0]], FP32) as a ``ModelInferRequest`` of
  the open inference protocol v2, pre-framed for h2load (1 flag byte 0, 4-byte big-endian length, the
  message); prints ``{"bytes": N}``.
- ``check TARGET [--count N]``: N concurrent ``inference.GRPCInferenceService/ModelInfer`` calls
  through grpcio; prints ``{"wrong": W, "sample": [...], "error": "..."}``, where W counts calls that
  failed or did not answer 3.0 (``2*1 - 1*2 + 3``). h2load counts HTTP statuses only (a gRPC error is
  HTTP 200 too), so this is what says KServe's answers were right.

Usage::

    bench/.work/kserve-venv/bin/python bench/kserve_grpc_client.py frame bench/.work/kserve.grpc
    bench/.work/kserve-venv/bin/python bench/kserve_grpc_client.py check 127.0.0.1:8081 --count 64
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

MODEL_NAME = "linear_model"
INPUT_NAME = "inputs"
ROW = (1.0, 2.0)
EXPECTED = 3.0


def infer_request() -> Any:
    """The 1-row ``ModelInferRequest`` (FP32, shape [1, 2]) built with KServe's own protos."""
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    request = pb.ModelInferRequest(model_name=MODEL_NAME)
    tensor = request.inputs.add(name=INPUT_NAME, datatype="FP32", shape=[1, len(ROW)])
    tensor.contents.fp32_contents.extend(ROW)
    return request


def framed(message: bytes) -> bytes:
    """One gRPC length-prefixed message: uncompressed flag, big-endian length, bytes."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def answers(response: Any) -> list[float]:
    """The predictions in a ``ModelInferResponse``, typed contents or raw bytes alike."""
    import numpy as np

    values: list[float] = []
    for index, output in enumerate(response.outputs):
        if response.raw_output_contents:
            dtype = {"FP32": np.float32, "FP64": np.float64}[output.datatype]
            values += np.frombuffer(response.raw_output_contents[index], dtype=dtype).tolist()
        else:
            values += list(output.contents.fp32_contents) or list(output.contents.fp64_contents)
    return values


def check(target: str, count: int) -> dict:
    """`count` concurrent ModelInfer calls; how many failed or answered anything but [3.0]."""
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    request = infer_request()
    errors: list[str] = []
    samples: list[list[float]] = []
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)

        def one(_: int) -> bool:
            try:
                got = answers(stub.ModelInfer(request, timeout=30))
            except grpc.RpcError as error:
                errors.append(f"{error.code().name}: {error.details()}")
                return False
            except (KeyError, ValueError) as error:  # an output this bench does not expect
                errors.append(f"unreadable answer: {error!r}")
                return False
            samples.append(got)
            return len(got) == 1 and abs(got[0] - EXPECTED) < 1e-4

        with ThreadPoolExecutor(max_workers=min(16, count)) as pool:
            wrong = sum(not ok for ok in pool.map(one, range(count)))
    return {"wrong": wrong, "sample": samples[0] if samples else None, "error": errors[0] if errors else ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    frame_cmd = commands.add_parser("frame")
    frame_cmd.add_argument("out", type=Path)
    check_cmd = commands.add_parser("check")
    check_cmd.add_argument("target")
    check_cmd.add_argument("--count", type=int, default=64)
    args = parser.parse_args()
    if args.command == "frame":
        body = framed(infer_request().SerializeToString())
        args.out.write_bytes(body)
        print(json.dumps({"bytes": len(body)}))
    else:
        print(json.dumps(check(args.target, args.count)))


if __name__ == "__main__":
    main()
