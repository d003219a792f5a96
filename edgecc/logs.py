"""Keeping third-party noise off the user's terminal without touching the application's logging setup.

edgecc never changes the root logger's level or handlers. Libraries that log through their own loggers are
quietened per logger (`quiet_loggers`); those that log through the root logger's module functions
(onnxruntime.quantization's `logging.warning(...)`) are filtered by where the record comes from
(`quiet_root_records`); native code that writes to file descriptor 2 (the TFLite interpreter's XNNPACK INFO line)
is captured and only what is not known noise is passed on as a warning (`native_stderr`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["NATIVE_NOISE", "captured_records", "native_stderr", "quiet_loggers", "quiet_root_records"]

log = logging.getLogger(__name__)

#: native log lines that are known to be noise (informational lines of TFLite and TensorFlow's C++ runtime)
NATIVE_NOISE: tuple[str, ...] = (
    r"^INFO: ",
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
    r"^[IW]\d{4} [0-9:. ]+\d+ \S+\] ",  # absl INFO/WARNING lines
)


@contextlib.contextmanager
def quiet_loggers(*names: str, level: int = logging.ERROR) -> Iterator[None]:
    """Raise the named loggers to at least `level` while the block runs, then restore their levels.

    Per logger only: the root logger is refused, since a library must leave it to the application.
    """
    if any(name in ("", "root") for name in names):
        raise ValueError("quiet_loggers never changes the root logger: name the library's own loggers")
    loggers = [logging.getLogger(name) for name in names]
    saved = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(level, logger.level))
    try:
        yield
    finally:
        for logger, old in zip(loggers, saved):
            logger.setLevel(old)


class _Collect(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record)


@contextlib.contextmanager
def captured_records(name: str) -> Iterator[list[logging.LogRecord]]:
    """Keep what the logger `name` (and its children) logs during the block in a list instead of printing it.

    For libraries that log a traceback before raising (torch.export.load): the caller turns the exception into one
    line and may use the records. The logger's handlers, level and propagation are restored after; never the root.
    """
    if name in ("", "root"):
        raise ValueError("captured_records never touches the root logger: name the library's own logger")
    logger = logging.getLogger(name)
    records: list[logging.LogRecord] = []
    saved = logger.handlers[:], logger.propagate
    logger.handlers = [_Collect(records)]  # the library may have its own stderr handler on this logger (torch does)
    logger.propagate = False
    try:
        yield records
    finally:
        logger.handlers, logger.propagate = saved


class _FromPackages(logging.Filter):
    """Drops records below `level` that were logged on the root logger from code inside the given packages."""

    def __init__(self, packages: Sequence[str], level: int) -> None:
        super().__init__()
        self.level = level
        self.folders: list[str] = []
        for package in packages:
            module = sys.modules.get(package)
            origin = getattr(module, "__file__", None) if module else None
            if origin:
                self.folders.append(str(Path(origin).parent) + os.sep)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level or not any(record.pathname.startswith(f) for f in self.folders)


@contextlib.contextmanager
def quiet_root_records(*packages: str, level: int = logging.ERROR) -> Iterator[None]:
    """While the block runs, records below `level` that the (imported) `packages` log through the root logger are dropped.

    The root logger's level and handlers stay as they are; the packages' own named loggers are quietened too.
    """
    root = logging.getLogger()
    record_filter = _FromPackages(packages, level)
    root.addFilter(record_filter)
    try:
        with quiet_loggers(*packages, level=level):
            yield
    finally:
        root.removeFilter(record_filter)


@contextlib.contextmanager
def native_stderr(logger: logging.Logger, *, noise: Sequence[str] = NATIVE_NOISE) -> Iterator[None]:
    """Capture what native code writes to file descriptor 2 during the block; lines that are not `noise` go to `logger`.

    Without a usable descriptor 2 (some embedding hosts) the block runs uncaptured.
    """
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    patterns = [re.compile(p) for p in noise]
    with tempfile.TemporaryFile(mode="w+b") as capture:
        sys.stderr.flush()
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", "replace")
            for line in text.splitlines():
                if line.strip() and not any(p.search(line) for p in patterns):
                    logger.warning("%s", line.rstrip())
