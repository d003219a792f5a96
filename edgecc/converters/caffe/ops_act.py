"""Caffe element-wise activation layers: ReLU, PReLU, ELU, Sigmoid, TanH, AbsVal, Power, Exp, Log, BNLL, Threshold."""

from __future__ import annotations

import math

from edgecc.converters.caffe.graph import LAYERS, LayerContext, LayerError, Shape

__all__: list[str] = []


def _unary(ctx: LayerContext, op_type: str, **attrs: object) -> list[Shape]:
    ctx.node(op_type, [ctx.inputs[0]], ctx.outputs, **attrs)
    return [ctx.shape()]


@LAYERS.register("ReLU")
def relu(ctx: LayerContext) -> list[Shape]:
    """ReLU, leaky with negative_slope -> Relu / LeakyRelu."""
    slope = float(ctx.layer.relu_param.negative_slope)
    return _unary(ctx, "LeakyRelu", alpha=slope) if slope else _unary(ctx, "Relu")


@LAYERS.register("PReLU")
def prelu(ctx: LayerContext) -> list[Shape]:
    """PReLU (per channel or channel_shared slope) -> PRelu."""
    shape = ctx.shape()
    channels = 1 if ctx.layer.prelu_param.channel_shared else (shape[1] if len(shape) > 1 else 1)
    slope = ctx.blob(0, (channels,), what="slopes")
    broadcast = slope.reshape((channels,) + (1,) * max(0, len(shape) - 2)) if channels > 1 else slope.reshape(1)
    ctx.node("PRelu", [ctx.inputs[0], ctx.const("slope", broadcast)], ctx.outputs)
    return [shape]


@LAYERS.register("ELU")
def elu(ctx: LayerContext) -> list[Shape]:
    """ELU (alpha) -> Elu."""
    return _unary(ctx, "Elu", alpha=float(ctx.layer.elu_param.alpha))


@LAYERS.register("Sigmoid")
def sigmoid(ctx: LayerContext) -> list[Shape]:
    """Sigmoid -> Sigmoid."""
    return _unary(ctx, "Sigmoid")


@LAYERS.register("TanH")
def tanh(ctx: LayerContext) -> list[Shape]:
    """TanH -> Tanh."""
    return _unary(ctx, "Tanh")


@LAYERS.register("AbsVal")
def absval(ctx: LayerContext) -> list[Shape]:
    """AbsVal -> Abs."""
    return _unary(ctx, "Abs")


@LAYERS.register("BNLL")
def bnll(ctx: LayerContext) -> list[Shape]:
    """BNLL, log(1 + exp(x)) -> Softplus."""
    return _unary(ctx, "Softplus")


def _affine(ctx: LayerContext, source: str, scale: float, shift: float, last: bool) -> str:
    """scale * x + shift, skipping the identity parts; `last` writes the layer output."""
    steps = [("Mul", scale, 1.0), ("Add", shift, 0.0)]
    steps = [(op, value) for op, value, identity in steps if value != identity]
    if not steps:
        if last:
            return ctx.node("Identity", [source], ctx.outputs)[0]
        return source
    for index, (op, value) in enumerate(steps):
        final = last and index == len(steps) - 1
        source = ctx.node(op, [source, ctx.const(op.lower(), value)], ctx.outputs if final else 1)[0]
    return source


@LAYERS.register("Power")
def power(ctx: LayerContext) -> list[Shape]:
    """Power, (shift + scale * x) ^ power -> Mul/Add/Pow."""
    param = ctx.layer.power_param
    p = float(param.power)
    if p == 0.0:
        zero = ctx.node("Mul", [ctx.inputs[0], ctx.const("zero", 0.0)])[0]
        ctx.node("Add", [zero, ctx.const("one", 1.0)], ctx.outputs)
        return [ctx.shape()]
    base = _affine(ctx, ctx.inputs[0], float(param.scale), float(param.shift), last=p == 1.0)
    if p != 1.0:
        ctx.node("Pow", [base, ctx.const("power", p)], ctx.outputs)
    return [ctx.shape()]


@LAYERS.register("Exp")
def exp(ctx: LayerContext) -> list[Shape]:
    """Exp, base ^ (shift + scale * x) -> Mul/Add/Exp."""
    param = ctx.layer.exp_param
    base = float(param.base)
    if base != -1.0 and base <= 0:
        raise LayerError(f"base {base} must be positive (or -1 for e)")
    log_base = 1.0 if base == -1.0 else math.log(base)
    inner = _affine(ctx, ctx.inputs[0], float(param.scale) * log_base, float(param.shift) * log_base, last=False)
    ctx.node("Exp", [inner], ctx.outputs)
    return [ctx.shape()]


@LAYERS.register("Log")
def log(ctx: LayerContext) -> list[Shape]:
    """Log, log_base(shift + scale * x) -> Mul/Add/Log(/Mul)."""
    param = ctx.layer.log_param
    base = float(param.base)
    if base != -1.0 and (base <= 0 or base == 1.0):
        raise LayerError(f"base {base} must be positive and not 1 (or -1 for e)")
    inner = _affine(ctx, ctx.inputs[0], float(param.scale), float(param.shift), last=False)
    if base == -1.0:
        ctx.node("Log", [inner], ctx.outputs)
    else:
        natural = ctx.node("Log", [inner])[0]
        ctx.node("Mul", [natural, ctx.const("inv_log_base", 1.0 / math.log(base))], ctx.outputs)
    return [ctx.shape()]


@LAYERS.register("Threshold")
def threshold(ctx: LayerContext) -> list[Shape]:
    """Threshold, 1 where x > threshold else 0 -> Greater + Cast."""
    above = ctx.node("Greater", [ctx.inputs[0], ctx.const("threshold", float(ctx.layer.threshold_param.threshold))])[0]
    ctx.node("Cast", [above], ctx.outputs, to=1)
    return [ctx.shape()]
