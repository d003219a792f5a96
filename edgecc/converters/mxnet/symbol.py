"""Reader of MXNet's symbol JSON (`prefix-symbol.json`): nodes, arg_nodes, heads and typed attributes.

Attributes sit under `attrs` (MXNet >= 1.0), `attr` (0.9) or `param` (0.8) and are
strings: "(3,3)", "True", "1e-05", "None".
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgecc.errors import InvalidInputError
from edgecc.fileio import read_bytes

__all__ = ["Attrs", "SymNode", "Symbol", "read_symbol"]

log = logging.getLogger(__name__)


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


def _entry(value: object, path: str, where: str, count: int) -> tuple[int, int]:
    if not isinstance(value, list) or len(value) < 2 or not all(isinstance(v, int) for v in value[:2]):
        raise InvalidInputError(f"{path}: {where}: an input entry must be [node, index, ...], got {value!r}", path=path)
    node, index = value[0], value[1]
    if not 0 <= node < count or index < 0:
        raise InvalidInputError(f"{path}: {where}: input entry {value!r} refers to no node", path=path)
    return node, index


def read_symbol(path: str | Path) -> Symbol:
    """Parse and validate a symbol JSON file (exit 3 on malformed content)."""
    path = str(path)
    data = read_bytes(path, what="MXNet symbol file")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"MXNet symbol file '{path}' is not valid JSON: {exc}", path=path) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list) or "heads" not in doc:
        raise InvalidInputError(f"'{path}' is not an MXNet symbol file: no 'nodes' list and 'heads'", path=path)
    raw_nodes = doc["nodes"]
    nodes: list[SymNode] = []
    for index, raw in enumerate(raw_nodes):
        if not isinstance(raw, dict) or not isinstance(raw.get("op"), str) or not isinstance(raw.get("name"), str):
            raise InvalidInputError(f"{path}: node #{index} has no 'op' and 'name' strings", path=path)
        name = raw["name"]
        values: dict[str, str] = {}
        for key in ("param", "attr", "attrs"):
            extra = raw.get(key) or {}
            if not isinstance(extra, dict):
                raise InvalidInputError(f"{path}: node '{name}': '{key}' is not an object", path=path)
            values.update(extra)
        raw_inputs = raw.get("inputs", [])
        if not isinstance(raw_inputs, list):
            raise InvalidInputError(f"{path}: node '{name}': 'inputs' is not a list", path=path)
        inputs = [_entry(v, path, f"node '{name}'", len(raw_nodes)) for v in raw_inputs]
        if any(source >= index for source, _ in inputs):
            raise InvalidInputError(f"{path}: node '{name}' uses a node defined after it", path=path)
        nodes.append(SymNode(index, raw["op"], name, inputs, Attrs(values, node=name, path=path)))
    heads_raw = doc["heads"]
    if not isinstance(heads_raw, list) or not heads_raw:
        raise InvalidInputError(f"{path}: 'heads' must be a non-empty list", path=path)
    heads = [_entry(v, path, "heads", len(nodes)) for v in heads_raw]
    arg_nodes = doc.get("arg_nodes", [])
    if not isinstance(arg_nodes, list):
        arg_nodes = []
    attrs = doc.get("attrs") or {}
    version = None
    if isinstance(attrs, dict) and isinstance(attrs.get("mxnet_version"), list) and len(attrs["mxnet_version"]) == 2:
        version = attrs["mxnet_version"][1] if isinstance(attrs["mxnet_version"][1], int) else None
    return Symbol(path, nodes, heads, [a for a in arg_nodes if isinstance(a, int)], version)
