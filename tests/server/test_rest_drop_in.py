"""TF Serving REST behaviours a client can tell apart, on real servers: float text as WriteDecimal
writes it, bodies nested 500,000 deep in an unused key, an HTTP/2 cleartext upgrade offer (Java's
default HttpClient) answered over HTTP/1.1, `--enable_signature_method_name_check`, and the wire
details of issue 23 item 7: any Content-Encoding naming gzip, string outputs' bytes as they are,
TF Serving's whitespace."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.harness import (
    Models,
    Server,
    error_of,
    install_version,
    ok_json,
    start_server,
    wait_for,
)
from tests.server.savedmodels import set_method_names

IDENTITY = "/v1/models/identity:predict"
DEEP = 500_000


def test_float32_text_is_write_decimal(main_server: Server) -> None:
    body = {"signature_name": "float", "instances": [9e6, 3e-5, 0.5, 2.9296489, 1435774336, 1e-7, 3]}
    response = main_server.post(IDENTITY, body)
    assert response.status_code == 200, response.text
    assert response.text == '{\n    "predictions": [9e+06,3e-05,0.5,2.92964888,1.43577434e+09,1e-07,3.0]\n}'


def test_float64_text_is_write_decimal(main_server: Server) -> None:
    body = {"signature_name": "double", "inputs": [9e6, 2.9296489, 1435774336, 0.1, 1 / 3]}
    response = main_server.post(IDENTITY, body)
    assert response.status_code == 200, response.text
    assert response.text == ('{\n    "outputs": [9e+06,2.9296489000000001,1435774336.0,0.1,'
                             '0.33333333333333331]\n}')


def test_an_unused_key_nested_500000_deep_is_accepted(main_server: Server) -> None:
    body = b'{"unused": ' + b"[" * DEEP + b"]" * DEEP + b', "signature_name": "float", "instances": [1.5]}'
    response = main_server.post(IDENTITY, body)
    assert ok_json(response) == {"predictions": [1.5]}


def test_a_signature_name_nested_500000_deep_is_not_a_string(main_server: Server) -> None:
    body = b'{"signature_name": ' + b"[" * DEEP + b"]" * DEEP + b', "instances": [1.5]}'
    message = error_of(main_server.post(IDENTITY, body), 400)
    assert message.endswith("not formatted correctly. 'signature_name' key must be a string value.")


def raw_exchange(server: Server, requests: list[bytes]) -> list[bytes]:
    """Send each request on one connection and read its whole answer (Content-Length framed)."""
    answers = []
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        stream = connection.makefile("rb")
        for request in requests:
            connection.sendall(request)
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                line = stream.readline()
                assert line, f"connection closed; got {head!r}"
                head += line
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            answers.append(head + stream.read(length))
    return answers


def test_an_h2c_upgrade_offer_is_ignored_and_answered_over_http_1_1(main_server: Server) -> None:
    body = json.dumps({"signature_name": "float", "instances": [1.5, 2.5]}).encode()
    request = (b"POST " + IDENTITY.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
               b"HTTP2-Settings: AAEAAEAAAAIAAAABAAMAAABkAAQBAAAAAAUAAEAA\r\n"
               b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
    # As one write, and with the body in a later segment than the headers (Java sends both ways).
    first, second = raw_exchange(main_server, [request, request])
    for answer in (first, second):
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer
        assert answer.endswith(b'{\n    "predictions": [1.5,2.5]\n}')
    with socket.create_connection(("127.0.0.1", main_server.port), timeout=30) as connection:
        head, _, rest = request.partition(b"\r\n\r\n")
        connection.sendall(head + b"\r\n\r\n")
        connection.sendall(rest)
        answer = connection.makefile("rb").read1(65536)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and b"Invalid HTTP request" not in answer


@pytest.fixture(scope="module")
def predict_named_regress(models: Models, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """half_plus_two whose regress_x_to_y signature carries the predict method_name, as TF2
    exports every signature."""
    base = tmp_path_factory.mktemp("method_names") / "hpt"
    version = install_version(models.half_plus_two, base, "1")
    set_method_names(version, {"regress_x_to_y": "tensorflow/serving/predict"})
    return base


@pytest.fixture(params=["default", "checked"])
def method_check_server(request: pytest.FixtureRequest, predict_named_regress: Path,
                        tmp_path: Path) -> Iterator[tuple[str, Server]]:
    flags = [] if request.param == "default" else ["--enable_signature_method_name_check"]
    server = start_server(["--model_name=hpt", f"--model_base_path={predict_named_regress}", "--port=0",
                           *flags], tmp_path / "server.log")
    yield request.param, server
    server.stop()


def test_method_name_check_only_when_asked(method_check_server: tuple[str, Server]) -> None:
    mode, server = method_check_server
    wait_for(lambda: server.get("/v1/models/hpt").status_code == 200, 60)
    response = server.post("/v1/models/hpt:regress", {"signature_name": "regress_x_to_y",
                                                       "examples": [{"x": 2.0}]})
    if mode == "default":  # TF Serving's default: the signature's method_name is not required
        assert ok_json(response) == {"results": [3.0]}
    else:
        assert error_of(response, 400) == ("Expected regression signature method_name to be "
                                           "tensorflow/serving/regress. Was: tensorflow/serving/predict")


H2C_REQUESTS = [
    b"POST /v1/models/m:predict HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
    b"HTTP2-Settings: AAEAAEAAAAIAAAAB\r\nContent-Length: 2\r\n\r\n{}",
    b"GET /v1/models/m HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nupgrade:H2C \r\n\r\n",
    b"GET /v1/models/m HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: H2c\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",  # left alone
]


@pytest.mark.parametrize("request_bytes", H2C_REQUESTS)
def test_the_h2c_line_is_dropped_however_the_request_is_split(request_bytes: bytes) -> None:
    from pipeline.serving.rest.uvicorn_protocol import without_h2c_upgrade

    expected = re.sub(rb"(?i)\r\nupgrade: ?h2c ?(?=\r\n)", b"", request_bytes)
    head_end = request_bytes.index(b"\r\n\r\n") + 4
    for first in range(len(request_bytes) + 1):
        for second in range(first, len(request_bytes) + 1):
            parsed, held, position = b"", b"", 0
            for chunk in (request_bytes[:first], request_bytes[first:second], request_bytes[second:]):
                out, held = without_h2c_upgrade(chunk, held, position < head_end, parsed[-3:])
                parsed, position = parsed + out, position + len(chunk)
            assert (parsed, held) == (expected, b""), (first, second)


def test_any_content_encoding_naming_gzip_is_decompressed(main_server: Server) -> None:
    import gzip

    body = gzip.compress(b'{"instances": [1.0, 2.0]}')
    for encoding in ("x-gzip", "gzip", "GZIP"):
        response = main_server.post("/v1/models/half_plus_two:predict", body,
                                    headers={"Content-Encoding": encoding})
        assert ok_json(response) == {"predictions": [2.5, 3.0]}, encoding


def test_string_outputs_carry_their_bytes_even_when_not_utf8(main_server: Server) -> None:
    """TF Serving's rapidjson copies a string tensor's bytes into the JSON text unchanged."""
    import base64

    raw = b"ok\xff\xfe\"q"
    body = {"signature_name": "string", "instances": [{"b64": base64.b64encode(raw).decode()}]}
    response = main_server.post(IDENTITY, body)
    assert response.status_code == 200
    assert response.content == b'{\n    "predictions": ["ok\xff\xfe\\"q"]\n}'


def test_answers_are_laid_out_as_tf_serving_lays_them_out(main_server: Server) -> None:
    predict = main_server.post("/v1/models/half_plus_two:predict", {"instances": [1.0]})
    assert predict.text == '{\n    "predictions": [2.5]\n}'
    status = main_server.get("/v1/models/half_plus_two")
    assert status.text == ('{\n "model_version_status": [\n  {\n   "version": "123",\n'
                           '   "state": "AVAILABLE",\n   "status": {\n    "error_code": "OK",\n'
                           '    "error_message": ""\n   }\n  }\n ]\n}\n')
    metadata = main_server.get("/v1/models/half_plus_two/metadata").text
    assert metadata.startswith('{\n"model_spec":{\n "name": "half_plus_two",\n "version": "123",\n'
                               ' "signature_name": ""\n}\n,\n"metadata": {"signature_def": {\n'
                               ' "signature_def": {\n')
    assert metadata.endswith("}\n}\n}\n") and json.loads(metadata)["model_spec"]["version"] == "123"
    error = main_server.get("/v1/models/nope")
    assert error.text == '{ "error": "Could not find any versions of model nope" }'
