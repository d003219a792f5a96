"""init_net fill operators -> initializer values (numpy arrays, with Int8 scales and zero points)."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecc.converters.caffe2.graph import Op, OpInvalid, OpUnsupported, Quant
from edgecc.converters.caffe2.schema import DATA_TYPES
from edgecc.registry import Registry

__all__ = ["FILLS", "RANDOM_FILLS", "Blob", "NeedsRandomWeights", "run_fill"]

log = logging.getLogger(__name__)

_MAX_FILL_ELEMENTS = 1 << 33  # ConstantFill/random fills: refuse absurd shapes from corrupt files


@dataclass
class Blob:
    """A tensor filled by the init_net."""

    value: np.ndarray
    quant: Quant | None = None


FILLS: Registry[Callable[[Op, bool], Blob]] = Registry("Caffe2 fill operator")
RANDOM_FILLS = ("XavierFill", "GaussianFill", "UniformFill", "MSRAFill")


def _shape(op: Op) -> tuple[int, ...]:
    shape = op.ints("shape", [])
    assert shape is not None
    extra = op.ints("extra_shape", []) or []
    dims = tuple(shape) + tuple(extra)
    if any(d < 0 for d in dims):
        raise OpInvalid(f"negative dimension in shape {list(dims)}")
    return dims


def _count(dims: tuple[int, ...]) -> int:
    return int(np.prod(dims, dtype=np.int64)) if dims else 1


def _fast_floats(arg: Any) -> np.ndarray:
    """The `floats` of an Argument without one Python object per value (unpacked fixed32 fields read as an array)."""
    data = arg.SerializeToString()
    pos = 0
    # skip the leading name field (tag 0x0a, one-byte length for names below 128 bytes)
    if data[:1] == b"\x0a" and len(data) > 1 and data[1] < 0x80:
        pos = 2 + data[1]
    count, rest = divmod(len(data) - pos, 5)
    if count and not rest:
        tags = np.ndarray((count,), dtype=np.uint8, buffer=data, offset=pos, strides=(5,))
        if np.all(tags == 0x2D):  # field 5, wire type fixed32: one tag byte before every float
            return np.ndarray((count,), dtype="<f4", buffer=data, offset=pos + 1, strides=(5,)).astype(np.float32)
    return np.asarray(arg.floats, dtype=np.float32)


def _values(op: Op, dtype: str, dims: tuple[int, ...]) -> np.ndarray:
    arg = op.args.get("values")
    if arg is None:
        raise OpInvalid("has no 'values' argument")
    if dtype in ("float32", "float64", "float16"):
        flat = _fast_floats(arg).astype(dtype, copy=False)
    elif dtype == "object":
        flat = np.array([s.decode("utf-8", "replace") for s in arg.strings], dtype=object)
    elif dtype == "uint8-bytes":
        flat = np.frombuffer(arg.s, dtype=np.uint8).copy()
        dtype = "uint8"
    else:
        flat = np.asarray(arg.ints, dtype=np.int64)
        if dtype == "bool":
            flat = flat != 0
        else:
            info = np.iinfo(dtype)
            if flat.size and (flat.min() < info.min or flat.max() > info.max):
                raise OpInvalid(f"values outside the {dtype} range")
            flat = flat.astype(dtype)
    if flat.size != _count(dims):
        shape_text = "x".join(map(str, dims)) or "scalar"
        raise OpInvalid(f"has {flat.size} values for shape {shape_text} ({_count(dims)} elements)")
    return flat.reshape(dims)


def _given(dtype: str) -> Callable[[Op, bool], Blob]:
    def fill(op: Op, random_weights: bool) -> Blob:
        kind = dtype
        if op.has("dtype") and kind == "float32":
            kind = DATA_TYPES.get(int(op.i("dtype", 1) or 1), "float32")
        return Blob(_values(op, kind, _shape(op)))

    fill.__doc__ = f"`values` as {dtype.replace('-bytes', ' (one byte string)').replace('object', 'strings')} with `shape`."
    return fill


FILLS.register("GivenTensorFill", _given("float32"))
FILLS.register("GivenTensorDoubleFill", _given("float64"))
FILLS.register("GivenTensorFp16Fill", _given("float16"))
FILLS.register("GivenTensorIntFill", _given("int32"))
FILLS.register("GivenTensorInt16Fill", _given("int16"))
FILLS.register("GivenTensorInt64Fill", _given("int64"))
FILLS.register("GivenTensorBoolFill", _given("bool"))
FILLS.register("GivenTensorByteStringToUInt8Fill", _given("uint8-bytes"))
FILLS.register("GivenTensorStringFill", _given("object"))


def _quant(op: Op) -> Quant:
    if not op.has("Y_scale"):
        raise OpInvalid("has no Y_scale argument")
    scale = float(op.f("Y_scale", 1.0) or 0.0)
    if not scale > 0:
        raise OpInvalid(f"Y_scale {scale} is not positive")
    return Quant(scale, int(op.i("Y_zero_point", 0) or 0))


@FILLS.register("Int8GivenTensorFill")
def _int8_given(op: Op, random_weights: bool) -> Blob:
    """uint8 values (a byte string) with Y_scale / Y_zero_point."""
    arg = op.args.get("values")
    if arg is None:
        raise OpInvalid("has no 'values' argument")
    dims = _shape(op)
    flat = (
        np.frombuffer(arg.s, dtype=np.uint8).copy()
        if arg.HasField("s")
        else np.asarray(arg.ints, dtype=np.int64).astype(np.uint8)
    )
    if flat.size != _count(dims):
        raise OpInvalid(f"has {flat.size} values for shape {'x'.join(map(str, dims))} ({_count(dims)} elements)")
    return Blob(flat.reshape(dims), _quant(op))


@FILLS.register("Int8GivenIntTensorFill")
def _int8_given_int(op: Op, random_weights: bool) -> Blob:
    """int32 values (biases) with Y_scale / Y_zero_point."""
    dims = _shape(op)
    return Blob(_values(op, "int32", dims), _quant(op))


@FILLS.register("ConstantFill")
def _constant(op: Op, random_weights: bool) -> Blob:
    """A tensor of one value; `dtype` picks the type (float by default)."""
    if op.inputs:
        raise OpUnsupported("ConstantFill with an input (input_as_shape) in an init_net")
    dims = _shape(op)
    if _count(dims) > _MAX_FILL_ELEMENTS:
        raise OpInvalid(f"shape {list(dims)} is too large")
    dtype = DATA_TYPES.get(int(op.i("dtype", 1) or 1))
    if dtype is None or dtype == "object":
        raise OpUnsupported(f"ConstantFill dtype {op.i('dtype')}")
    arg = op.args.get("value")
    value: float | int = 0
    if arg is not None:
        value = arg.f if arg.HasField("f") else (arg.i if arg.HasField("i") else 0)
    return Blob(np.full(dims, value, dtype=dtype))


def _rng(op: Op) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(op.outputs[0].encode("utf-8")) if op.outputs else 0)


def _random(kind: str) -> Callable[[Op, bool], Blob]:
    def fill(op: Op, random_weights: bool) -> Blob:
        if not random_weights:
            raise NeedsRandomWeights(op)
        dims = _shape(op)
        if _count(dims) > _MAX_FILL_ELEMENTS:
            raise OpInvalid(f"shape {list(dims)} is too large")
        rng = _rng(op)
        fan_in = _count(dims) / dims[0] if dims and dims[0] else 1
        fan_out = _count(dims) / dims[1] if len(dims) > 1 and dims[1] else 1
        if kind == "XavierFill":
            limit = np.sqrt(3.0 / max(fan_in, 1))
            value = rng.uniform(-limit, limit, dims)
        elif kind == "MSRAFill":
            value = rng.normal(0.0, np.sqrt(2.0 / max(fan_out, 1)), dims)
        elif kind == "GaussianFill":
            value = rng.normal(op.f("mean", 0.0), op.f("std", 1.0), dims)
        else:
            value = rng.uniform(op.f("min", 0.0), op.f("max", 1.0), dims)
        return Blob(value.astype(np.float32))

    fill.__doc__ = f"{kind}: random values, only with --random-weights (seeded by the blob name)."
    return fill


class NeedsRandomWeights(Exception):
    """A random fill met without --random-weights."""

    def __init__(self, op: Op) -> None:
        super().__init__(op.describe())
        self.op = op


for _kind in RANDOM_FILLS:
    FILLS.register(_kind, _random(_kind))


def run_fill(op: Op, random_weights: bool) -> Blob:
    """The tensor one fill operator produces."""
    return FILLS.get(op.type)(op, random_weights)
