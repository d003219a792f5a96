"""Reading members of untrusted zip archives: size caps, a compression-ratio bound, and one error for any corruption.

Every member is streamed with a running byte count (the sizes a zip declares are never trusted): it may not
inflate beyond the caller's `limit`, nor beyond `max_compression_ratio()` times its compressed size once it is
past `RATIO_FREE_BYTES` (small members may compress well without being a bomb). Corrupt data, unsupported or
encrypted compression and CRC failures are InvalidInputError (exit 3) naming the archive and the member.
"""

from __future__ import annotations

import contextlib
import os
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from edgecc.errors import InvalidInputError, UsageError

__all__ = [
    "DEFAULT_MAX_COMPRESSION_RATIO",
    "RATIO_FREE_BYTES",
    "copy_member",
    "max_compression_ratio",
    "read_member",
    "zip_errors",
]

DEFAULT_MAX_COMPRESSION_RATIO = 200  # deflate reaches ~1030:1 on zeros; real weights and arrays stay far below 200:1
RATIO_FREE_BYTES = 1 << 20  # members up to 1 MiB are not held to the ratio
_CHUNK = 1 << 20


def max_compression_ratio() -> float:
    """The bound on uncompressed/compressed size of an archive member (`EDGECC_MAX_COMPRESSION_RATIO` overrides it)."""
    value = os.environ.get("EDGECC_MAX_COMPRESSION_RATIO")
    if not value:
        return float(DEFAULT_MAX_COMPRESSION_RATIO)
    try:
        ratio = float(value)
    except ValueError:
        ratio = 0.0
    if not 1.0 <= ratio < float("inf"):
        raise UsageError(f"EDGECC_MAX_COMPRESSION_RATIO must be a number of at least 1, got '{value}'")
    return ratio


@contextlib.contextmanager
def zip_errors(archive: str | Path, what: str) -> Iterator[None]:
    """Turn what zipfile/zlib raise on a corrupt archive into InvalidInputError naming `what` and `archive`."""
    try:
        yield
    except NotImplementedError as exc:  # a compression method zipfile does not know
        raise InvalidInputError(f"{what} '{archive}' uses an unsupported compression: {exc}", path=archive) from None
    except RuntimeError as exc:  # "File ... is encrypted, password required for extraction"
        raise InvalidInputError(f"{what} '{archive}' cannot be read: {exc}", path=archive) from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise InvalidInputError(f"{what} '{archive}' is corrupt: {detail}", path=archive) from None


def _ratio_limit(info: zipfile.ZipInfo) -> float:
    return max(float(RATIO_FREE_BYTES), max_compression_ratio() * max(info.compress_size, 1))


def _stream(zf: zipfile.ZipFile, info: zipfile.ZipInfo, sink: BinaryIO, *, limit: int, archive: Path, what: str) -> int:
    """Copy one member into `sink`, refusing it as soon as it passes `limit` or the ratio bound; the bytes copied."""
    ratio_limit = _ratio_limit(info)
    if info.file_size > limit:
        raise InvalidInputError(
            f"{what} '{archive}': member '{info.filename}' is {info.file_size} bytes, over its {limit}-byte limit", path=archive
        )
    if info.file_size > ratio_limit:
        raise InvalidInputError(
            f"{what} '{archive}': member '{info.filename}' expands {info.file_size / max(info.compress_size, 1):.0f}:1, "
            f"over the {max_compression_ratio():g}:1 bound (a zip bomb?)",
            path=archive,
            hint="raise EDGECC_MAX_COMPRESSION_RATIO if the archive is genuine",
        )
    copied = 0
    with zip_errors(archive, what), zf.open(info) as src:
        while chunk := src.read(_CHUNK):
            copied += len(chunk)
            if copied > limit or copied > ratio_limit:
                raise InvalidInputError(
                    f"{what} '{archive}': member '{info.filename}' inflates beyond "
                    f"{'its ' + str(limit) + '-byte limit' if copied > limit else 'the compression-ratio bound'}",
                    path=archive,
                )
            sink.write(chunk)
    return copied


def copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, *, limit: int, archive: Path, what: str) -> int:
    """Write member `info` to the file `target` (created with its folders); the bytes written."""
    with zip_errors(archive, what):  # a member named like a folder of another one cannot be written
        target.parent.mkdir(parents=True, exist_ok=True)
        sink = open(target, "wb")
    with sink:
        return _stream(zf, info, sink, limit=limit, archive=archive, what=what)


def read_member(zf: zipfile.ZipFile, name: str, *, limit: int, archive: Path, what: str) -> bytes:
    """The content of member `name`, held to `limit` and the ratio bound."""
    import io

    with zip_errors(archive, what):
        info = zf.getinfo(name)
    sink = io.BytesIO()
    _stream(zf, info, sink, limit=limit, archive=archive, what=what)
    return sink.getvalue()
