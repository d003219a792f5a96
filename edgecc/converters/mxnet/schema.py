"""What MXNet's files hold: the symbol graph (nodes, heads, typed attributes) and the arrays of a `.params` file.

Attributes sit under `attrs` (MXNet >= 1.0), `attr` (0.9) or `param` (0.8) and are
strings: "(3,3)", "True", "1e-05", "None". Files are recognised here from their first
bytes (cheap, no parsing); `reader.py` reads them.
"""

from __future__ import annotations

import mmap
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgecc.errors import InvalidInputError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "LIST_MAGIC",
    "PARAMS_RE",
    "SYMBOL_SUFFIX",
    "Attrs",
    "ParamFile",
    "SymNode",
    "Symbol",
    "looks_like_params",
    "looks_like_symbol",
]

LIST_MAGIC = 0x112  # kMXAPINDArrayListMagic, the first 8 bytes of a `.params` file
SYMBOL_SUFFIX = "-symbol.json"
#: `prefix-NNNN.params`
PARAMS_RE = re.compile(r"^(?P<prefix>.*)-(?P<epoch>[0-9]{4})\.params$")


class Attrs:
    """String attributes of one node with typed getters (errors name the file and node)."""

    def __init__(self, values: dict[str, str], *, node: str, path: str) -> None:
        self.values = {str(k): str(v) for k, v in values.items()}
        self.node = node
        self.path = path

    def _bad(self, key: str, expected: str) -> InvalidInputError:
        return InvalidInputError(
            f"{self.path}: node '{self.node}': attribute {key}='{self.values.get(key)}' is not {expected}", path=self.path
        )

    def has(self, key: str) -> bool:
        """True when the attribute is set and not 'None'."""
        return key in self.values and self.values[key].strip() not in ("None", "")

    def str(self, key: str, default: str = "") -> str:
        """The raw string (lower-case not applied)."""
        return self.values[key].strip() if self.has(key) else default

    def int(self, key: str, default: int = 0) -> int:
        """An integer attribute."""
        if not self.has(key):
            return default
        try:
            return int(float(self.values[key]))
        except ValueError:
            raise self._bad(key, "an integer") from None

    def float(self, key: str, default: float = 0.0) -> float:
        """A float attribute."""
        if not self.has(key):
            return default
        try:
            return float(self.values[key])
        except ValueError:
            raise self._bad(key, "a number") from None

    def bool(self, key: str, default: bool = False) -> bool:
        """A boolean attribute ('True', 'false', '1', '0')."""
        if not self.has(key):
            return default
        text = self.values[key].strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise self._bad(key, "a boolean")

    def ints(self, key: str, default: Sequence[int] = ()) -> tuple[int, ...]:
        """A tuple of integers: '(3,3)', '[1, 2]', '3' (a single value)."""
        return tuple(0 if v is None else v for v in self.opt_ints(key, default))

    def opt_ints(self, key: str, default: Sequence[int | None] = ()) -> tuple[int | None, ...]:
        """A tuple of integers where entries may be None: '(None, 2)'."""
        if not self.has(key):
            return tuple(default)
        text = self.values[key].strip().strip("()[]")
        out: list[int | None] = []
        for part in text.split(","):
            part = part.strip().rstrip("L")
            if not part:
                continue
            if part == "None":
                out.append(None)
                continue
            try:
                out.append(int(float(part)))
            except ValueError:
                raise self._bad(key, "a tuple of integers") from None
        return tuple(out)


@dataclass
class SymNode:
    """One node of the symbol graph."""

    index: int
    op: str
    name: str
    inputs: list[tuple[int, int]]
    attrs: Attrs

    @property
    def is_var(self) -> bool:
        """True for variables (inputs, weights, auxiliary states)."""
        return self.op == "null"


@dataclass
class Symbol:
    """A parsed symbol file."""

    path: str
    nodes: list[SymNode]
    heads: list[tuple[int, int]]
    arg_nodes: list[int] = field(default_factory=list)
    version: int | None = None

    def consumers(self) -> dict[int, list[tuple[SymNode, int]]]:
        """node index -> (consumer, input position) pairs."""
        out: dict[int, list[tuple[SymNode, int]]] = {}
        for node in self.nodes:
            for position, (source, _) in enumerate(node.inputs):
                out.setdefault(source, []).append((node, position))
        return out


@dataclass
class ParamFile:
    """The arrays of a `.params` file: `arg` (weights) and `aux` (running statistics) by name."""

    path: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)  # name -> "arg" / "aux" / ""
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (file offset, bytes)
    buffer: np.memmap | None = None

    def nbytes(self) -> int:
        """Total bytes of all arrays."""
        return sum(int(a.nbytes) for a in self.arrays.values())

    def release(self, name: str) -> None:
        """Drop the mapped pages of one array from memory once copied (they reload from the file if read again)."""
        span = self.spans.get(name)
        handle = getattr(self.buffer, "_mmap", None)
        if span is None or handle is None or not hasattr(handle, "madvise"):
            return
        start, length = span
        first = start - start % mmap.PAGESIZE
        if length < mmap.PAGESIZE:
            return
        try:
            handle.madvise(mmap.MADV_DONTNEED, first, start + length - first)
        except (OSError, ValueError):  # advice only
            pass


def _head(path: Path, size: int) -> bytes | None:
    """The first `size` bytes of a file (None when it is not a readable file)."""
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except OSError:
        return None


def looks_like_symbol(path: Path) -> bool:
    """A JSON file whose beginning has the `nodes` (and `op`, or the -symbol.json name) of a symbol."""
    head = _head(path, 4096) if path.suffix == ".json" else None
    return head is not None and b'"nodes"' in head and (b'"op"' in head or path.name.endswith(SYMBOL_SUFFIX))


def looks_like_params(path: Path) -> bool:
    """A file that starts with the NDArray-list magic."""
    return _head(path, 8) == LIST_MAGIC.to_bytes(8, "little")
