"""Hostile input against a live server: thousands of generated requests (hypothesis), each answered
with a 4xx `{"error": ...}` JSON (or a 200), never a 5xx other than TF Serving's documented 501
(unsupported dtype), 503 and 504; slow and truncated bodies; and afterwards the server still answers
a good request and its memory has not grown without bound.

Every test uses the session's `guarded_server`, counts its own answers and ends with `after_the_storm`
(the generator really ran, the server answers, its memory and log are clean), so each one stands
alone and they pass in any order. Each generator is a `@given` function inside its test, called once.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import socket
from collections import Counter

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.reliability.conftest import GUARD_MAX_BODY, MODEL, Guarded, predict
from tests.reliability.probes import RawResponse, build_request, raw_request, rss_bytes, truncated_request

ALLOWED_5XX = {501, 503, 504}
RSS_GROWTH_LIMIT = 200 * 1024 * 1024
KNOWN_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "PROPFIND", "MKCOL",
                 "COPY", "MOVE", "LOCK", "PURGE", "SEARCH", "REPORT")
# Every signature of the identity model except `slow` and `gated`, which run as long as the request asks.
SIGNATURES = ("serving_default", "int_tensor", "float", "double", "int64", "bool", "string", "bytes",
              "pair", "multi", "multi_out", "half", "predict_images", "no_such_signature", "")
TARGETS = tuple(f"/v1/models/{name}{where}:{verb}"
                for name in (MODEL, "identity", "unknown")
                for where in ("", "/versions/1", "/versions/7", "/labels/stable", "/labels/nope")
                for verb in ("predict", "classify", "regress"))
SEEDS = (
    (f"/v1/models/{MODEL}:predict", {"instances": [[1.0, 2.0], [5.0, 7.0]]}),
    (f"/v1/models/{MODEL}:predict", {"inputs": {"inputs": [[1.0, 2.0]]}}),
    (f"/v1/models/{MODEL}:regress", {"examples": [{"x": 1.0}], "context": {"y": "a"}}),
    ("/v1/models/identity:predict", {"signature_name": "multi", "instances": [
        {"int_tensor": 1, "str_tensor": "a", "float_tensor": 0.5, "dbl_tensor": 1e300}]}),
    ("/v1/models/identity:predict", {"signature_name": "bytes", "inputs": [{"b64": "aGVsbG8="}]}),
    ("/v1/models/identity:predict", {"signature_name": "int64", "inputs": [9223372036854775807]}),
)
SETTINGS = dict(deadline=None, database=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.large_base_example])


def check(response: RawResponse, method: str, target: str) -> None:
    """What every answer must be: no unexpected 5xx; on /v1, JSON, and errors as {"error": "..."}."""
    assert response.status < 500 or response.status in ALLOWED_5XX, (method, target, response)
    if not target.lower().startswith("/v1/"):
        return
    assert response.headers.get("content-type") == "application/json", (method, target, response)
    if method in ("HEAD", "OPTIONS"):
        assert response.body == b""
        return
    body = json.loads(response.body)  # NaN/Infinity tokens allowed, as TF Serving writes them
    assert isinstance(body, dict), (method, target, response)
    if response.status != 200:
        assert list(body) == ["error"] and isinstance(body["error"], str), (method, target, response)


def send(guarded: Guarded, seen: Counter, method: str, target: str, body: bytes = b"",
         headers: dict[str, str] | None = None) -> RawResponse:
    """One raw request, its answer checked and counted in `seen` (by status)."""
    response = raw_request(guarded.server.port, method, target, body,
                           {"Content-Type": "application/json", **(headers or {})})
    check(response, method, target)
    seen[response.status] += 1
    return response


def after_the_storm(guarded: Guarded, seen: Counter, at_least: int) -> None:
    """The end of every test: at least `at_least` answers were checked (the generator ran), the
    server still serves a good request, its memory grew less than RSS_GROWTH_LIMIT since the session
    started, and its log shows no traceback."""
    server = guarded.server
    assert sum(seen.values()) >= at_least, f"only {sum(seen.values())} answers: {dict(seen)}"
    assert server.process.poll() is None, server.log()[-3000:]
    assert predict(server, [[1.0, 2.0], [5.0, 7.0]]) == [[3.0], [6.0]]
    before, after = guarded.rss_at_start, rss_bytes(server.process.pid)
    print(f"\n{sum(seen.values())} hostile requests by status {dict(sorted(seen.items()))}; "
          f"RSS {before / 2**20:.0f} MiB at the session's start -> {after / 2**20:.0f} MiB")
    assert after - before < RSS_GROWTH_LIMIT, f"RSS grew by {(after - before) / 2**20:.0f} MiB"
    assert "Traceback" not in server.log() and "Internal error" not in server.log(), server.log()[-3000:]


def dumps(value: object) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


b64_objects = (st.builds(lambda b: {"b64": base64.b64encode(b).decode()}, st.binary(max_size=8))
               | st.builds(lambda s: {"b64": s}, st.text(max_size=8)))
leaves = (st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats() | st.text(max_size=12)
          | b64_objects)
keys = st.sampled_from(["x", "inputs", "int_tensor", "str_tensor", "b64", "y"]) | st.text(max_size=6)
values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=5)
                      | st.dictionaries(keys, inner, max_size=4), max_leaves=30)
LONG_RUNNING = ("slow", "gated")
signature_names = (st.sampled_from(SIGNATURES) | st.text(max_size=10).filter(lambda s: s not in LONG_RUNNING)
                   | leaves)
requests_json = st.one_of(
    values,
    st.fixed_dictionaries({"instances": values}, optional={"signature_name": signature_names}),
    st.fixed_dictionaries({"inputs": values}, optional={"signature_name": signature_names}),
    st.fixed_dictionaries({"examples": st.lists(st.dictionaries(st.text(max_size=4), values, max_size=3),
                                                max_size=4)},
                          optional={"context": values, "signature_name": signature_names}),
)


def test_random_json_bodies(guarded_server: Guarded) -> None:
    seen: Counter = Counter()

    @settings(max_examples=600, **SETTINGS)
    @given(target=st.sampled_from(TARGETS), request=requests_json, gzipped=st.booleans())
    def one(target: str, request: object, gzipped: bool) -> None:
        body = dumps(request)
        headers = {"Content-Encoding": "gzip"} if gzipped else {}
        send(guarded_server, seen, "POST", target, gzip.compress(body) if gzipped else body, headers)

    one()
    after_the_storm(guarded_server, seen, 300)


mutations = st.lists(st.tuples(st.sampled_from(["flip", "insert", "delete", "duplicate"]),
                               st.integers(0, 10_000), st.binary(min_size=1, max_size=6)),
                     min_size=1, max_size=6)


def mutate(body: bytes, operations: list[tuple[str, int, bytes]]) -> bytes:
    data = bytearray(body)
    for operation, position, chunk in operations:
        at = position % (len(data) + 1)
        if operation == "flip" and data:
            data[at % len(data)] ^= chunk[0] or 1
        elif operation == "insert":
            data[at:at] = chunk
        elif operation == "delete":
            del data[at:at + len(chunk)]
        else:
            data[at:at] = data[at:at + 8 * len(chunk)]
    return bytes(data)


def test_mutated_bodies(guarded_server: Guarded) -> None:
    seen: Counter = Counter()

    @settings(max_examples=600, **SETTINGS)
    @given(seed=st.sampled_from(SEEDS), operations=mutations)
    def one(seed: tuple[str, dict], operations: list) -> None:
        target, request = seed
        send(guarded_server, seen, "POST", target, mutate(dumps(request), operations))

    one()
    after_the_storm(guarded_server, seen, 300)


PCHAR = "abcxyzAZ019-._~!$&'()*+,;=:@"
segments = st.sampled_from(["models", MODEL, "identity", "versions", "labels", "metadata", "stable", "1", "0",
                            "18446744073709551615", "..", "%2F", "%2e%2e%2F", "%00", "%FF%FE", "%ZZ", "%",
                            ":predict", ":classify", ":Predict", "MODELS", ""]) | st.text(PCHAR, max_size=10)
content_types = st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded",
                                 "multipart/form-data; boundary=x", "application/json; charset=latin-1",
                                 "", "*/*", "image/png"]) | st.text(st.characters(min_codepoint=32,
                                                                                   max_codepoint=126),
                                                                    max_size=30)


def test_random_paths_methods_and_content_types(guarded_server: Guarded) -> None:
    seen: Counter = Counter()

    @settings(max_examples=600, **SETTINGS)
    @given(method=st.sampled_from(KNOWN_METHODS), parts=st.lists(segments, max_size=8),
           query=st.sampled_from(["", "?a=1", "?%ZZ", "?x=" + "y" * 2000]), content_type=content_types,
           body=st.sampled_from([b"", b'{"instances": [[1.0, 2.0]]}', b"x" * 100]) | st.binary(max_size=64))
    def one(method: str, parts: list[str], query: str, content_type: str, body: bytes) -> None:
        target = "/v1/" + "/".join(parts) + query
        send(guarded_server, seen, method, target, body, {"Content-Type": content_type})

    one()
    after_the_storm(guarded_server, seen, 300)


NUMBERS = ("1" * 400, "-" + "9" * 5000, "1e400", "-1e-400", "0." + "0" * 3000 + "1",
           "123456789012345678901234567890", "18446744073709551616", "NaN", "-Infinity")
ROWS = (b"1", b"[1,2]", b'"s"', b"[]", b"[[1]]")


SIZE_SIGNATURES = ("", "int_tensor", "int64", "float", "double", "string", "bool", "half")


def sized_body(kind: str, size: int, choice: int) -> bytes:
    """A body built from a small description, so hypothesis reports stay readable."""
    if kind == "nested":
        opener, closer = (b"[", b"]") if choice % 2 else (b'{"a":', b"}")
        return b'{"instances": ' + opener * size + b"1" + closer * size + b"}"
    if kind == "number":
        return b'{"instances": [' + NUMBERS[choice % len(NUMBERS)].encode() + b"]}"
    return b'{"instances": [' + b",".join([ROWS[choice % len(ROWS)]] * size) + b"]}"


def test_huge_numbers_deep_nesting_and_big_arrays(guarded_server: Guarded) -> None:
    seen: Counter = Counter()

    @settings(max_examples=150, **SETTINGS)
    @example(target="/v1/models/identity:predict", signature="float", kind="array", size=170_000, choice=0)
    @example(target=f"/v1/models/{MODEL}:predict", signature="", kind="array", size=120_000, choice=1)
    @example(target=f"/v1/models/{MODEL}:predict", signature="", kind="array", size=350_000, choice=1)
    @example(target=f"/v1/models/{MODEL}:predict", signature="", kind="nested", size=200_000, choice=1)
    @example(target="/v1/models/identity:predict", signature="int64", kind="number", size=0, choice=1)
    @given(target=st.sampled_from([f"/v1/models/{MODEL}:predict", "/v1/models/identity:predict"]),
           signature=st.sampled_from(SIZE_SIGNATURES),
           kind=st.sampled_from(["nested", "number", "array"]), size=st.integers(0, 350_000),
           choice=st.integers(0, 20))
    def one(target: str, signature: str, kind: str, size: int, choice: int) -> None:
        body = sized_body(kind, size, choice)
        if signature:
            body = body[:1] + f'"signature_name": "{signature}", '.encode() + body[1:]
        response = send(guarded_server, seen, "POST", target, body)
        if len(body) > GUARD_MAX_BODY:
            assert response.status == 413

    one()
    after_the_storm(guarded_server, seen, 75)


invalid_utf8 = st.sampled_from([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xf8\x88\x80\x80\x80",
                                b"\x80", b'\\ud800', b'\\udfff\\ud800', b"\x00"])


def test_invalid_utf8(guarded_server: Guarded) -> None:
    seen: Counter = Counter()

    @settings(max_examples=300, **SETTINGS)
    @given(seed=st.sampled_from(SEEDS), bad=invalid_utf8, where=st.integers(0, 10_000),
           in_string=st.booleans())
    def one(seed: tuple[str, dict], bad: bytes, where: int, in_string: bool) -> None:
        target, request = seed
        body = dumps(request)
        if in_string and b'"' in body:
            quotes = [m.start() for m in re.finditer(b'"', body)]
            at = quotes[where % len(quotes)] + 1
        else:
            at = where % (len(body) + 1)
        send(guarded_server, seen, "POST", target, body[:at] + bad + body[at:])

    one()
    after_the_storm(guarded_server, seen, 150)


def test_slow_bodies_get_the_same_answer(guarded_server: Guarded) -> None:
    seen: Counter = Counter()

    @settings(max_examples=12, **SETTINGS)
    @given(seed=st.sampled_from(SEEDS), pieces=st.integers(2, 5), pause=st.floats(0.02, 0.15))
    def one(seed: tuple[str, dict], pieces: int, pause: float) -> None:
        target, request = seed
        body = dumps(request)
        at_once = send(guarded_server, seen, "POST", target, body)
        slowly = raw_request(guarded_server.server.port, "POST", target, body,  # a slow client: pauses
                             {"Content-Type": "application/json"}, pieces=pieces, pause_s=pause)
        check(slowly, "POST", target)
        seen[slowly.status] += 1
        assert (slowly.status, slowly.body) == (at_once.status, at_once.body)

    one()
    after_the_storm(guarded_server, seen, 12)


def test_truncated_bodies_then_a_good_request(guarded_server: Guarded) -> None:
    seen: Counter = Counter()

    @settings(max_examples=40, **SETTINGS)
    @given(seed=st.sampled_from(SEEDS), sent_fraction=st.floats(0, 0.99), extra=st.integers(1, 10**9),
           pause=st.sampled_from([0.0, 0.05]))
    def one(seed: tuple[str, dict], sent_fraction: float, extra: int, pause: float) -> None:
        target, request = seed
        body = dumps(request)
        part = body[: int(len(body) * sent_fraction)]
        truncated_request(guarded_server.server.port, target, part, min(len(body) + extra, GUARD_MAX_BODY),
                          pause)
        good = send(guarded_server, seen, "POST", f"/v1/models/{MODEL}:predict",
                    dumps({"instances": [[1.0, 2.0]]}))
        assert json.loads(good.body) == {"predictions": [[3.0]]}

    one()
    after_the_storm(guarded_server, seen, 20)


def test_stalled_connections_do_not_block_other_clients(guarded_server: Guarded) -> None:
    """300 clients that declare a body and stop sending (slowloris) hold no worker: five good requests
    are answered while every stalled client is still connected and unanswered (with 4 workers, a
    server that gave each a worker could not answer them at all)."""
    seen: Counter = Counter()
    port, stalled = guarded_server.server.port, []
    try:
        for _ in range(300):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(build_request("POST", f"/v1/models/{MODEL}:predict", b"", None, 1000) + b'{"inst')
            stalled.append(sock)
        for _ in range(5):
            body = dumps({"instances": [[1.0, 2.0]]})
            good = send(guarded_server, seen, "POST", f"/v1/models/{MODEL}:predict", body)
            assert json.loads(good.body) == {"predictions": [[3.0]]}
        for sock in stalled:  # still waiting for their bodies: not answered, not dropped
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(1)
    finally:
        for sock in stalled:
            sock.close()
    after_the_storm(guarded_server, seen, 5)
