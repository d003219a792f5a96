"""Broken zip archives made in tests: a member whose deflate stream is corrupt, one with an unknown compression method."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

_LOCAL = b"PK\x03\x04"
_CENTRAL = b"PK\x01\x02"


def _local_header(data: bytes, name: str) -> tuple[int, int]:
    """Offset of `name`'s local header and of its (compressed) data."""
    raw = name.encode()
    at = 0
    while (at := data.find(_LOCAL, at)) >= 0:
        name_len, extra_len = struct.unpack_from("<HH", data, at + 26)
        if data[at + 30 : at + 30 + name_len] == raw:
            return at, at + 30 + name_len + extra_len
        at += 4
    raise AssertionError(f"no member {name}")


def corrupt_deflate(path: Path, member: str) -> Path:
    """Make `member`'s deflate stream start with a reserved block type: zlib.error on reading it."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo(member).compress_type == zipfile.ZIP_DEFLATED
    _, start = _local_header(bytes(data), member)
    data[start] = 0x07  # BFINAL=1, BTYPE=11 (reserved): "invalid block type"
    path.write_bytes(bytes(data))
    return path


def unknown_compression(path: Path, member: str, method: int = 99) -> Path:
    """Set `member`'s compression method to `method` (99: AES, which zipfile does not implement) in both headers."""
    data = bytearray(path.read_bytes())
    local, _ = _local_header(bytes(data), member)
    struct.pack_into("<H", data, local + 8, method)
    raw = member.encode()
    at = 0
    while (at := data.find(_CENTRAL, at)) >= 0:
        name_len = struct.unpack_from("<H", data, at + 28)[0]
        if bytes(data[at + 46 : at + 46 + name_len]) == raw:
            struct.pack_into("<H", data, at + 10, method)
        at += 4
    path.write_bytes(bytes(data))
    return path
