"""Safe file handling: atomic writes that never clobber on failure, checked reads."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edgecc.errors import InvalidInputError, UsageError

__all__ = [
    "DEFAULT_MAX_INPUT_BYTES",
    "max_input_bytes",
    "check_input_file",
    "read_bytes",
    "atomic_output",
    "atomic_write_bytes",
    "sha256_of",
]

DEFAULT_MAX_INPUT_BYTES = 16 * 1024**3  # 16 GiB: bigger than any edge model


def max_input_bytes() -> int:
    """The size limit for input files (`EDGECC_MAX_INPUT_BYTES` overrides the default)."""
    value = os.environ.get("EDGECC_MAX_INPUT_BYTES")
    if not value:
        return DEFAULT_MAX_INPUT_BYTES
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"EDGECC_MAX_INPUT_BYTES must be an integer, got '{value}'") from None


def check_input_file(path: str | Path, *, what: str = "model file") -> Path:
    """Return `path` if it is a readable, non-empty regular file within the size limit."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{what} '{path}' does not exist", hint="check the path")
    if path.is_dir():
        raise InvalidInputError(f"{what} '{path}' is a directory, expected a file", path=path)
    size = path.stat().st_size
    if size == 0:
        raise InvalidInputError(
            f"{what} '{path}' is empty (0 bytes)", path=path, hint="the file was probably not written completely"
        )
    limit = max_input_bytes()
    if size > limit:
        raise InvalidInputError(
            f"{what} '{path}' is {size} bytes, over the {limit}-byte limit",
            path=path,
            hint="raise EDGECC_MAX_INPUT_BYTES if the file is genuine",
        )
    if not os.access(path, os.R_OK):
        raise InvalidInputError(f"{what} '{path}' is not readable", path=path, hint="check its permissions")
    return path


def read_bytes(path: str | Path, *, what: str = "model file") -> bytes:
    """The content of a checked input file."""
    return check_input_file(path, what=what).read_bytes()


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_output(path: str | Path, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`, on failure delete it.

    An existing file at `path` is only replaced once the new content is complete.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.exists():
        raise UsageError(f"output directory '{parent}' does not exist", hint="create it first")
    if target.is_dir():
        raise UsageError(f"output '{target}' is a directory", hint="give a file name")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or ".tmp", dir=parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with contextlib.suppress(OSError):
            mode = 0o666 & ~_current_umask()
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
