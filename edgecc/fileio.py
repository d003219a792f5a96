"""Safe file handling: atomic writes that never clobber on failure, checked reads."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from edgecc.errors import InvalidInputError, UsageError

__all__ = [
    "DEFAULT_MAX_INPUT_BYTES",
    "max_input_bytes",
    "check_input_file",
    "resolve_named_path",
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
    try:
        info = path.stat()
    except FileNotFoundError:
        raise UsageError(f"{what} '{path}' does not exist", hint="check the path") from None
    except OSError as exc:  # a symlink loop (ELOOP), a name too long, a path through a non-directory
        raise InvalidInputError(f"{what} '{path}' cannot be opened: {_reason(exc)}", path=path) from None
    if stat.S_ISDIR(info.st_mode):
        raise InvalidInputError(f"{what} '{path}' is a directory, expected a file", path=path)
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInputError(
            f"{what} '{path}' is not a regular file (a device, pipe or socket)",
            path=path,
            hint="inputs must be regular files",
        )
    size = info.st_size
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


def resolve_named_path(base: str | Path, name: object, *, named_in: str | Path, what: str = "file") -> Path:
    """The file that `named_in` (a model or manifest file) names as `name`, relative to the folder `base`.

    Refused (InvalidInputError, exit 3): a name that is not a non-empty string, absolute, with `..` or a
    backslash, not valid UTF-8 (surrogate escapes), whose real path (symbolic links resolved) leaves `base`,
    that loops, or that is not a regular file. A missing file is returned as is: the caller says what is missing.
    """
    where = f"'{named_in}'"
    if isinstance(name, bytes):  # protobuf hands over a string field that is not valid UTF-8 as bytes
        try:
            name = name.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInputError(f"{where}: {what} {name!r:.80} is not valid UTF-8", path=named_in) from None
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"{where}: {what} {name!r:.80} is not a file name", path=named_in)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(f"{where}: {what} {name!r:.80} is not valid UTF-8", path=named_in) from None
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or "\\" in name or "\0" in name or re.match(r"^[A-Za-z]:", name):
        raise InvalidInputError(
            f"{where}: {what} '{name}' is absolute or climbs out with '..': outside its folder", path=named_in
        )
    folder = Path(base)
    candidate = folder / Path(*pure.parts)
    try:
        real = candidate.resolve(strict=False)
        root = folder.resolve(strict=True)
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop on Python < 3.13
        raise InvalidInputError(f"{where}: {what} '{name}' cannot be resolved ({_reason(exc)})", path=named_in) from None
    if not real.is_relative_to(root) or real == root:
        raise InvalidInputError(
            f"{where}: {what} '{name}' resolves to '{real}', outside the folder '{root}' (through a symbolic link)",
            path=named_in,
            hint="keep the files it names inside its folder, without links that leave it",
        )
    if not os.path.lexists(candidate):
        return candidate
    try:
        info = real.stat()
    except FileNotFoundError:
        raise InvalidInputError(f"{where}: {what} '{name}' is a dangling symbolic link", path=named_in) from None
    except OSError as exc:
        raise InvalidInputError(f"{where}: {what} '{name}' cannot be opened: {exc.strerror or exc}", path=named_in) from None
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInputError(f"{where}: {what} '{name}' is not a regular file", path=named_in)
    return real


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP:
        return "a loop of symbolic links"
    return getattr(exc, "strerror", None) or str(exc)


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
