"""The ONNX graph under construction and the view of one Caffe2 operator that converters get."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from edgecc.registry import Registry

if TYPE_CHECKING:
    import onnx

__all__ = ["OPS", "OPSET", "Graph", "Op", "OpInvalid", "OpUnsupported", "Quant"]

log = logging.getLogger(__name__)

OPSET = 17

#: Caffe2 op type -> converter(graph, op); filled by the ops_* modules
OPS: Registry[Callable[[Graph, Op], None]] = Registry("Caffe2 operator")

_INFER_INLINE_LIMIT = 4096  # initializers up to this many elements are given to shape inference with their values


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


class _Constants(Mapping[str, np.ndarray]):
    """Initializer values as numpy arrays, decoded on demand (big weights are not held twice)."""

    def __init__(self, initializers: dict[str, "onnx.TensorProto"]) -> None:
        self._initializers = initializers
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._cache:
            from onnx import numpy_helper

            self._cache[name] = numpy_helper.to_array(self._initializers[name])
        return self._cache[name]

    def __contains__(self, name: object) -> bool:
        return name in self._initializers

    def __iter__(self) -> Iterator[str]:
        return iter(self._initializers)

    def __len__(self) -> int:
        return len(self._initializers)

    def forget(self, name: str) -> None:
        """Drop a cached value (the initializer changed)."""
        self._cache.pop(name, None)


class Graph:
    """Nodes, initializers and value infos of the ONNX graph being built, with shape queries."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, onnx.TensorProto] = {}
        self.consts = _Constants(self.initializers)
        self.inputs: list[onnx.ValueInfoProto] = []
        self.quant: dict[str, Quant] = {}
        self._names: set[str] = set()
        self._node_names: set[str] = set()
        self._shapes: dict[str, tuple[int | None, ...]] = {}
        self._types: dict[str, int] = {}
        self._inferred_upto = 0
        self._dq: dict[str, str] = {}

    # ------------------------------------------------------------ names
    def reserve(self, name: str) -> None:
        """Mark a tensor name as taken."""
        self._names.add(name)

    def fresh(self, base: str) -> str:
        """A tensor name not used yet, derived from `base`."""
        name, index = base, 0
        while name in self._names:
            index += 1
            name = f"{base}__{index}"
        self._names.add(name)
        return name

    def _node_name(self, base: str) -> str:
        name, index = base, 0
        while name in self._node_names:
            index += 1
            name = f"{base}_{index}"
        self._node_names.add(name)
        return name

    # ------------------------------------------------------------ building
    def add_input(self, name: str, elem_type: int, shape: Sequence[int | str | None] | None) -> None:
        """A graph input."""
        from onnx import helper

        self.reserve(name)
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, None if shape is None else list(shape)))
        if shape is not None:
            self._shapes[name] = tuple(d if isinstance(d, int) else None for d in shape)
        self._types[name] = elem_type

    def add_initializer(self, name: str, value: np.ndarray) -> str:
        """A named initializer (name kept exactly)."""
        from onnx import helper, numpy_helper

        value = np.asarray(value)
        self.reserve(name)
        self.initializers[name] = numpy_helper.from_array(value, name)
        self.consts.forget(name)
        self._shapes[name] = tuple(int(d) for d in value.shape)
        self._types[name] = helper.np_dtype_to_tensor_dtype(value.dtype)
        return name

    def const(self, value: Any, base: str, dtype: str | None = None) -> str:
        """A new initializer holding `value`; returns its (fresh) name."""
        array = np.asarray(value, dtype=dtype) if dtype else np.asarray(value)
        if array.dtype == np.float64 and dtype is None:
            array = array.astype(np.float32)
        return self.add_initializer(self.fresh(base), array)

    def node(
        self, op_type: str, inputs: Sequence[str], outputs: Sequence[str] | str | int = 1, *, name: str = "",
        domain: str = "", **attrs: Any,
    ) -> list[str]:
        """Append a node; `outputs` gives names, or a base name / count for fresh ones. Returns the output names."""
        from onnx import helper

        if isinstance(outputs, int):
            out_names = [self.fresh(f"{name or op_type}_out{i}" if outputs > 1 else f"{name or op_type}_out") for i in range(outputs)]
        elif isinstance(outputs, str):
            out_names = [self.fresh(outputs)]
        else:
            out_names = list(outputs)
            for out in out_names:
                if out:
                    self.reserve(out)
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(
            helper.make_node(op_type, list(inputs), out_names, name=self._node_name(name or op_type), domain=domain or None, **attrs)
        )
        return out_names

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
            self._dq[name] = self.dequantize_into(name, self.fresh(f"{name}_dq"), node_name=f"{name}_dq")
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
    def _infer(self) -> None:
        """Shape inference of the nodes added since the last call, fed the shapes known so far (incremental)."""
        import onnx
        from onnx import helper

        if self._inferred_upto >= len(self.nodes):
            return
        nodes = self.nodes[max(self._inferred_upto, 0):]
        produced = {o for n in nodes for o in n.output}
        inputs, inits, seen = [], [], set()
        for node in nodes:
            for name in node.input:
                if not name or name in produced or name in seen:
                    continue
                seen.add(name)
                tensor = self.initializers.get(name)
                if tensor is not None and np.prod(tensor.dims, dtype=np.int64) <= _INFER_INLINE_LIMIT:
                    inits.append(tensor)
                elif name in self._types:
                    shape = self._shapes.get(name)
                    inputs.append(helper.make_tensor_value_info(name, self._types[name], None if shape is None else list(shape)))
        graph = helper.make_graph(nodes, "partial", inputs, [], initializer=inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 8
        self._inferred_upto = len(self.nodes)
        try:
            inferred = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
        except Exception as exc:  # best effort; callers handle unknown shapes
            log.debug("shape inference of the partial graph failed: %s", exc)
            return
        for vi in inferred.graph.value_info:
            tensor_type = vi.type.tensor_type
            if tensor_type.elem_type:
                self._types[vi.name] = tensor_type.elem_type
            if tensor_type.HasField("shape"):
                self._shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim)

    def shape(self, name: str) -> tuple[int | None, ...] | None:
        """The shape of a tensor (None entries for unknown dims), or None if even the rank is unknown."""
        if name not in self._shapes:
            self._infer()
        return self._shapes.get(name)

    def rank(self, name: str) -> int:
        """The rank of a tensor; OpInvalid (naming the first node whose shapes do not fit) when it cannot be known."""
        shape = self.shape(name)
        if shape is None:
            problem = self.shape_problem()
            if problem:
                raise OpInvalid(f"shapes do not fit upstream: {problem}")
            raise OpInvalid(f"the rank of '{name}' is unknown (give the input shapes with --input NAME:DIMS)")
        return len(shape)

    def probe_model(self, nodes: Sequence[onnx.NodeProto] | None = None, outputs: Sequence[str] = ()) -> onnx.ModelProto:
        """The graph with large initializers given as typed inputs (cheap to serialise for shape inference)."""
        from onnx import helper

        inputs = list(self.inputs) + [
            helper.make_tensor_value_info(n, t.data_type, list(t.dims)) for n, t in self.initializers.items()
            if np.prod(t.dims, dtype=np.int64) > _INFER_INLINE_LIMIT
        ]
        inits = [t for t in self.initializers.values() if np.prod(t.dims, dtype=np.int64) <= _INFER_INLINE_LIMIT]
        graph = helper.make_graph(self.nodes if nodes is None else nodes, "probe", inputs,
                                  [helper.make_empty_tensor_value_info(o) for o in outputs], initializer=inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 8
        return model

    def shape_problem(self) -> str | None:
        """The first shape-inference error of the graph so far (strict mode), if any."""
        import onnx

        try:
            onnx.shape_inference.infer_shapes(self.probe_model(), check_type=True, strict_mode=True, data_prop=True)
        except Exception as exc:
            return " ".join(str(exc).split())[:300]
        return None

    def static_shape(self, name: str, what: str = "this conversion") -> tuple[int, ...]:
        """A fully known shape; OpUnsupported when a dimension is dynamic."""
        shape = self.shape(name)
        if shape is None or any(d is None for d in shape):
            raise OpUnsupported(f"{what} needs the static shape of '{name}', which is {shape} (give --input with fixed dims)")
        return tuple(int(d) for d in shape)  # type: ignore[arg-type]

    def elem_type(self, name: str) -> int | None:
        """The ONNX element type of a tensor, if known."""
        if name not in self._types:
            self._infer()
        return self._types.get(name)

    # ------------------------------------------------------------ common patterns
    def to_nchw(self, name: str, rank: int = 4) -> str:
        """Transpose channels-last to channels-first."""
        perm = [0, rank - 1] + list(range(1, rank - 1))
        return self.one("Transpose", [name], self.fresh(f"{name}_nchw"), perm=perm)

    def to_nhwc(self, name: str, output: str | None = None, rank: int = 4) -> str:
        """Transpose channels-first to channels-last."""
        perm = [0] + list(range(2, rank)) + [1]
        return self.one("Transpose", [name], output or self.fresh(f"{name}_nhwc"), perm=perm)

    def ints_const(self, values: Sequence[int], base: str) -> str:
        """An int64 1-D initializer."""
        return self.const(np.asarray(list(values), dtype=np.int64), base)
