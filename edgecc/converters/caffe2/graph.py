"""The ONNX graph under construction and the view of one Caffe2 operator that converters get."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecc.converters.builder import GraphBuilder
from edgecc.registry import Registry

__all__ = ["OPS", "Graph", "Op", "OpInvalid", "OpUnsupported", "Quant"]

#: Caffe2 op type -> converter(graph, op); filled by the ops_* modules
OPS: Registry[Callable[[Graph, Op], None]] = Registry("Caffe2 operator")


class OpUnsupported(Exception):
    """This operator (with these arguments) has no ONNX translation: reported with all others (exit 4)."""


class OpInvalid(Exception):
    """This operator is malformed or does not fit its inputs (exit 3)."""


@dataclass(frozen=True)
class Quant:
    """Scale and zero point of a Caffe2 Int8 (uint8) tensor."""

    scale: float
    zero_point: int


class Op:
    """One Caffe2 OperatorDef with typed argument access."""

    def __init__(self, index: int, proto: Any) -> None:
        self.index = index
        self.proto = proto
        self.type: str = proto.type
        self.inputs: list[str] = list(proto.input)
        self.outputs: list[str] = list(proto.output)
        self.name: str = proto.name or (self.outputs[0] if self.outputs else f"{self.type}_{index}")
        self.args: dict[str, Any] = {a.name: a for a in proto.arg}
        self.onnx_inputs: list[str] = []
        self.onnx_outputs: list[str] = []
        self.default_order = "NCHW"
        self.forced_axis: int | None = None
        self.consumed: set[str] = set()

    def describe(self) -> str:
        """`op #3 'conv1' (Conv)` for messages."""
        return f"op #{self.index} '{self.name}' ({self.type})"

    def has(self, name: str) -> bool:
        """True when the argument is given."""
        return name in self.args

    def i(self, name: str, default: int | None = None) -> int | None:
        """An integer argument."""
        arg = self.args.get(name)
        if arg is None:
            return default
        if arg.HasField("i"):
            return int(arg.i)
        if arg.HasField("f"):
            return int(arg.f)
        return default

    def f(self, name: str, default: float | None = None) -> float | None:
        """A float argument (an integer value is accepted)."""
        arg = self.args.get(name)
        if arg is None:
            return default
        if arg.HasField("f"):
            return float(arg.f)
        if arg.HasField("i"):
            return float(arg.i)
        return default

    def s(self, name: str, default: str | None = None) -> str | None:
        """A string argument."""
        arg = self.args.get(name)
        if arg is None or not arg.HasField("s"):
            return default
        return arg.s.decode("utf-8", "replace")

    def ints(self, name: str, default: Sequence[int] | None = None) -> list[int] | None:
        """A list-of-integers argument."""
        arg = self.args.get(name)
        if arg is None:
            return list(default) if default is not None else None
        return [int(v) for v in arg.ints]

    def floats(self, name: str, default: Sequence[float] | None = None) -> list[float] | None:
        """A list-of-floats argument."""
        arg = self.args.get(name)
        if arg is None:
            return list(default) if default is not None else None
        return [float(v) for v in arg.floats]

    def order(self) -> str:
        """Storage order: NCHW (default) or NHWC."""
        order = (self.s("order", self.default_order) or self.default_order).upper()
        if order not in ("NCHW", "NHWC"):
            raise OpUnsupported(f"order '{order}'")
        return order

    def input(self, position: int) -> str:
        """The ONNX name of input `position`."""
        if position >= len(self.onnx_inputs):
            raise OpInvalid(f"needs at least {position + 1} input(s), has {len(self.onnx_inputs)}")
        return self.onnx_inputs[position]

    def output(self, position: int = 0) -> str:
        """The ONNX name of output `position`."""
        if position >= len(self.onnx_outputs):
            raise OpInvalid(f"needs at least {position + 1} output(s), has {len(self.onnx_outputs)}")
        return self.onnx_outputs[position]


class Graph(GraphBuilder):
    """The ONNX graph being built from a predict_net: SSA blob names, Int8 scales, shape queries that explain failures."""

    name_separator = "__"  # helper tensors: `blob__1`; blob versions (`blob__v2`) are named by the frontend
    separate_node_names = True
    infer_data_prop = True
    symbolic_dims = False

    def __init__(self) -> None:
        super().__init__()
        self.quant: dict[str, Quant] = {}
        self._dq: dict[str, str] = {}

    def one(self, op_type: str, inputs: Sequence[str], output: str | None = None, *, name: str = "", **attrs: Any) -> str:
        """Append a single-output node; returns its output name."""
        return self.node(op_type, inputs, [output] if output else 1, name=name, **attrs)[0]

    # ------------------------------------------------------------ quantised tensors
    def dequantized(self, name: str) -> str:
        """The float value of `name`: itself for float tensors, a DequantizeLinear of it for Int8 tensors."""
        quant = self.quant.get(name)
        if quant is None:
            return name
        if name not in self._dq:
            self._dq[name] = self.dequantize_into(name, self.unique(f"{name}_dq"), node_name=f"{name}_dq")
        return self._dq[name]

    def dequantize_into(self, name: str, output: str, *, node_name: str) -> str:
        """DequantizeLinear of the quantised tensor `name` into `output` (int32 with a zero point: folded to floats)."""
        from onnx import TensorProto

        quant = self.quant[name]
        scale = self.const(np.float32(quant.scale), f"{name}_scale")
        if self.elem_type(name) == TensorProto.INT32:
            if quant.zero_point == 0:
                zero = self.const(np.int32(0), f"{name}_zero_point")
                return self.one("DequantizeLinear", [name, scale, zero], output, name=node_name)
            if name not in self.consts:
                raise OpInvalid(f"int32 tensor '{name}' has zero point {quant.zero_point} and is not a constant")
            value = ((self.consts[name].astype(np.float64) - quant.zero_point) * quant.scale).astype(np.float32)
            return self.one("Identity", [self.const(value, f"{name}_float")], output, name=node_name)
        zero = self.const(np.uint8(quant.zero_point), f"{name}_zero_point")
        return self.one("DequantizeLinear", [name, scale, zero], output, name=node_name)

    def quantize(self, value: str, output: str, quant: Quant, *, name: str) -> str:
        """QuantizeLinear `value` into the uint8 tensor `output` with `quant`."""
        scale = self.const(np.float32(quant.scale), f"{output}_scale")
        zero = self.const(np.uint8(quant.zero_point), f"{output}_zero_point")
        self.one("QuantizeLinear", [value, scale, zero], output, name=name)
        self.quant[output] = quant
        return output

    # ------------------------------------------------------------ shapes
    def rank(self, name: str) -> int:
        """The rank of a tensor; OpInvalid (naming the first node whose shapes do not fit) when it cannot be known."""
        shape = self.shape(name)
        if shape is None:
            problem = self.shape_problem()
            if problem:
                raise OpInvalid(f"shapes do not fit upstream: {problem}")
            raise OpInvalid(f"the rank of '{name}' is unknown (give the input shapes with --input NAME:DIMS)")
        return len(shape)

    def static_shape(self, name: str, what: str = "this conversion") -> tuple[int, ...]:
        """A fully known shape; OpUnsupported when a dimension is dynamic."""
        shape = self.shape(name)
        if shape is None or any(d is None for d in shape):
            raise OpUnsupported(f"{what} needs the static shape of '{name}', which is {shape} (give --input with fixed dims)")
        return tuple(int(d) for d in shape)  # type: ignore[arg-type]

    # ------------------------------------------------------------ common patterns
    def to_nchw(self, name: str, rank: int = 4) -> str:
        """Transpose channels-last to channels-first."""
        perm = [0, rank - 1] + list(range(1, rank - 1))
        return self.one("Transpose", [name], self.unique(f"{name}_nchw"), perm=perm)

    def to_nhwc(self, name: str, output: str | None = None, rank: int = 4) -> str:
        """Transpose channels-first to channels-last."""
        perm = [0] + list(range(2, rank)) + [1]
        return self.one("Transpose", [name], output or self.unique(f"{name}_nhwc"), perm=perm)
