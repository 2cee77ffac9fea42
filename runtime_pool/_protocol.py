"""Frames between the pool and its worker processes.

A frame is an 8-byte prefix (header length, payload length; big-endian), a
JSON header (a dict with at least ``"op"``) and an opaque payload (JSON text of
a value, passed through without re-parsing). Pure functions, no I/O.
"""

from __future__ import annotations

import json
import struct
from typing import Any

__all__ = (
    "MAX_MESSAGE",
    "MAX_STACK",
    "PREFIX_SIZE",
    "clip",
    "decode_header",
    "decode_prefix",
    "decode_prefix_from",
    "encode",
    "frame_limit",
)

_PREFIX = struct.Struct("!II")
PREFIX_SIZE = _PREFIX.size
MAX_MESSAGE = 8192  # characters of an error message crossing the boundary (as in _glue.js)
MAX_STACK = 16384
_MARKER = "...[truncated]"
_HEADER = json.JSONEncoder(separators=(",", ":"))  # made once: json.dumps makes one a call


def frame_limit(max_value_bytes: int, max_log_chars: int, max_log_lines: int) -> int:
    """The largest frame a worker may send under these caps.

    The glue caps a value at ``max_value_bytes`` characters (up to 3 bytes each in
    UTF-8, escapes included) and console output at ``max_log_chars`` characters
    (up to 6 bytes each once escaped into a JSON header), plus a little per line.
    """
    return 4 * max_value_bytes + 6 * max_log_chars + 16 * max_log_lines + 2**20


def clip(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` cut to ``limit`` characters, with a marker when it was cut."""
    return text if len(text) <= limit else text[:limit] + _MARKER


def encode(header: dict[str, Any], payload: bytes = b"") -> bytes:
    """Return one frame holding ``header`` and ``payload``."""
    head = _HEADER.encode(header).encode()
    return _PREFIX.pack(len(head), len(payload)) + head + payload


def decode_prefix(prefix: bytes) -> tuple[int, int]:
    """Return (header length, payload length) from a frame's prefix."""
    head_len, payload_len = _PREFIX.unpack(prefix)
    return head_len, payload_len


def decode_prefix_from(data: bytes | bytearray) -> tuple[int, int]:
    """Return (header length, payload length) from the prefix at the start of ``data``."""
    head_len, payload_len = _PREFIX.unpack_from(data)
    return head_len, payload_len


def decode_header(head: bytes | bytearray) -> dict[str, Any]:
    """Return the header dict of a frame."""
    header = json.loads(head)
    if not isinstance(header, dict) or "op" not in header:
        raise ValueError("malformed frame header")
    return header
