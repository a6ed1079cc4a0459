"""How TF Serving lays out and escapes its JSON answers (whitespace, raw string bytes, errors).

Leaf helpers for `json_tensor`, `examples` and `app`: rapidjson's PrettyWriter start of predict,
classify and regress answers, protobuf's printer with whitespace for status and metadata,
`{ "error": "..." }`, and string bytes copied as rapidjson copies them.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_ESCAPES = {0x22: b'\\"', 0x5C: b"\\\\", 0x08: b"\\b", 0x0C: b"\\f", 0x0A: b"\\n", 0x0D: b"\\r",
            0x09: b"\\t"}


def raw_json_string(data: bytes) -> bytes:
    """`data` as a JSON string the way rapidjson's Writer writes it: quotes, backslashes and control
    characters escaped, every other byte (invalid UTF-8 included) copied as it is."""
    out = bytearray(b'"')
    for byte in data:
        escape = _ESCAPES.get(byte)
        if escape is not None:
            out += escape
        elif byte < 0x20:
            out += b"\\u00%02X" % byte
        else:
            out.append(byte)
    out += b'"'
    return bytes(out)


def pretty_top_level(key: str, value: bytes) -> bytes:
    """`{"key": value}` laid out as TF Serving's rapidjson PrettyWriter starts its answers: the key on
    its own line, indented 4 spaces (the value itself written compactly)."""
    return b'{\n    "' + key.encode() + b'": ' + value + b"\n}"



def error_body(message: str) -> bytes:
    """b'{ "error": "..." }' (TF Serving's spacing), correctly escaped; text that is not valid Unicode
    is replaced, never fatal."""
    return b'{ "error": ' + orjson.dumps(message.encode("utf-8", "replace").decode("utf-8")) + b" }"


def pretty_proto_json(obj: Any) -> bytes:
    """A proto's JSON dict as protobuf's printer writes it with `add_whitespace` (TF Serving's status
    and metadata answers): one-space indentation, `": "` and `,` separators, a final newline."""
    return (json.dumps(obj, indent=1, ensure_ascii=False, allow_nan=True) + "\n").encode()
