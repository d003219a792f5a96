"""Caffe layers with learned filters or windows: Convolution, Deconvolution, InnerProduct, Pooling."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgecc.converters.caffe.graph import LAYERS, LayerContext, LayerError, Shape

__all__ = ["caffe_pool_divisor", "conv_geometry", "pool_geometry"]


def _per_axis(values: Any, h_field: tuple[Any, bool], w_field: tuple[Any, bool], default: int, n: int, what: str) -> list[int]:
    (h_value, h_set), (w_value, w_set) = h_field, w_field
    if h_set or w_set:
        if n != 2:
            raise LayerError(f"{what}_h/{what}_w are for 2-D inputs only")
        return [int(h_value), int(w_value)]
    values = [int(v) for v in values]
    if not values:
        return [default] * n
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise LayerError(f"{len(values)} {what} values for {n} spatial axes")
    return values


def conv_geometry(param: Any, n: int) -> tuple[list[int], list[int], list[int], list[int]]:
    """(kernel, pad, stride, dilation) of a ConvolutionParameter for `n` spatial axes."""

    def field(name: str) -> tuple[Any, bool]:
        return getattr(param, name), param.HasField(name)

    if param.HasField("kernel_h") != param.HasField("kernel_w"):
        raise LayerError("kernel_h and kernel_w must be given together")
    kernel = _per_axis(param.kernel_size, field("kernel_h"), field("kernel_w"), 0, n, "kernel")
    if any(k <= 0 for k in kernel):
        raise LayerError("kernel size is missing or zero")
    pad = _per_axis(param.pad, field("pad_h"), field("pad_w"), 0, n, "pad")
    stride = _per_axis(param.stride, field("stride_h"), field("stride_w"), 1, n, "stride")
    dilation = _per_axis(param.dilation, (0, False), (0, False), 1, n, "dilation")
    if any(s <= 0 for s in stride):
        raise LayerError("stride must be positive")
    return kernel, pad, stride, dilation


def _conv_setup(ctx: LayerContext, what: str) -> tuple[Shape, list[int], list[int], list[int], list[int], int, int, int]:
    """Checked input shape, geometry, group, input and output channels of a (de)convolution layer."""
    param = ctx.layer.convolution_param
    shape = ctx.shape()
    if ctx.axis(param.axis, len(shape)) != 1:
        raise LayerError(f"{what} over axis {param.axis} (only channels axis 1)")
    n = len(shape) - 2
    if n < 1:
        raise LayerError(f"convolution of a rank-{len(shape)} input")
    kernel, pad, stride, dilation = conv_geometry(param, n)
    group, channels, num_output = int(param.group), shape[1], int(param.num_output)
    if num_output <= 0:
        raise LayerError("num_output is missing or zero")
    if group <= 0 or channels % group or num_output % group:
        raise LayerError(f"group {group} does not divide {channels} input / {num_output} output channels")
    return shape, kernel, pad, stride, dilation, group, channels, num_output


def _weights_and_bias(ctx: LayerContext, weight_shape: tuple[int, ...], num_output: int) -> list[str]:
    """The input, the weight blob and (with bias_term) the bias blob of a (de)convolution as node inputs."""
    inputs = [ctx.inputs[0], ctx.const("W", ctx.blob(0, weight_shape, what="weights"))]
    if ctx.layer.convolution_param.bias_term:
        inputs.append(ctx.const("B", ctx.blob(1, (num_output,), what="bias")))
    return inputs


@LAYERS.register("Convolution")
def convolution(ctx: LayerContext) -> list[Shape]:
    """Convolution (group, dilation, per-axis kernel/pad/stride, bias_term) -> Conv."""
    shape, kernel, pad, stride, dilation, group, channels, num_output = _conv_setup(ctx, "convolution")
    inputs = _weights_and_bias(ctx, (num_output, channels // group, *kernel), num_output)
    ctx.node("Conv", inputs, ctx.outputs, kernel_shape=kernel, pads=pad + pad, strides=stride, dilations=dilation, group=group)
    out = [(size + 2 * p - (d * (k - 1) + 1)) // s + 1 for size, k, p, s, d in zip(shape[2:], kernel, pad, stride, dilation)]
    if any(o <= 0 for o in out):
        raise LayerError(f"output size {out} is empty for input {shape}")
    return [(shape[0], num_output, *out)]


@LAYERS.register("Deconvolution")
def deconvolution(ctx: LayerContext) -> list[Shape]:
    """Deconvolution (transposed convolution, group, dilation, bias_term) -> ConvTranspose."""
    shape, kernel, pad, stride, dilation, group, channels, num_output = _conv_setup(ctx, "deconvolution")
    inputs = _weights_and_bias(ctx, (channels, num_output // group, *kernel), num_output)
    ctx.node(
        "ConvTranspose", inputs, ctx.outputs, kernel_shape=kernel, pads=pad + pad, strides=stride, dilations=dilation, group=group
    )
    out = [s * (size - 1) + d * (k - 1) + 1 - 2 * p for size, k, p, s, d in zip(shape[2:], kernel, pad, stride, dilation)]
    return [(shape[0], num_output, *out)]


@LAYERS.register("InnerProduct")
def inner_product(ctx: LayerContext) -> list[Shape]:
    """InnerProduct (axis, transpose, bias_term) -> Flatten/Reshape + Gemm."""
    param = ctx.layer.inner_product_param
    shape = ctx.shape()
    axis = ctx.axis(param.axis, len(shape))
    outer, inner = shape[:axis], int(np.prod(shape[axis:]))
    num_output = int(param.num_output)
    if num_output <= 0:
        raise LayerError("num_output is missing or zero")
    if param.transpose:
        weight = ctx.blob(0, (inner, num_output), what="weights")
    else:
        weight = ctx.blob(0, (num_output, inner), what="weights")
    rows = int(np.prod(outer)) if outer else 1
    flat = ctx.inputs[0]
    if shape != (rows, inner):
        flat = ctx.node("Reshape", [flat, ctx.ints("flat_shape", [rows, inner])])[0]
    inputs = [flat, ctx.const("W", weight)]
    if param.bias_term:
        inputs.append(ctx.const("B", ctx.blob(1, (num_output,), what="bias")))
    out_shape = (*outer, num_output)
    gemm_out = ctx.outputs if out_shape == (rows, num_output) else 1
    result = ctx.node("Gemm", inputs, gemm_out, transB=0 if param.transpose else 1)
    if out_shape != (rows, num_output):
        ctx.node("Reshape", [result[0], ctx.ints("out_shape", out_shape)], ctx.outputs)
    return [out_shape]


def pool_geometry(param: Any, spatial: Shape) -> tuple[list[int], list[int], list[int], list[int], bool]:
    """(kernel, pad, stride, output size, global) of a PoolingParameter with Caffe's rounding."""
    if param.global_pooling:
        return list(spatial), [0, 0], [1, 1], [1] * len(spatial), True
    if len(spatial) != 2:
        raise LayerError("Caffe pooling is 2-D")
    if param.HasField("kernel_h") or param.HasField("kernel_w"):
        kernel = [int(param.kernel_h), int(param.kernel_w)]
    elif param.HasField("kernel_size"):
        kernel = [int(param.kernel_size)] * 2
    else:
        raise LayerError("kernel_size is missing")
    pad = [int(param.pad_h), int(param.pad_w)] if (param.HasField("pad_h") or param.HasField("pad_w")) else [int(param.pad)] * 2
    if param.HasField("stride_h") or param.HasField("stride_w"):
        stride = [int(param.stride_h), int(param.stride_w)]
    else:
        stride = [int(param.stride)] * 2
    if any(k <= 0 for k in kernel) or any(s <= 0 for s in stride):
        raise LayerError("kernel and stride must be positive")
    if any(p >= k for p, k in zip(pad, kernel)):
        raise LayerError(f"pad {pad} must be smaller than kernel {kernel}")
    out = []
    for size, k, p, s in zip(spatial, kernel, pad, stride):
        span = size + 2 * p - k
        count = (math.ceil(span / s) if param.round_mode == 0 else span // s) + 1
        if p and (count - 1) * s >= size + p:
            count -= 1
        out.append(count)
    if any(o <= 0 for o in out):
        raise LayerError(f"output size {out} is empty for input {tuple(spatial)}")
    return kernel, pad, stride, out, False


def caffe_pool_divisor(spatial: Shape, kernel: list[int], pad: list[int], stride: list[int], out: list[int]) -> np.ndarray:
    """Caffe's average-pooling divisor per output position (padding counted, the ceil overhang not)."""
    sizes = []
    for size, k, p, s, o in zip(spatial, kernel, pad, stride, out):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, size + p)
        sizes.append(end - start)
    return np.outer(sizes[0], sizes[1]).astype(np.float64)


@LAYERS.register("Pooling")
def pooling(ctx: LayerContext) -> list[Shape]:
    """Pooling MAX/AVE (global, Caffe's ceil rounding and border divisor) -> MaxPool/AveragePool."""
    param = ctx.layer.pooling_param
    shape = ctx.shape()
    if len(shape) != 4:
        raise LayerError(f"pooling of a rank-{len(shape)} input")
    if param.pool not in (0, 1):
        raise LayerError("STOCHASTIC pooling")
    kernel, pad, stride, out, is_global = pool_geometry(param, shape[2:])
    out_shape = (shape[0], shape[1], *out)
    is_max = param.pool == 0
    if is_global:
        ctx.node("GlobalMaxPool" if is_max else "GlobalAveragePool", [ctx.inputs[0]], ctx.outputs)
        return [out_shape]
    end = [max(0, (o - 1) * s + k - size - p) for o, s, k, size, p in zip(out, stride, kernel, shape[2:], pad)]
    attrs_pads_ok = all(p < k for p, k in zip(pad + end, kernel + kernel))
    divisor = caffe_pool_divisor(shape[2:], kernel, pad, stride, out)
    full = float(kernel[0] * kernel[1])
    exact_avg = bool(np.all(divisor == full))
    if attrs_pads_ok and (is_max or exact_avg):
        if is_max:
            ctx.node("MaxPool", [ctx.inputs[0]], ctx.outputs, kernel_shape=kernel, pads=pad + end, strides=stride)
        else:
            ctx.node(
                "AveragePool",
                [ctx.inputs[0]],
                ctx.outputs,
                kernel_shape=kernel,
                pads=pad + end,
                strides=stride,
                count_include_pad=1,
            )
        return [out_shape]
    source = ctx.inputs[0]
    if any(pad + end):
        fill = ctx.const("pad_value", np.finfo(np.float32).min if is_max else 0.0)
        pads = ctx.ints("pads", [0, 0, pad[0], pad[1], 0, 0, end[0], end[1]])
        source = ctx.node("Pad", [source, pads, fill], mode="constant")[0]
    if is_max:
        ctx.node("MaxPool", [source], ctx.outputs, kernel_shape=kernel, strides=stride)
        return [out_shape]
    pooled = ctx.node("AveragePool", [source], kernel_shape=kernel, strides=stride)[0]
    with np.errstate(divide="ignore"):
        factor = np.where(divisor != 0, full / divisor, 0.0).astype(np.float32)
    ctx.node("Mul", [pooled, ctx.const("divisor", factor.reshape(1, 1, *out))], ctx.outputs)
    return [out_shape]
