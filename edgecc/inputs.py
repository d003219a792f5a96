"""Model input/output descriptions (`TensorInfo`) and input specs (`--input NAME:DIMS[:DTYPE]`); sample data is `edgecc.data`."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from edgecc.errors import UsageError

__all__ = [
    "DTYPES",
    "Dim",
    "InputSpec",
    "TensorInfo",
    "parse_input_spec",
    "parse_input_specs",
    "specs_by_name",
]

Dim = int | str | None

#: dtype names accepted in specs, mapped to numpy dtype names
DTYPES: dict[str, str] = {
    "float32": "float32",
    "float": "float32",
    "fp32": "float32",
    "float16": "float16",
    "half": "float16",
    "fp16": "float16",
    "float64": "float64",
    "double": "float64",
    "bfloat16": "bfloat16",
    "int8": "int8",
    "uint8": "uint8",
    "int16": "int16",
    "uint16": "uint16",
    "int32": "int32",
    "uint32": "uint32",
    "int64": "int64",
    "uint64": "uint64",
    "bool": "bool",
}

_DIM_RE = re.compile(r"[0-9]+|\?|[A-Za-z_][A-Za-z0-9_]*")


def _is_dims(text: str) -> bool:
    return all(_DIM_RE.fullmatch(part) for part in text.split("x"))


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape (ints, symbolic names or None) and numpy dtype name of a model input or output."""

    name: str
    shape: tuple[Dim, ...] | None
    dtype: str

    def shape_text(self) -> str:
        """`1x3x224x224`, with `?` or the symbol for dynamic dims; `?` for unknown rank."""
        if self.shape is None:
            return "?"
        if not self.shape:
            return "scalar"
        return "x".join("?" if d is None else str(d) for d in self.shape)

    def is_static(self) -> bool:
        """True when every dimension is a known integer."""
        return self.shape is not None and all(isinstance(d, int) for d in self.shape)


@dataclass(frozen=True)
class InputSpec:
    """A user's `--input NAME:DIMS[:DTYPE]`: fixes shape and optionally dtype of one input."""

    name: str
    shape: tuple[Dim, ...] | None
    dtype: str | None = None

    def text(self) -> str:
        """The spec as the user would write it."""
        dims = "x".join("?" if d is None else str(d) for d in self.shape) if self.shape is not None else ""
        parts = [self.name] + ([dims] if dims else []) + ([self.dtype] if self.dtype else [])
        return ":".join(parts)

    def is_static(self) -> bool:
        """True when the spec gives an integer for every dimension."""
        return self.shape is not None and all(isinstance(d, int) for d in self.shape)


def _parse_dims(text: str) -> tuple[Dim, ...]:
    dims: list[Dim] = []
    for part in text.split("x"):
        if part.isdigit():
            dims.append(int(part))
        elif part == "?":
            dims.append(None)
        else:
            dims.append(part)
    return tuple(dims)


def parse_input_spec(text: str) -> InputSpec:
    """Parse `NAME:DIMS[:DTYPE]` (NAME may itself contain ':', as TensorFlow's `input:0`)."""
    parts = text.split(":")
    dtype = None
    if len(parts) >= 2 and parts[-1].lower() in DTYPES:
        dtype = DTYPES[parts[-1].lower()]
        parts = parts[:-1]
    shape: tuple[Dim, ...] | None = None
    if len(parts) >= 2 and parts[-1] == "scalar":
        shape = ()
        parts = parts[:-1]
    elif len(parts) >= 2 and _is_dims(parts[-1]):
        if dtype is None and len(parts) >= 3 and "x" in parts[-2] and _is_dims(parts[-2]):
            raise UsageError(f"bad --input '{text}': unknown dtype '{parts[-1]}'", hint=f"dtypes: {', '.join(DTYPES)}")
        shape = _parse_dims(parts[-1])
        parts = parts[:-1]
    name = ":".join(parts)
    if not name or (shape is None and dtype is None):
        raise UsageError(
            f"bad --input '{text}'",
            hint="write NAME:DIMS[:DTYPE], e.g. data:1x3x224x224 or ids:1x128:int64",
        )
    return InputSpec(name=name, shape=shape, dtype=dtype)


def parse_input_specs(texts: Iterable[str]) -> tuple[InputSpec, ...]:
    """Parse several `--input` values; a name given twice is a usage error."""
    specs = tuple(parse_input_spec(t) for t in texts)
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise UsageError(f"--input '{spec.name}' is given twice")
        seen.add(spec.name)
    return specs


def specs_by_name(specs: Iterable[InputSpec]) -> Mapping[str, InputSpec]:
    """Index input specs by name."""
    return {s.name: s for s in specs}
