"""Model input/output descriptions (`TensorInfo`), input specs (`--input NAME:DIMS[:DTYPE]`) and non-tensor
arguments (`--arg NAME=VALUE`); sample data is `edgecc.data`."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from edgecc.errors import UsageError

__all__ = [
    "DEFAULT_MAX_TENSOR_BYTES",
    "DTYPES",
    "MAX_DIM",
    "Dim",
    "InputSpec",
    "TensorInfo",
    "parse_arg_value",
    "parse_arg_values",
    "parse_input_spec",
    "parse_input_specs",
    "specs_by_name",
    "check_tensor_size",
    "format_size",
    "max_tensor_bytes",
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

#: the largest dimension an --input may give (ONNX and numpy dims are int64)
MAX_DIM = 2**63 - 1
#: the most bytes one input tensor may need (EDGECC_MAX_TENSOR_BYTES overrides it): refused before allocating
DEFAULT_MAX_TENSOR_BYTES = 16 * 1024**3

_ITEMSIZE = {"float64": 8, "int64": 8, "uint64": 8, "float32": 4, "int32": 4, "uint32": 4, "bool": 1, "int8": 1, "uint8": 1}


def max_tensor_bytes() -> int:
    """The size limit of one input tensor (`EDGECC_MAX_TENSOR_BYTES` overrides DEFAULT_MAX_TENSOR_BYTES)."""
    import os

    value = os.environ.get("EDGECC_MAX_TENSOR_BYTES")
    if not value:
        return DEFAULT_MAX_TENSOR_BYTES
    if not value.isdigit():
        raise UsageError(f"EDGECC_MAX_TENSOR_BYTES must be a whole number of bytes, got '{value}'")
    return int(value)


def format_size(count: int) -> str:
    """`112 GiB`, `5.6 TiB`: a byte count for messages."""
    size = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if size < 1024 or unit == "EiB":
            return f"{size:.0f} {unit}" if unit == "bytes" or size >= 10 else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def check_tensor_size(shape: Iterable[Dim], dtype: str | None, what: str, *, error: type[Exception] = UsageError) -> None:
    """Refuse a tensor of `shape` (dynamic dims count as 1) whose `dtype` elements would pass `max_tensor_bytes()`."""
    elements = 1
    for dim in shape:
        if isinstance(dim, int) and dim > 0:
            elements *= dim
    needed = elements * _ITEMSIZE.get(dtype or "float32", 2)
    limit = max_tensor_bytes()
    if needed > limit:
        raise error(
            f"{what} would need {format_size(needed)} for one {dtype or 'float32'} tensor, over the {format_size(limit)} limit",
            hint="check the dimensions (EDGECC_MAX_TENSOR_BYTES raises the limit)",
        )


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
        for index, dim in enumerate(shape):
            if isinstance(dim, int) and dim > MAX_DIM:
                raise UsageError(f"bad --input '{text}': dimension {index} is {dim}, beyond the int64 range of ONNX shapes")
    name = ":".join(parts)
    if not name or (shape is None and dtype is None):
        raise UsageError(
            f"bad --input '{text}'",
            hint="write NAME:DIMS[:DTYPE], e.g. data:1x3x224x224 or ids:1x128:int64",
        )
    if shape is not None:
        check_tensor_size(shape, dtype, f"--input '{text}'")
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


def parse_arg_value(text: str) -> int | float | bool | str | None:
    """The value of `--arg NAME=VALUE`: None/none/null, true/false (any case), an int, a float, else a string.

    Quotes force a string: `--arg mode="1"` gives the string `1`.
    """
    stripped = text.strip()
    if len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "'\"":
        return stripped[1:-1]
    lowered = stripped.lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(stripped, 0) if not re.fullmatch(r"0[0-9]+", stripped) else int(stripped)
    except ValueError:
        pass
    try:
        return float(stripped)
    except ValueError:
        return text


def parse_arg_values(texts: Iterable[str]) -> tuple[tuple[str, int | float | bool | str | None], ...]:
    """Parse several `--arg NAME=VALUE`; a missing `=`, a bad name or a name given twice is a usage error."""
    values: dict[str, int | float | bool | str | None] = {}
    for text in texts:
        name, sep, value = text.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise UsageError(f"bad --arg '{text}'", hint="write NAME=VALUE, e.g. --arg sr=16000 or --arg use_cache=false")
        if name in values:
            raise UsageError(f"--arg '{name}' is given twice")
        values[name] = parse_arg_value(value)
    return tuple(values.items())
