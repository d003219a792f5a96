"""Input specs (`NAME:DIMS[:DTYPE]`), tensor data files (`NAME=FILE`) and deterministic sample inputs."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgecc.errors import InvalidInputError, UsageError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "DTYPES",
    "Dim",
    "InputSpec",
    "TensorInfo",
    "parse_input_spec",
    "parse_input_specs",
    "load_data_args",
    "concrete_shape",
    "random_feeds",
    "match_samples",
    "load_array_file",
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


def load_array_file(path: Path) -> "np.ndarray | dict[str, np.ndarray]":
    """An .npy array or the arrays of an .npz (by key), read without pickle; bad files are InvalidInputError."""
    import numpy as np

    from edgecc.fileio import check_input_file

    check_input_file(path, what="data file")
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise InvalidInputError(
                f"data file '{path}' holds pickled Python objects, which edgecc never loads",
                path=path,
                hint="save plain arrays with numpy.save / numpy.savez",
            ) from None
        raise InvalidInputError(f"data file '{path}' is not a valid .npy/.npz file: {exc}", path=path) from None
    except (OSError, EOFError) as exc:
        raise InvalidInputError(f"data file '{path}' cannot be read as .npy/.npz: {exc}", path=path) from None
    except Exception as exc:  # zipfile.BadZipFile and friends from a corrupt .npz
        raise InvalidInputError(f"data file '{path}' is corrupt: {exc}", path=path) from None
    if isinstance(loaded, np.ndarray):
        return loaded
    try:
        with loaded:
            return {key: loaded[key] for key in loaded.files}
    except Exception as exc:
        raise InvalidInputError(f"data file '{path}' is corrupt: {exc}", path=path) from None


def _natural_key(path: Path) -> list[object]:
    """Sort s2.npy before s10.npy."""
    return [int(part) if part.isdigit() else part for part in re.split(r"([0-9]+)", path.name)]


def _samples_from_path(path: Path, name: str | None) -> list[dict[str, "np.ndarray"]]:
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.suffix in (".npy", ".npz")), key=_natural_key)
        if not files:
            raise InvalidInputError(f"data directory '{path}' holds no .npy or .npz files", path=path)
        samples: list[dict[str, np.ndarray]] = []
        for file in files:
            samples.extend(_samples_from_path(file, name))
        return samples
    loaded = load_array_file(path)
    if isinstance(loaded, dict):
        if name is not None:
            if name not in loaded:
                raise InvalidInputError(
                    f"data file '{path}' has no array '{name}' (it has: {', '.join(loaded) or 'none'})", path=path
                )
            return [{name: loaded[name]}]
        return [loaded]
    return [{name or "": loaded}]


def load_data_args(texts: Sequence[str]) -> list[dict[str, "np.ndarray"]]:
    """Read `--data NAME=FILE` / `--data FILE.npz` / `--data DIR` values into a list of samples.

    One sample is a dict input name -> array; a nameless `.npy` is keyed by "" and
    bound to the model's only input later. Several `NAME=FILE` options merge into
    the same samples.
    """
    per_option: list[list[dict[str, np.ndarray]]] = []
    for text in texts:
        name, sep, file_text = text.partition("=")
        if not sep:
            name, file_text = None, text
        elif not name:
            raise UsageError(f"bad --data '{text}'", hint="write NAME=FILE.npy, FILE.npz or a directory")
        per_option.append(_samples_from_path(Path(file_text), name))
    if not per_option:
        return []
    count = max(len(samples) for samples in per_option)
    merged: list[dict[str, np.ndarray]] = [dict() for _ in range(count)]
    for samples in per_option:
        if len(samples) not in (1, count):
            raise UsageError("--data options hold different numbers of samples", hint="give one file per input, or directories of equal size")
        for index in range(count):
            merged[index].update(samples[index if len(samples) == count else 0])
    return merged


def match_samples(samples: list[dict[str, "np.ndarray"]], inputs: Sequence[TensorInfo]) -> list[dict[str, "np.ndarray"]]:
    """Bind user samples to model inputs: check names, shapes and cast dtypes."""
    import numpy as np

    names = [i.name for i in inputs]
    bound: list[dict[str, np.ndarray]] = []
    for sample in samples:
        feed: dict[str, np.ndarray] = {}
        for key, value in sample.items():
            if key == "":
                if len(inputs) != 1:
                    raise UsageError(
                        "a nameless --data file needs a single-input model",
                        hint=f"write NAME=FILE with NAME in {', '.join(names)}",
                    )
                key = names[0]
            if key not in names:
                raise UsageError(f"--data names '{key}', which is not a model input (inputs: {', '.join(names)})")
            feed[key] = value
        missing = [n for n in names if n not in feed]
        if missing:
            raise UsageError(f"--data gives no value for input(s) {', '.join(missing)}")
        for info in inputs:
            value = feed[info.name]
            if info.shape is not None:
                if len(info.shape) != value.ndim or any(
                    isinstance(d, int) and d != s for d, s in zip(info.shape, value.shape)
                ):
                    raise UsageError(
                        f"--data for '{info.name}' has shape {'x'.join(map(str, value.shape))}, the model expects {info.shape_text()}"
                    )
            feed[info.name] = np.ascontiguousarray(value.astype(info.dtype, copy=False))
        bound.append(feed)
    return bound


def concrete_shape(info: TensorInfo, *, default_dim: int = 1) -> tuple[int, ...]:
    """The shape with every dynamic dimension replaced by `default_dim`."""
    if info.shape is None:
        raise UsageError(
            f"input '{info.name}' has unknown rank",
            hint=f"fix it with --input {info.name}:DIMS",
        )
    return tuple(d if isinstance(d, int) and d >= 0 else default_dim for d in info.shape)


def random_feeds(inputs: Sequence[TensorInfo], *, seed: int = 0, count: int = 1) -> list[dict[str, "np.ndarray"]]:
    """Deterministic sample inputs: standard normal floats, small non-negative integers, random bools."""
    import numpy as np

    rng = np.random.default_rng(seed)
    samples: list[dict[str, np.ndarray]] = []
    for _ in range(count):
        feed: dict[str, np.ndarray] = {}
        for info in inputs:
            shape = concrete_shape(info)
            dtype = np.dtype(info.dtype) if info.dtype != "bfloat16" else np.dtype("float32")
            if dtype.kind == "f":
                value = rng.standard_normal(shape).astype(dtype)
            elif dtype.kind == "b":
                value = rng.integers(0, 2, shape).astype(bool)
            elif dtype.kind in "iu":
                info_range = np.iinfo(dtype)
                value = rng.integers(0, min(10, int(info_range.max)) + 1, shape).astype(dtype)
            else:
                raise UsageError(f"cannot make sample data for input '{info.name}' of dtype {info.dtype}", hint="give --data")
            feed[info.name] = value
        samples.append(feed)
    return samples


def specs_by_name(specs: Iterable[InputSpec]) -> Mapping[str, InputSpec]:
    """Index input specs by name."""
    return {s.name: s for s in specs}
