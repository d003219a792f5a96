"""Caffe normalisation and affine layers: BatchNorm, Scale, Bias, LRN, Normalize, MVN."""

from __future__ import annotations

import numpy as np

from edgecc.converters.caffe.graph import LAYERS, LayerContext, LayerError, Shape

__all__: list[str] = []


@LAYERS.register("BatchNorm")
def batch_norm(ctx: LayerContext) -> list[Shape]:
    """BatchNorm with stored statistics (mean, variance, moving-average scale factor) -> BatchNormalization."""
    shape = ctx.shape()
    if len(shape) < 2:
        raise LayerError("BatchNorm needs a channels axis")
    channels = shape[1]
    mean = ctx.blob(0, (channels,), what="mean")
    variance = ctx.blob(1, (channels,), kind="positive", what="variance")
    factor_blob = ctx.blob(2, (1,), kind="one", what="moving-average scale factor")
    factor = float(factor_blob.reshape(-1)[0])
    scale = 0.0 if factor == 0 else 1.0 / factor
    eps = float(ctx.layer.batch_norm_param.eps)
    inputs = [
        ctx.inputs[0],
        ctx.const("gamma", np.ones(channels, np.float32)),
        ctx.const("beta", np.zeros(channels, np.float32)),
        ctx.const("mean", (mean * scale).astype(np.float32)),
        ctx.const("var", (variance * scale).astype(np.float32)),
    ]
    ctx.node("BatchNormalization", inputs, ctx.outputs, epsilon=eps)
    return [shape]


def _param_shape(ctx: LayerContext, axis_value: int, num_axes: int) -> tuple[int, tuple[int, ...]]:
    shape = ctx.shape()
    axis = ctx.axis(axis_value, len(shape)) if len(shape) else 0
    if num_axes < -1:
        raise LayerError(f"num_axes {num_axes} must be -1 or more")
    end = len(shape) if num_axes == -1 else axis + num_axes
    if end > len(shape):
        raise LayerError(f"axis {axis_value} + num_axes {num_axes} exceed the input rank {len(shape)}")
    return axis, tuple(shape[axis:end])


def _broadcast(ctx: LayerContext, tensor: str, param_shape: tuple[int, ...], axis: int, suffix: str) -> str:
    """Reshape a parameter tensor so it broadcasts against the input from `axis`."""
    rank = len(ctx.shape())
    trailing = rank - axis - len(param_shape)
    target = (*param_shape, *([1] * trailing))
    if not param_shape:
        return tensor
    return ctx.node("Reshape", [tensor, ctx.ints(f"{suffix}_shape", target)])[0]


def _second_bottom(ctx: LayerContext, axis_value: int) -> tuple[int, tuple[int, ...]]:
    shape, other = ctx.shape(0), ctx.shape(1)
    axis = ctx.axis(axis_value, len(shape)) if other else 0
    if tuple(shape[axis : axis + len(other)]) != tuple(other):
        raise LayerError(f"second bottom of shape {other} does not match input {shape} from axis {axis}")
    return axis, tuple(other)


def _affine_layer(ctx: LayerContext, op: str, axis_value: int, num_axes: int, bias_term: bool) -> list[Shape]:
    shape = ctx.shape()
    blob_index = 0
    if len(ctx.inputs) > 1:
        axis, param_shape = _second_bottom(ctx, axis_value)
        factor = ctx.inputs[1]
    else:
        axis, param_shape = _param_shape(ctx, axis_value, num_axes)
        kind = "one" if op == "Mul" else "normal"
        factor = ctx.const(
            "scale" if op == "Mul" else "bias", ctx.blob(0, param_shape, kind=kind, what="scale" if op == "Mul" else "bias")
        )
        blob_index = 1
    factor = _broadcast(ctx, factor, param_shape, axis, "param")
    if not bias_term:
        ctx.node(op, [ctx.inputs[0], factor], ctx.outputs)
        return [shape]
    scaled = ctx.node(op, [ctx.inputs[0], factor])[0]
    bias = ctx.const("bias", ctx.blob(blob_index, param_shape, what="bias"))
    ctx.node("Add", [scaled, _broadcast(ctx, bias, param_shape, axis, "bias")], ctx.outputs)
    return [shape]


@LAYERS.register("Scale")
def scale(ctx: LayerContext) -> list[Shape]:
    """Scale by a learned blob or a second bottom (axis, num_axes, bias_term) -> Mul (+ Add)."""
    param = ctx.layer.scale_param
    return _affine_layer(ctx, "Mul", int(param.axis), int(param.num_axes), bool(param.bias_term))


@LAYERS.register("Bias")
def bias(ctx: LayerContext) -> list[Shape]:
    """Bias from a learned blob or a second bottom (axis, num_axes) -> Add."""
    param = ctx.layer.bias_param
    return _affine_layer(ctx, "Add", int(param.axis), int(param.num_axes), False)


@LAYERS.register("LRN")
def lrn(ctx: LayerContext) -> list[Shape]:
    """LRN across channels -> LRN; within channel -> x / (1 + alpha * avgpool(x^2))^beta."""
    param = ctx.layer.lrn_param
    shape = ctx.shape()
    size, alpha, beta = int(param.local_size), float(param.alpha), float(param.beta)
    if size % 2 == 0:
        raise LayerError(f"local_size {size} must be odd")
    if len(shape) != 4:
        raise LayerError(f"LRN of a rank-{len(shape)} input")
    if param.norm_region == 0:
        ctx.node("LRN", [ctx.inputs[0]], ctx.outputs, size=size, alpha=alpha, beta=beta, bias=float(param.k))
        return [shape]
    pad = (size - 1) // 2
    square = ctx.node("Mul", [ctx.inputs[0], ctx.inputs[0]])[0]
    pooled = ctx.node("AveragePool", [square], kernel_shape=[size, size], pads=[pad] * 4, strides=[1, 1], count_include_pad=1)[0]
    scaled = ctx.node("Mul", [pooled, ctx.const("alpha", alpha)])[0]
    shifted = ctx.node("Add", [scaled, ctx.const("one", 1.0)])[0]
    denominator = ctx.node("Pow", [shifted, ctx.const("beta", beta)])[0]
    ctx.node("Div", [ctx.inputs[0], denominator], ctx.outputs)
    return [shape]


@LAYERS.register("Normalize")
def normalize(ctx: LayerContext) -> list[Shape]:
    """SSD's L2 Normalize (across_spatial, channel_shared scale) -> ReduceSumSquare/Sqrt/Div/Mul."""
    param = ctx.layer.norm_param
    shape = ctx.shape()
    if len(shape) != 4:
        raise LayerError(f"Normalize of a rank-{len(shape)} input")
    axes = [1, 2, 3] if param.across_spatial else [1]
    summed = ctx.node("ReduceSumSquare", [ctx.inputs[0]], axes=axes, keepdims=1)[0]
    eps_added = ctx.node("Add", [summed, ctx.const("eps", float(param.eps))])[0]
    norm = ctx.node("Sqrt", [eps_added])[0]
    normalized = ctx.node("Div", [ctx.inputs[0], norm])[0]
    channels = 1 if param.channel_shared else shape[1]
    weights = ctx.blob(0, (channels,), kind="positive", what="scale")
    factor = weights.reshape(1) if param.channel_shared else weights.reshape(1, channels, 1, 1)
    ctx.node("Mul", [normalized, ctx.const("scale", factor)], ctx.outputs)
    return [shape]


@LAYERS.register("MVN")
def mvn(ctx: LayerContext) -> list[Shape]:
    """MVN (mean removal, optional variance normalisation, across_channels) -> ReduceMean/Sub/Div."""
    param = ctx.layer.mvn_param
    shape = ctx.shape()
    if len(shape) < 2:
        raise LayerError("MVN needs at least 2 axes")
    axes = list(range(1, len(shape))) if param.across_channels else list(range(2, len(shape)))
    mean = ctx.node("ReduceMean", [ctx.inputs[0]], axes=axes, keepdims=1)[0]
    if not param.normalize_variance:
        ctx.node("Sub", [ctx.inputs[0], mean], ctx.outputs)
        return [shape]
    centered = ctx.node("Sub", [ctx.inputs[0], mean])[0]
    squared = ctx.node("Mul", [centered, centered])[0]
    variance = ctx.node("ReduceMean", [squared], axes=axes, keepdims=1)[0]
    std = ctx.node("Sqrt", [variance])[0]
    denominator = ctx.node("Add", [std, ctx.const("eps", float(param.eps))])[0]
    ctx.node("Div", [centered, denominator], ctx.outputs)
    return [shape]
