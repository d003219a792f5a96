"""Protocol-buffer wire format primitives for frontends that sniff or stream protobuf files without a schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from edgecc.errors import InvalidInputError

__all__ = ["WireTruncated", "WireInvalid", "read_varint", "parse_message"]

M = TypeVar("M")


class WireTruncated(ValueError):
    """The buffer ends inside a varint or a field."""


class WireInvalid(ValueError):
    """The bytes are not a valid protobuf encoding."""


def read_varint(data: bytes | memoryview, pos: int, end: int | None = None) -> tuple[int, int]:
    """Decode the base-128 varint at `pos`; returns (value, position after it)."""
    end = len(data) if end is None else end
    result = shift = 0
    while True:
        if pos >= end:
            raise WireTruncated("a varint runs past the end of its message")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireInvalid("a varint is longer than 10 bytes")


def parse_message(message: M, data: bytes, *, path: str | Path, what: str, hint: str) -> M:
    """Parse `data` into the protobuf `message`; a decode failure is an InvalidInputError naming file and format."""
    from google.protobuf.message import DecodeError

    parse: Any = message.ParseFromString  # type: ignore[attr-defined]
    try:
        parse(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise InvalidInputError(
            f"'{path}' is not a valid {what}: protobuf parse failed ({exc or 'truncated or corrupt data'})",
            path=path,
            hint=hint,
        ) from None
    return message
