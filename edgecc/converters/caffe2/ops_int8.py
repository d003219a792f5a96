"""Caffe2 Int8 (QNNPACK) operators as QDQ ONNX: each uint8 blob keeps its name, scale and zero point.

A quantised op becomes DequantizeLinear of its inputs, the float op, and a
QuantizeLinear with the op's Y_scale / Y_zero_point; onnxruntime fuses these
into integer kernels. Caffe2 Int8 ops default to NHWC order.
"""

from __future__ import annotations

import numpy as np

from edgecc.converters.caffe2.graph import OPS, Graph, Op, OpInvalid, Quant
from edgecc.converters.caffe2.ops_nn import emit_conv, emit_fc, emit_pool, emit_softmax
from edgecc.converters.caffe2.ops_tensor import concat

__all__ = ["output_quant"]


def output_quant(op: Op) -> Quant:
    """Y_scale / Y_zero_point of an Int8 op."""
    if not op.has("Y_scale"):
        raise OpInvalid("has no Y_scale argument")
    scale = float(op.f("Y_scale", 0.0) or 0.0)
    zero = int(op.i("Y_zero_point", 0) or 0)
    if not scale > 0 or not 0 <= zero <= 255:
        raise OpInvalid(f"Y_scale {scale} / Y_zero_point {zero} are not a valid uint8 quantisation")
    return Quant(scale, zero)


def _nhwc_default(op: Op) -> Op:
    if not op.has("order"):
        op.default_order = "NHWC"
    return op


def _requantize(g: Graph, op: Op, value: str) -> None:
    g.quantize(value, op.output(), output_quant(op), name=f"{op.name}_quantize")


def _float_out(g: Graph, op: Op) -> str:
    return g.unique(f"{op.output()}_float")


def _bias(g: Graph, bias: str | None) -> str | None:
    """The float bias: int32 with scale (zero point 0) dequantised; other zero points folded into a constant."""
    if bias is None:
        return None
    return g.dequantized(bias)


def _weight(g: Graph, op: Op, weight: str, nd: int) -> str:
    """The float filter in OIHW layout: NHWC [M, k..., C] uint8 constants are transposed before DequantizeLinear."""
    if op.order() == "NHWC":
        quant = g.quant.get(weight)
        perm = [0, nd + 1] + list(range(1, nd + 1))
        if weight in g.consts:
            moved = g.const(np.ascontiguousarray(g.consts[weight].transpose(perm)), f"{weight}_oihw")
        else:
            moved = g.one("Transpose", [weight], g.unique(f"{weight}_oihw"), perm=perm)
        if quant is not None:
            g.quant[moved] = quant
        weight = moved
    return g.dequantized(weight)


def _conv_operands(g: Graph, op: Op) -> tuple[str, str, str | None]:
    """Float X, W and B of an Int8 convolution (NHWC unless the op says otherwise)."""
    _nhwc_default(op)
    x = g.dequantized(op.input(0))
    nd = g.rank(op.input(0)) - 2
    return x, _weight(g, op, op.input(1), nd), _bias(g, op.onnx_inputs[2] if len(op.onnx_inputs) > 2 else None)


def _conv(relu: bool):
    def convert(g: Graph, op: Op) -> None:
        x, w, b = _conv_operands(g, op)
        nchw = op.order() == "NCHW"
        y = emit_conv(g, op, x, w, b, _float_out(g, op), weight_oihw=not nchw)
        if relu:
            y = g.one("Relu", [y], g.unique(f"{op.output()}_relu"))
        _requantize(g, op, y)

    convert.__doc__ = f"Quantised convolution{' + Relu' if relu else ''} (NHWC, uint8 X and W, int32 bias) as DQ-Conv-Q."
    return convert


OPS.register("Int8Conv", _conv(False))
OPS.register("Int8ConvRelu", _conv(True))


@OPS.register("Int8ConvTranspose")
def int8_conv_transpose(g: Graph, op: Op) -> None:
    """Quantised transposed convolution (NHWC) as DQ-ConvTranspose-Q."""
    x, w, b = _conv_operands(g, op)
    _requantize(g, op, emit_conv(g, op, x, w, b, _float_out(g, op), transpose=True, weight_oihw=op.order() == "NHWC"))


def _fc(relu: bool):
    def convert(g: Graph, op: Op) -> None:
        x = g.dequantized(op.input(0))
        w = g.dequantized(op.input(1))
        b = _bias(g, op.onnx_inputs[2] if len(op.onnx_inputs) > 2 else None)
        y = emit_fc(g, op, x, w, b, _float_out(g, op))
        if relu:
            y = g.one("Relu", [y], g.unique(f"{op.output()}_relu"))
        _requantize(g, op, y)

    convert.__doc__ = f"Quantised fully connected{' + Relu' if relu else ''} (uint8 X and W [N, K], int32 bias) as DQ-Gemm-Q."
    return convert


OPS.register("Int8FC", _fc(False))
OPS.register("Int8FCRelu", _fc(True))


@OPS.register("Int8Quantize")
def int8_quantize(g: Graph, op: Op) -> None:
    """float -> uint8 with Y_scale / Y_zero_point (round half to even, saturate)."""
    g.quantize(op.input(0), op.output(), output_quant(op), name=op.name)


@OPS.register("Int8Dequantize")
def int8_dequantize(g: Graph, op: Op) -> None:
    """uint8 -> float with the input's scale and zero point."""
    x = op.input(0)
    quant = g.quant.get(x)
    if quant is None:
        raise OpInvalid(f"input '{x}' is not a quantised tensor")
    g.dequantize_into(x, op.output(), node_name=op.name)


def _unary(onnx_type: str, doc: str):
    def convert(g: Graph, op: Op) -> None:
        y = g.one(onnx_type, [g.dequantized(op.input(0))], _float_out(g, op), name=op.name)
        _requantize(g, op, y)

    convert.__doc__ = doc
    return convert


OPS.register("Int8Relu", _unary("Relu", "Quantised Relu: max(x, zero point) after requantisation."))
OPS.register("Int8Sigmoid", _unary("Sigmoid", "Quantised sigmoid."))


def _pool(kind: str):
    def convert(g: Graph, op: Op) -> None:
        _nhwc_default(op)
        y = emit_pool(g, op, kind, g.dequantized(op.input(0)), _float_out(g, op))
        _requantize(g, op, y)

    convert.__doc__ = f"Quantised {kind} (NHWC by default) as DQ-{kind}-Q."
    return convert


OPS.register("Int8MaxPool", _pool("MaxPool"))
OPS.register("Int8AveragePool", _pool("AveragePool"))


def _add(relu: bool, name: str):
    def convert(g: Graph, op: Op) -> None:
        inputs = [g.dequantized(i) for i in op.onnx_inputs]
        if len(inputs) < 2:
            raise OpInvalid(f"{name} needs at least two inputs")
        y = g.one("Sum" if len(inputs) > 2 else "Add", inputs, _float_out(g, op), name=op.name)
        if relu:
            y = g.one("Relu", [y], g.unique(f"{op.output()}_relu"))
        _requantize(g, op, y)

    convert.__doc__ = f"Quantised element-wise sum{' + Relu' if relu else ''} with output requantisation."
    return convert


OPS.register("Int8Add", _add(False, "Int8Add"))
OPS.register("Int8AddRelu", _add(True, "Int8AddRelu"))
OPS.register("Int8Sum", _add(False, "Int8Sum"))
OPS.register("Int8SumRelu", _add(True, "Int8SumRelu"))


@OPS.register("Int8Concat")
def int8_concat(g: Graph, op: Op) -> None:
    """Quantised concatenation (axis, or the channel dim of NHWC) with output requantisation."""
    _nhwc_default(op)
    target = op.output()
    op.onnx_inputs = [g.dequantized(i) for i in op.onnx_inputs]
    op.onnx_outputs = [_float_out(g, op)] + op.onnx_outputs[1:]
    concat(g, op)
    y = op.onnx_outputs[0]
    op.onnx_outputs[0] = target
    _requantize(g, op, y)


@OPS.register("Int8Softmax")
def int8_softmax(g: Graph, op: Op) -> None:
    """Quantised softmax over the last dimension (QNNPACK's 2-D view) with output requantisation."""
    x = g.dequantized(op.input(0))
    if not op.has("axis"):
        op.forced_axis = g.rank(x) - 1
    _requantize(g, op, emit_softmax(g, op, x, _float_out(g, op)))


def _reshape_like(onnx_type: str, doc: str):
    def convert(g: Graph, op: Op) -> None:
        x = g.dequantized(op.input(0))
        if onnx_type == "Flatten":
            y = g.one("Flatten", [x], _float_out(g, op), name=op.name, axis=int(op.i("axis", 1) if op.has("axis") else 1))
        else:
            dims = op.ints("shape")
            if dims is None:
                raise OpInvalid("Int8Reshape without a 'shape' argument")
            y = g.one("Reshape", [x, g.ints(dims, f"{op.name}_shape")], _float_out(g, op), name=op.name)
        _requantize(g, op, y)

    convert.__doc__ = doc
    return convert


OPS.register("Int8Reshape", _reshape_like("Reshape", "Quantised reshape by the 'shape' argument."))
OPS.register("Int8Flatten", _reshape_like("Flatten", "Quantised flatten at 'axis'."))
