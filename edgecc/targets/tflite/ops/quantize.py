"""QuantizeLinear -> QUANTIZE (or absorbed into its producer), DequantizeLinear -> alias / int8 constant / DEQUANTIZE."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgecc.targets.tflite.context import Context, NotExpressible, Value
from edgecc.targets.tflite.ops import converter
from edgecc.targets.tflite.quant import QConst, params_of

if TYPE_CHECKING:
    import onnx


@converter("QuantizeLinear", tflite=("QUANTIZE",))
def quantize_linear(ctx: Context, node: onnx.NodeProto, attrs: dict) -> None:
    """QuantizeLinear not absorbed by its producer: float -> int8 QUANTIZE, int8 -> int8 re-quantisation, or an alias."""
    import numpy as np

    quant = ctx.quant_of(node)
    source = ctx.value(node.input[0])
    out = node.output[0]
    if source.is_const:
        real = np.asarray(ctx.array(node.input[0]), dtype=np.float64)
        info = np.iinfo(quant.dtype)
        data = np.clip(np.round(real / quant.scale[0]) + quant.zero_point[0], info.min, info.max).astype(quant.dtype)
        ctx.values[out] = Value(shape=tuple(real.shape), qconst=QConst(data, quant))
        return
    if source.quant is not None and source.quant.same_as(quant):
        ctx.values[out] = Value(
            shape=source.shape, tensor=source.tensor, perm=source.perm, quant=source.quant, col_perm=source.col_perm
        )
        return
    index = (
        ctx.new_tensor(out, source.shape, source.perm, quant)
        if source.col_perm is None
        else ctx.builder.tensor(out, ctx.builder.tensors[source.tensor].shape, quant.dtype, quant=quant)
    )
    ctx.builder.operator("QUANTIZE", [source.tensor], [index])
    ctx.values[out] = Value(shape=source.shape, tensor=index, perm=source.perm, quant=quant, col_perm=source.col_perm)


@converter("DequantizeLinear", tflite=("DEQUANTIZE",))
def dequantize_linear(ctx: Context, node: onnx.NodeProto, attrs: dict) -> None:
    """DequantizeLinear of an initializer -> int8 constant; of an int8 tensor -> the same tensor
    (DEQUANTIZE at float graph outputs)."""
    import numpy as np

    out = node.output[0]
    name = node.input[0]
    if name in ctx.inits:
        data = ctx.inits[name]
        scale = ctx.array(node.input[1])
        zero = ctx.inits.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        axis = int(attrs.get("axis", 1)) % max(data.ndim, 1)
        quant = params_of(scale, zero, axis if np.asarray(scale).size > 1 else 0, str(data.dtype))
        ctx.values[out] = Value(shape=tuple(data.shape), qconst=QConst(np.asarray(data), quant))
        return
    source = ctx.value(name)
    if source.is_const:
        ctx.values[out] = source
        return
    if source.quant is None:
        raise NotExpressible(f"DequantizeLinear of the float tensor '{name}'")
    if out in ctx.graph_outputs and ctx.io_type == "float32":
        index = ctx.new_tensor(out, source.shape, source.perm, None)
        ctx.builder.operator("DEQUANTIZE", [source.tensor], [index])
        ctx.values[out] = Value(shape=source.shape, tensor=index, perm=source.perm)
        ctx.steps[out] = (source.quant.scale[0], source.quant.zero_point[0])
        return
    ctx.values[out] = Value(
        shape=source.shape, tensor=source.tensor, perm=source.perm, quant=source.quant, col_perm=source.col_perm
    )


@converter("Constant", tflite=())
def constant(ctx: Context, node: onnx.NodeProto, attrs: dict) -> None:
    """Constant: a constant value (written where an operator reads it)."""


@converter("Identity", "Dropout", tflite=())
def identity(ctx: Context, node: onnx.NodeProto, attrs: dict) -> None:
    """Identity / inference Dropout: the output is the input (no operator)."""
    if len(node.output) > 1 and node.output[1]:
        raise NotExpressible("Dropout mask output")
    ctx.values[node.output[0]] = ctx.value(node.input[0])
