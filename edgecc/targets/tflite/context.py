"""The conversion state: ONNX tensor -> TFLite value (tensor + layout + quantisation, or a constant), and op emission."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgecc.targets.tflite import layout
from edgecc.targets.tflite.quant import QConst, params_of
from edgecc.targets.tflite.schema import ModelBuilder, QuantParams

if TYPE_CHECKING:
    import numpy as np
    import onnx

__all__ = ["Context", "NotExpressible", "OutputPlan", "Value"]

#: activation ops a producer may fuse: op type -> (TFLite fused activation name, clip bounds) (see `activation_of`)
FUSED_ACTIVATIONS = {"RELU": (0.0, float("inf")), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}
ACTIVATION_CODE = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}


class NotExpressible(Exception):
    """A node (or attribute combination) the TFLite writer cannot express; the message is the reason."""


@dataclass
class Value:
    """What an ONNX tensor is on the TFLite side: a tensor (index, permutation, int8 params) or a constant."""

    shape: tuple[int, ...]
    tensor: int | None = None
    perm: tuple[int, ...] = ()
    quant: QuantParams | None = None
    const: np.ndarray | None = None  # float constant in ONNX layout
    qconst: QConst | None = None  # DequantizeLinear(initializer)
    col_perm: np.ndarray | None = None  # 2-D tensor whose columns are onnx[:, col_perm] (flattened NHWC)

    @property
    def is_const(self) -> bool:
        """True for constants (float or quantised)."""
        return self.tensor is None


@dataclass
class OutputPlan:
    """Where a node's output goes: the final ONNX name (after absorbed activation/Q), its int8 params and activation."""

    name: str
    quant: QuantParams | None
    activation: str = "NONE"
    absorbed: list[Any] = field(default_factory=list)


class Context:
    """Conversion of one ONNX graph into a `ModelBuilder`."""

    def __init__(self, model: onnx.ModelProto, *, io_type: str, always_bias: bool, flat_fully_connected: bool = False) -> None:
        import onnx
        from onnx import numpy_helper

        self.model = model
        self.graph = model.graph
        self.io_type = io_type
        self.always_bias = always_bias
        self.flat_fully_connected = flat_fully_connected
        #: the integer type of activations in the file: int8, or uint8 for a uint8 model (e.g. a converted uint8 TFLite
        #: file) written with uint8 io or holding asymmetric uint8 weights, which TFLite's int8 kernels cannot take
        #: (their weight zero point must be 0): TFLite's uint8 kernels then run it as the original did
        self.act_dtype = _activation_dtype(model, io_type)
        self.builder = ModelBuilder(description="edgecc ONNX->TFLite writer")
        self.values: dict[str, Value] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.dtypes: dict[str, str] = {}
        for vi in [*self.graph.input, *self.graph.value_info, *self.graph.output]:
            tt = vi.type.tensor_type
            if tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim):
                self.shapes[vi.name] = tuple(int(d.dim_value) for d in tt.shape.dim)
            if tt.elem_type:
                self.dtypes[vi.name] = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name
        self.inits = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        for node in self.graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.inits[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.graph.node:
            for name in node.input:
                if name:
                    self.consumers.setdefault(name, []).append(node)
        self.graph_outputs = [o.name for o in self.graph.output]
        self.producers: dict[str, onnx.NodeProto] = {o: n for n in self.graph.node for o in n.output if o}
        self.absorbed: set[int] = set()
        self.transposes = 0
        self.float_ops: list[str] = []  # nodes of an int8 graph computed in float (the QDQ graph keeps them float)
        self.steps: dict[str, tuple[float, int]] = {}  # float graph outputs of int8 tensors: (scale, zero point)
        self.deferred: dict[str, tuple[str, int]] = {}  # Unsqueeze outputs a PACK consumes: name -> (input, axis)
        self._cache: dict[tuple[str, tuple[int, ...], str], int] = {}

    # -- constants and shapes -------------------------------------------------------------------------------------
    def shape(self, name: str) -> tuple[int, ...]:
        """The static ONNX shape of `name`."""
        if name in self.values:
            return self.values[name].shape
        if name in self.inits:
            return tuple(self.inits[name].shape)
        if name not in self.shapes:
            raise NotExpressible(f"tensor '{name}' has no static shape (run shape inference with fixed input shapes)")
        return self.shapes[name]

    def value(self, name: str) -> Value:
        """The value bound to ONNX tensor `name` (initializers become constants on first use)."""
        if name not in self.values:
            if name in self.inits:
                self.values[name] = Value(shape=tuple(self.inits[name].shape), const=self.inits[name])
            else:
                raise NotExpressible(f"input '{name}' is not produced by a converted node")
        return self.values[name]

    def is_const(self, name: str) -> bool:
        """True when `name` is an initializer, a Constant or DequantizeLinear(initializer)."""
        return bool(name) and (name in self.inits or (name in self.values and self.values[name].is_const))

    def array(self, name: str) -> np.ndarray:
        """The float (or integer) value of a constant, in ONNX layout."""
        v = self.value(name)
        if v.qconst is not None:
            return v.qconst.real()
        if v.const is None:
            raise NotExpressible(f"'{name}' must be a constant")
        return v.const

    def ints(self, name: str) -> list[int]:
        """A constant integer vector (shapes, axes, pads)."""
        return [int(x) for x in self.array(name).ravel()]

    # -- tensors ---------------------------------------------------------------------------------------------------
    def bind(self, name: str, tensor: int, perm: Sequence[int], quant: QuantParams | None = None, **extra: Any) -> Value:
        """Record that ONNX tensor `name` is TFLite tensor `tensor` in layout `perm`."""
        value = Value(
            shape=self.shape(name) if name in self.shapes or name in self.values else self.builder_shape(tensor, perm),
            tensor=tensor,
            perm=tuple(perm),
            quant=quant,
            **extra,
        )
        self.values[name] = value
        return value

    def builder_shape(self, tensor: int, perm: Sequence[int]) -> tuple[int, ...]:
        """The ONNX shape of a TFLite tensor in layout `perm`."""
        return layout.tfl_shape(self.builder.tensors[tensor].shape, layout.inverse(perm))

    def new_tensor(
        self, name: str, onnx_shape: Sequence[int], perm: Sequence[int], quant: QuantParams | None, dtype: str | None = None
    ) -> int:
        """A fresh activation tensor for ONNX shape `onnx_shape` stored in layout `perm`."""
        dtype = dtype or (quant.dtype if quant is not None else "float32")
        return self.builder.tensor(name, layout.tfl_shape(onnx_shape, perm), dtype, quant=quant)

    def const_tensor(self, name: str, data: np.ndarray, quant: QuantParams | None = None, dtype: str | None = None) -> int:
        """A constant tensor holding `data` (already in TFLite layout)."""
        dtype = dtype or (quant.dtype if quant is not None else str(data.dtype) if str(data.dtype) != "float64" else "float32")
        return self.builder.tensor(name, data.shape, dtype, data=data, quant=quant)

    def tensor(
        self,
        name: str,
        perm: Sequence[int] | None = None,
        *,
        quantized: bool | None = None,
        rank: int | None = None,
        quantize_with: QuantParams | None = None,
    ) -> int:
        """Tensor index of ONNX tensor `name` in layout `perm` (identity when None) and kind (int8 / float / as is).

        Inserts TRANSPOSE (counted in the report) or DEQUANTIZE when the value is held differently; constants are
        written in the requested layout (quantised constants as int8 unless float is asked for).
        """
        import numpy as np

        value = self.value(name)
        want_rank = rank or len(value.shape)
        perm = tuple(perm) if perm is not None else layout.identity(want_rank)
        if value.is_const:
            if quantized is True and value.qconst is None:
                raise NotExpressible(
                    f"float constant '{name}' feeds an int8 operator (give it as DequantizeLinear(int8 initializer))"
                )
            kind = "q" if (value.qconst is not None and quantized is not False) else "f"
            key = (name, perm, kind)
            if key not in self._cache:
                if kind == "q":
                    data = value.qconst.data.reshape((1,) * (want_rank - value.qconst.data.ndim) + value.qconst.data.shape)
                    quant = value.qconst.quant
                    if quant.dtype in ("int8", "uint8") and quant.dtype != self.act_dtype:
                        shift = 128 if self.act_dtype == "uint8" else -128
                        data, quant = (data.astype(np.int16) + shift).astype(self.act_dtype), quant.with_dtype(self.act_dtype)
                    if quant.per_channel:
                        quant = QuantParams(
                            quant.scale,
                            quant.zero_point,
                            layout.tfl_axis(quant.axis + want_rank - value.qconst.data.ndim, perm),
                            quant.dtype,
                        )
                    self._cache[key] = self.const_tensor(name, layout.to_tfl(data, perm), quant)
                else:
                    data = np.asarray(self.array(name))
                    data = data.astype(np.float32) if data.dtype.kind == "f" else data.astype(np.int32)
                    data = data.reshape((1,) * (want_rank - data.ndim) + data.shape)
                    self._cache[key] = self.const_tensor(name, layout.to_tfl(data, perm))
            return self._cache[key]
        if value.col_perm is not None:
            raise NotExpressible(f"'{name}' is a flattened NHWC tensor and can only feed FullyConnected weights")
        index = value.tensor
        if quantized is False and value.quant is not None:
            key = (name, value.perm, "f")
            if key not in self._cache:
                out = self.new_tensor(f"{name}_dequantized", value.shape, value.perm, None)
                self.builder.operator("DEQUANTIZE", [index], [out])
                self._cache[key] = out
            index = self._cache[key]
        elif quantized is True and value.quant is None and quantize_with is not None:
            # a float tensor into an op whose int8 output shares its input's params (MaxPool, Reshape, ...)
            key = (name, value.perm, "q")
            if key not in self._cache:
                out = self.new_tensor(f"{name}_quantized", value.shape, value.perm, quantize_with)
                self.builder.operator("QUANTIZE", [index], [out])
                self._cache[key] = out
            index = self._cache[key]
        elif quantized is True and value.quant is None:
            raise NotExpressible(f"'{name}' is float but feeds an int8 operator (quantise it with QuantizeLinear first)")
        if tuple(perm) != value.perm and not layout.equivalent(value.shape, value.perm, perm):
            kind = "f" if self.builder.tensors[index].quant is None else "q"
            key = (name, perm, kind)
            if key not in self._cache:
                relative = layout.compose(layout.inverse(value.perm), perm)
                spec = self.builder.tensors[index]
                out = self.new_tensor(f"{name}_transposed", value.shape, perm, spec.quant, spec.dtype)
                if layout.only_unit_moves(spec.shape, relative):  # same element order: a RESHAPE, not a TRANSPOSE
                    shape = self.const_tensor(f"{name}_shape", np.asarray(self.builder.tensors[out].shape, dtype=np.int32))
                    self.builder.operator(
                        "RESHAPE", [index, shape], [out], "ReshapeOptions", NewShape=list(self.builder.tensors[out].shape)
                    )
                else:
                    shape = self.const_tensor(f"{name}_perm", np.asarray(relative, dtype=np.int32))
                    self.builder.operator("TRANSPOSE", [index, shape], [out])
                    self.transposes += 1
                self._cache[key] = out
            index = self._cache[key]
        return index

    # -- outputs -------------------------------------------------------------------------------------------------
    def single_consumer(self, name: str) -> onnx.NodeProto | None:
        """The only node reading `name` (None when several, none, or `name` is a graph output)."""
        users = self.consumers.get(name, [])
        if len(users) != 1 or name in self.graph_outputs:
            return None
        return users[0]

    def activation_of(self, node: onnx.NodeProto) -> str | None:
        """The fused-activation name a Relu/Clip node amounts to, or None."""
        if node.op_type == "Relu":
            return "RELU"
        if node.op_type == "Clip":
            lo, hi = self.clip_bounds(node)
            for name, (a, b) in FUSED_ACTIVATIONS.items():
                if lo == a and hi == b:
                    return name
        return None

    def clip_bounds(self, node: onnx.NodeProto) -> tuple[float, float]:
        """Clip's (min, max) from attributes (opset < 11) or constant inputs."""
        import onnx

        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        lo, hi = float(attrs.get("min", float("-inf"))), float(attrs.get("max", float("inf")))
        if len(node.input) > 1 and node.input[1]:
            lo = float(self.array(node.input[1]).ravel()[0])
        if len(node.input) > 2 and node.input[2]:
            hi = float(self.array(node.input[2]).ravel()[0])
        return lo, hi

    def quant_of(self, node: onnx.NodeProto, dtype_from: str | None = None) -> QuantParams:
        """Per-tensor params of a QuantizeLinear/DequantizeLinear node, re-typed to the file's activation type (exact)."""
        import onnx

        scale = self.array(node.input[1])
        zero = self.inits.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        dtype = str(zero.dtype) if zero is not None else "uint8"
        if node.op_type == "QuantizeLinear" and zero is None:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            dtype = onnx.helper.tensor_dtype_to_np_dtype(attrs["output_dtype"]).name if "output_dtype" in attrs else "uint8"
        if dtype not in ("int8", "uint8"):
            raise NotExpressible(f"{dtype} activations (the TFLite writer handles int8/uint8 activations)")
        if scale.size != 1:
            raise NotExpressible("per-channel activation quantisation (TFLite activations are per-tensor)")
        return params_of(scale, zero, 0, dtype).with_dtype(self.act_dtype)

    def plan_output(self, node: onnx.NodeProto, index: int = 0, *, fusable: bool = False, quantizable: bool = True) -> OutputPlan:
        """Follow `node`'s output through a fusable activation and a QuantizeLinear the TFLite op absorbs."""
        name = node.output[index]
        plan = OutputPlan(name=name, quant=None)
        if self.dtypes.get(name) in ("int8", "uint8") and node.op_type != "QuantizeLinear":
            # data movement on integer tensors (tf2onnx writes Concat/Transpose/Reshape between Q and DQ): same params
            plan.quant = next(
                (self.values[i].quant for i in node.input if i in self.values and self.values[i].quant is not None), None
            )
            return plan
        nxt = self.single_consumer(name)
        if fusable and nxt is not None:
            act = self.activation_of(nxt)
            if act is not None:
                plan.activation, plan.name = act, nxt.output[0]
                plan.absorbed.append(nxt)
                nxt = self.single_consumer(plan.name)
        if quantizable and nxt is not None and nxt.op_type == "QuantizeLinear":
            plan.quant = self.quant_of(nxt)
            plan.name = nxt.output[0]
            plan.absorbed.append(nxt)
        return plan

    def quantized_inputs(self, names: Sequence[str]) -> bool:
        """True when every non-constant input is an int8 tensor (the op may run in int8)."""
        return all(self.value(n).quant is not None for n in names if n and not self.is_const(n))

    def emit(
        self,
        op: str,
        inputs: list[int],
        plan: OutputPlan,
        onnx_shape: Sequence[int],
        perm: Sequence[int],
        options: str | None = None,
        *,
        out_quant: QuantParams | None = None,
        version: int = 1,
        **fields: Any,
    ) -> int:
        """Add operator `op` writing `plan.name` in layout `perm`; `out_quant` forces the op's own output params.

        When the kernel needs output params other than the ones the graph chose (e.g. int8 SOFTMAX's 1/256),
        the op writes an intermediate tensor and a QUANTIZE re-quantises it to the graph's params.
        """
        for node in plan.absorbed:
            self.absorbed.add(id(node))
        if options and "FusedActivationFunction" in _ACT_OPTIONS.get(options, ()):
            fields.setdefault("FusedActivationFunction", ACTIVATION_CODE[plan.activation])
        final_quant = plan.quant
        if out_quant is not None and out_quant.dtype != self.act_dtype:
            out_quant = out_quant.with_dtype(self.act_dtype)
        if final_quant is not None and final_quant.dtype == "uint8":
            version = 1  # TFLite's uint8 kernels are the version-1 ones
        needs_requant = out_quant is not None and final_quant is not None and not out_quant.same_as(final_quant)
        if needs_requant:
            mid = self.new_tensor(f"{plan.name}_{op.lower()}", onnx_shape, perm, out_quant)
            index = self.builder.operator(op, inputs, [mid], options, version, **fields)
            out = self.new_tensor(plan.name, onnx_shape, perm, final_quant)
            self.builder.operator("QUANTIZE", [mid], [out])
        else:
            quant = out_quant if final_quant is not None and out_quant is not None else final_quant
            out = self.new_tensor(plan.name, onnx_shape, perm, quant)
            index = self.builder.operator(op, inputs, [out], options, version, **fields)
        self.values[plan.name] = Value(
            shape=tuple(int(d) for d in onnx_shape), tensor=out, perm=tuple(perm), quant=self.builder.tensors[out].quant
        )
        return index


def _activation_dtype(model: onnx.ModelProto, io_type: str) -> str:
    """uint8 for a uint8 QDQ model with uint8 io or with asymmetric uint8 weights beyond int8's reach, else int8."""
    from onnx import TensorProto, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    uint8_acts = any(i.type.tensor_type.elem_type == TensorProto.UINT8 for i in model.graph.input) or any(
        inits[n.input[2]].data_type == TensorProto.UINT8
        for n in model.graph.node
        if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in inits
    )
    if not uint8_acts:
        return "int8"
    if io_type == "uint8":
        return "uint8"
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits and inits[node.input[0]].data_type == TensorProto.UINT8:
            data = numpy_helper.to_array(inits[node.input[0]]).astype("int32")
            zero = numpy_helper.to_array(inits[node.input[2]]).astype("int32") if len(node.input) > 2 and node.input[2] else 0
            if data.ndim and zero.size > 1:
                axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
                zero = zero.reshape([-1 if i == axis % data.ndim else 1 for i in range(data.ndim)])
            centred = data - zero
            if centred.size and (centred.min() < -128 or centred.max() > 127):
                return "uint8"
    return "int8"


#: options tables with a fused_activation_function field
_ACT_OPTIONS: dict[str, tuple[str, ...]] = {
    name: ("FusedActivationFunction",)
    for name in (
        "Conv2DOptions",
        "DepthwiseConv2DOptions",
        "FullyConnectedOptions",
        "AddOptions",
        "SubOptions",
        "MulOptions",
        "DivOptions",
        "ConcatenationOptions",
        "Pool2DOptions",
        "TransposeConvOptions",
    )
}
