"""Request bodies and errors exactly as TensorFlow Serving's REST API reads and reports them.

`parse_json_body` parses like TF Serving's rapidjson (NaN/Infinity tokens, trailing bytes ignored,
rapidjson's error texts and byte offsets); failures are `ServingError`s with TF's canonical code and
message. The helpers that print JSON values inside error messages, and the JSON scalar readers both
tensors (`json_tensor`) and tf.Examples (`examples`) use (`as_float`, `is_b64`, `b64_decode`), live
here too, so every message quotes values the same way. No HTTP, no TensorFlow.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from typing import Any

import numpy as np
import orjson

from pipeline.serving.errors import InvalidArgument, ServingError
from pipeline.serving.rest.float_text import decimal_text

# ---------------------------------------------------------------- text of JSON values in error messages

_DUMP_LIMIT = 256
_FLT_MAX = float(np.finfo(np.float32).max)


def dump_value(value: Any) -> str:
    """A JSON value as TF prints it inside messages: pretty (4-space), at most ~256 characters."""
    if type(value) is float:
        return decimal_text(value, single=abs(value) <= _FLT_MAX)
    try:
        text = json.dumps(value, indent=4, ensure_ascii=False)
    except (RecursionError, ValueError, TypeError):
        text = "[...]" if isinstance(value, list) else "{...}"
    return text if len(text) <= _DUMP_LIMIT else text[:_DUMP_LIMIT] + "..."


def json_type_name(value: Any) -> str:
    """rapidjson's type name of a value, as used in TF messages."""
    if value is None:
        return "Null"
    if value is True or value is False:
        return "True" if value else "False"
    return {dict: "Object", list: "Array", str: "String"}.get(type(value), "Number")


def format_error(doc: Any, message: str) -> ServingError:
    return InvalidArgument(f"JSON Value: {dump_value(doc)} {message}")


# ---------------------------------------------------------------- request body

_JSON_WS = " \t\n\r"
_RAPIDJSON_TEXT = [  # Python json's message prefix -> rapidjson's GetParseError_En text
    ("Expecting property name", "Missing a name for object member."),
    ("Expecting ':'", "Missing a colon after a name of object member."),
    ("Unterminated string", "Missing a closing quotation mark in string."),
    ("Invalid control character", "Invalid encoding in string."),
    ("Invalid \\escape", "Invalid escape character in string."),
    ("Invalid \\u", "Incorrect hex digit after \\u escape in string."),
]
_RAPIDJSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|-?Inf(?!inity)|-NaN')
_TOKEN_FIX = {"Inf": "Infinity", "-Inf": "-Infinity", "-NaN": "NaN"}
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class _TooBig(ValueError):
    def __init__(self, literal: str):
        super().__init__(literal)
        self.literal = literal


def _parse_double(literal: str) -> float:
    number = float(literal)
    if math.isinf(number):
        raise _TooBig(literal)
    return number


def _parse_integer(literal: str) -> int | float:
    """Integers within int64/uint64 stay ints, others become doubles, like rapidjson (and orjson)."""
    if len(literal) < 22 and -(2**63) <= (value := int(literal)) < 2**64:
        return value
    return _parse_double(literal)


_DECODER = json.JSONDecoder(parse_int=_parse_integer, parse_float=_parse_double)


def _parse_error(text: str, message: str, pos: int) -> ServingError:
    offset = len(text[:pos].encode("utf-8", "surrogatepass"))
    return InvalidArgument(f"JSON Parse error: {message} at offset: {offset}")


def _comma_message(text: str, pos: int) -> str:
    """Which container a missing comma belongs to (rapidjson names it, Python's json does not)."""
    stack: list[str] = []
    for match in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', text[:pos]):
        token = match.group(0)
        if token in "[{":
            stack.append(token)
        elif token in "]}" and stack:
            stack.pop()
    if stack and stack[-1] == "{":
        return "Missing a comma or '}' after an object member."
    return "Missing a comma or ']' after an array element."


def _check_surrogates(value: Any, text: str) -> None:
    """Lone \\uD800-style escapes decode in Python but are invalid JSON text for rapidjson and orjson."""
    stack = [value]
    while stack:
        item = stack.pop()
        strings = [item] if isinstance(item, str) else list(item) if isinstance(item, dict) else []
        for string in strings:
            try:
                string.encode("utf-8")
            except UnicodeEncodeError:
                match = _SURROGATE_ESCAPE.search(text)
                raise _parse_error(text, "The surrogate pair in string is invalid.",
                                   match.start() if match else 0) from None
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _parse_slow(body: bytes) -> Any:
    """rapidjson-compatible parse for what orjson refuses: NaN/Inf tokens, trailing bytes, errors."""
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgument(
            f"JSON Parse error: Invalid encoding in string. at offset: {exc.start}") from None
    start = len(text) - len(text.lstrip(_JSON_WS))
    if start == len(text) or text[start] == "\0":  # rapidjson's stream ends at a NUL byte
        raise InvalidArgument(f"JSON Parse error: The document is empty. at offset: {start}")
    if "Inf" in text or "-NaN" in text:
        text = _RAPIDJSON_TOKENS.sub(lambda m: _TOKEN_FIX.get(m.group(0), m.group(0)), text)
    try:
        value, _ = _DECODER.raw_decode(text, start)  # stops after the first value, like rapidjson
    except json.JSONDecodeError as exc:
        message = next((rj for py, rj in _RAPIDJSON_TEXT if exc.msg.startswith(py)), "Invalid value.")
        if exc.msg.startswith("Expecting ','"):
            message = _comma_message(text, exc.pos)
        raise _parse_error(text, message, len(text) if "quotation" in message else exc.pos) from None
    except _TooBig as exc:
        raise _parse_error(text, "Number too big to be stored in double.", text.find(exc.literal)) from None
    except RecursionError:
        return _parse_deep(bytes(body))
    if "\\u" in text:
        _check_surrogates(value, text)
    return value


_TOO_DEEP = "JSON Parse error: The document nests arrays/objects too deeply."
_DEEP_LIMIT = 512  # nesting below a top-level member that the recursive parsers are trusted with
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_TENSOR_KEYS = frozenset({"instances", "inputs", "examples", "context"})


class DeepValue:
    """A top-level member's value nested too deeply to build (rapidjson has no depth limit, so TF
    Serving accepts it): kept as its kind only. It is never a string, so as `signature_name` it
    answers TF's "'signature_name' key must be a string value"."""

    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind


def _parse_deep(body: bytes) -> Any:
    """Parse an object whose member values nest past what a recursive parser can take, without
    recursion: depth is a running sum over the brackets outside strings (numpy, one pass over the
    bytes), each top-level member is cut at the depth-1 commas, shallow values are parsed as usual
    and deep ones become `DeepValue`s. A deep tensor (instances, inputs, examples, context), a deep
    document that is not an object, or unbalanced brackets answer the "nests too deeply" error."""
    outside = np.frombuffer(body, np.uint8).copy()
    for match in _STRING.finditer(body):
        outside[match.start():match.end()] = ord('"')
    step = np.zeros(len(outside), np.int8)
    step[(outside == ord("[")) | (outside == ord("{"))] = 1
    step[(outside == ord("]")) | (outside == ord("}"))] = -1
    depth = np.cumsum(step, dtype=np.int32)
    del step
    start = len(body) - len(body.lstrip(_JSON_WS.encode()))
    if body[start:start + 1] != b"{" or depth.min() < 0:
        raise InvalidArgument(_TOO_DEEP)
    end = int(np.argmax(depth[start:] == 0)) + start  # the closing brace of the top-level object
    if depth[end] != 0:
        raise InvalidArgument(_TOO_DEEP)
    commas = np.flatnonzero((outside[start + 1:end] == ord(",")) & (depth[start + 1:end] == 1)) + start + 1
    result: dict[str, Any] = {}
    for begin, stop in zip([start + 1, *(commas + 1).tolist()], [*commas.tolist(), end], strict=True):
        key_match = _STRING.search(body, begin, stop)
        colon = body.find(b":", key_match.end() if key_match else begin, stop)
        if key_match is None or colon < 0:
            raise InvalidArgument(_TOO_DEEP)
        key = json.loads(key_match.group(0))
        value = body[colon + 1:stop].strip(_JSON_WS.encode())
        if int(depth[colon + 1:stop].max(initial=1)) - 1 <= _DEEP_LIMIT:
            result[key] = _parse_slow(value)
        elif key in _TENSOR_KEYS:
            raise InvalidArgument(_TOO_DEEP)
        else:
            result[key] = DeepValue(chr(value[0]))
    return result


def parse_json_body(body: bytes) -> dict:
    """Parse a request body as TF Serving does, or raise ServingError INVALID_ARGUMENT with TF's text.

    orjson handles the common case; anything it refuses (NaN/Infinity/Inf tokens, trailing bytes after
    the first value, nesting past 1024, errors) goes through a rapidjson-compatible slow path that
    also finds rapidjson's error text and byte offset; members nested past that are `DeepValue`s
    (`_parse_deep`). The top level must be an object.
    """
    if not body:
        raise InvalidArgument("JSON Parse error: The document is empty")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        value = _parse_slow(body)
    if type(value) is not dict:
        raise format_error(value, "Is not object")
    return value


def signature_name_of(request: dict) -> str:
    """The requested signature: '' or absent means 'serving_default'; a non-string is a 400."""
    name = request.get("signature_name", "")
    if type(name) is not str:
        raise InvalidArgument(f"JSON Value: {dump_value(request)} not formatted correctly. "
                       "'signature_name' key must be a string value.")
    return name or "serving_default"


# ---------------------------------------------------------------- JSON scalars shared by tensors and examples

def as_float(value: float) -> float:
    """A JSON number as a Python float; integers beyond float range become +-inf, as rapidjson does."""
    try:
        return float(value)
    except OverflowError:
        return math.copysign(math.inf, value)


def is_b64(value: Any) -> bool:
    """Whether `value` is a `{"b64": "..."}` object, TF Serving's spelling of binary data."""
    return type(value) is dict and len(value) == 1 and type(value.get("b64")) is str


def b64_decode(value: Any) -> bytes:
    """Decode {"b64": "..."} (standard alphabet, padding optional) or raise TF's errors."""
    if not is_b64(value):
        raise InvalidArgument(f"JSON Value: {dump_value(value)} not formatted correctly for base64 data")
    text = value["b64"]
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument("Unable to base64 decode") from None
