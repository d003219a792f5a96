"""Neural-network layers: convolution, fully connected, normalisation, activations, pooling, resizing."""

from __future__ import annotations

import math

import numpy as np

from edgecc.converters.mxnet.graph import Graph, register
from edgecc.converters.mxnet.schema import SymNode
from edgecc.errors import UnsupportedError

__all__: list[str] = []


def _unsupported(ctx: Graph, node: SymNode, reason: str) -> UnsupportedError:
    return UnsupportedError(f"{ctx.path}: node '{node.name}' ({node.op}): {reason}", path=ctx.path)


def _spatial(node: SymNode, key: str, n: int, default: int) -> list[int]:
    values = list(node.attrs.ints(key))
    return values if values else [default] * n


@register("Convolution")
def convolution(ctx: Graph, node: SymNode) -> list[str]:
    """Conv with groups, dilation, symmetric padding, optional bias."""
    a = node.attrs
    kernel = list(a.ints("kernel"))
    n = len(kernel)
    groups = a.int("num_group", 1)
    filters = a.int("num_filter")
    weight = ctx.param_array(node, 1, what="weight")
    if weight.ndim != n + 2 or weight.shape[0] != filters or list(weight.shape[2:]) != kernel:
        ctx.param_array(node, 1, (filters, weight.shape[1], *kernel), "weight")
    inputs = [ctx.inp(node, 0), ctx.param(node, 1)]
    if not a.bool("no_bias"):
        inputs.append(ctx.param(node, 2, (filters,), "bias"))
    pad = _spatial(node, "pad", n, 0)
    if a.str("layout", "") not in ("", "NCW", "NCHW", "NCDHW"):
        raise _unsupported(ctx, node, f"layout {a.str('layout')}")
    return [
        ctx.add(
            "Conv",
            inputs,
            ctx.out(node),
            kernel_shape=kernel,
            strides=_spatial(node, "stride", n, 1),
            dilations=_spatial(node, "dilate", n, 1),
            pads=pad + pad,
            group=groups,
        )
    ]


@register("Deconvolution")
def deconvolution(ctx: Graph, node: SymNode) -> list[str]:
    """ConvTranspose with adj (output_padding) and target_shape."""
    a = node.attrs
    kernel = list(a.ints("kernel"))
    n = len(kernel)
    groups = a.int("num_group", 1)
    filters = a.int("num_filter")
    x = ctx.inp(node, 0)
    weight = ctx.param_array(node, 1, what="weight")
    if weight.ndim != n + 2 or weight.shape[1] * groups != filters or list(weight.shape[2:]) != kernel:
        ctx.param_array(node, 1, (weight.shape[0], filters // max(groups, 1), *kernel), "weight")
    inputs = [x, ctx.param(node, 1)]
    if not a.bool("no_bias", True):
        inputs.append(ctx.param(node, 2, (filters,), "bias"))
    stride = _spatial(node, "stride", n, 1)
    dilate = _spatial(node, "dilate", n, 1)
    pad = _spatial(node, "pad", n, 0)
    adj = _spatial(node, "adj", n, 0)
    target = [t for t in a.ints("target_shape") if t > 0]
    if target:
        spatial = ctx.static_shape(x, node, "target_shape")[2:]
        pad, adj = [], []
        for i in range(n):
            total = stride[i] * (spatial[i] - 1) + (kernel[i] - 1) * dilate[i] + 1 - target[i]
            adj.append(total % 2)
            pad.append((total + 1) // 2)
    return [
        ctx.add(
            "ConvTranspose",
            inputs,
            ctx.out(node),
            kernel_shape=kernel,
            strides=stride,
            dilations=dilate,
            pads=pad + pad,
            output_padding=adj,
            group=groups,
        )
    ]


@register("FullyConnected")
def fully_connected(ctx: Graph, node: SymNode) -> list[str]:
    """Gemm on the flattened input (flatten=True) or MatMul on the last axis (flatten=False)."""
    a = node.attrs
    hidden = a.int("num_hidden")
    weight = ctx.param_array(node, 1, what="weight")
    if weight.ndim != 2 or weight.shape[0] != hidden:
        ctx.param_array(node, 1, (hidden, weight.shape[-1]), "weight")
    x = ctx.inp(node, 0)
    bias = None if a.bool("no_bias") else ctx.param(node, 2, (hidden,), "bias")
    if a.bool("flatten", True):
        flat = ctx.add("Flatten", [x], f"{node.name}__flat", axis=1)
        inputs = [flat, ctx.param(node, 1)] + ([bias] if bias else [])
        return [ctx.add("Gemm", inputs, ctx.out(node), transB=1)]
    wt = ctx.const(np.ascontiguousarray(weight.T), f"{node.name}__weight_t", weight.dtype)
    if bias is None:
        return [ctx.add("MatMul", [x, wt], ctx.out(node))]
    mm = ctx.add("MatMul", [x, wt], f"{node.name}__matmul")
    return [ctx.add("Add", [mm, bias], ctx.out(node))]


@register("BatchNorm", "BatchNorm_v1")
def batch_norm(ctx: Graph, node: SymNode) -> list[str]:
    """Inference batch norm from the moving statistics (fix_gamma sets gamma to 1)."""
    a = node.attrs
    eps = a.float("eps", 1e-3)
    x = ctx.inp(node, 0)
    gamma = ctx.param_array(node, 1, what="gamma")
    channels = gamma.shape
    beta = ctx.param_array(node, 2, channels, "beta")
    mean = ctx.param_array(node, 3, channels, "moving_mean")
    var = ctx.param_array(node, 4, channels, "moving_var")
    if a.bool("fix_gamma", True):
        gamma = np.ones_like(gamma)
    axis = a.int("axis", 1)
    if axis != 1:
        rank = ctx.rank(x, node)
        axis = axis % rank
        if axis != 1:
            shape = [1] * rank
            shape[axis] = -1
            scale = (gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)).reshape(shape)
            shift = (beta - mean * scale.reshape(-1)).reshape(shape)
            mul = ctx.add("Mul", [x, ctx.const(scale, f"{node.name}__scale", gamma.dtype)], f"{node.name}__mul")
            return [ctx.add("Add", [mul, ctx.const(shift, f"{node.name}__shift", gamma.dtype)], ctx.out(node))]
    names = [
        ctx.const(gamma, f"{node.name}__gamma", gamma.dtype) if a.bool("fix_gamma", True) else ctx.param(node, 1),
        ctx.param(node, 2),
        ctx.param(node, 3),
        ctx.param(node, 4),
    ]
    return [ctx.add("BatchNormalization", [x, *names], ctx.out(node), epsilon=eps)]


_ACTIVATIONS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softrelu": "Softplus", "softsign": "Softsign"}


@register("Activation")
def activation(ctx: Graph, node: SymNode) -> list[str]:
    """relu, sigmoid, tanh, softrelu (Softplus), softsign."""
    act = node.attrs.str("act_type", "relu").lower()
    if act not in _ACTIVATIONS:
        raise _unsupported(ctx, node, f"act_type {act}")
    return [ctx.add(_ACTIVATIONS[act], [ctx.inp(node, 0)], ctx.out(node))]


def _gelu(ctx: Graph, x: str, out: str, base: str) -> str:
    scaled = ctx.add("Mul", [x, ctx.const(1.0 / math.sqrt(2.0), f"{base}__rsqrt2", ctx.np_dtype(x))], f"{base}__scaled")
    erf = ctx.add("Erf", [scaled], f"{base}__erf")
    one = ctx.add("Add", [erf, ctx.const(1.0, f"{base}__one", ctx.np_dtype(x))], f"{base}__erf1")
    half = ctx.add("Mul", [x, ctx.const(0.5, f"{base}__half", ctx.np_dtype(x))], f"{base}__halfx")
    return ctx.add("Mul", [half, one], out)


@register("LeakyReLU")
def leaky_relu(ctx: Graph, node: SymNode) -> list[str]:
    """leaky, prelu (per-channel gamma), elu, selu, gelu, rrelu (mean slope at inference)."""
    a = node.attrs
    act = a.str("act_type", "leaky").lower()
    x = ctx.inp(node, 0)
    slope = a.float("slope", 0.25)
    if act == "leaky":
        return [ctx.add("LeakyRelu", [x], ctx.out(node), alpha=slope)]
    if act == "rrelu":
        mid = (a.float("lower_bound", 0.125) + a.float("upper_bound", 0.334)) / 2.0
        return [ctx.add("LeakyRelu", [x], ctx.out(node), alpha=mid)]
    if act == "elu":
        return [ctx.add("Elu", [x], ctx.out(node), alpha=slope)]
    if act == "selu":
        return [ctx.add("Selu", [x], ctx.out(node), alpha=1.6732632423543772, gamma=1.0507009873554805)]
    if act == "gelu":
        return [_gelu(ctx, x, ctx.out(node), node.name)]
    if act == "prelu":
        gamma = ctx.param_array(node, 1, what="gamma")
        rank = ctx.rank(x, node)
        if gamma.size == 1:
            slope_name = ctx.const(gamma.reshape(()), f"{node.name}__gamma", gamma.dtype)
        else:
            shape = [-1] + [1] * max(rank - 2, 0)
            slope_name = ctx.const(gamma.reshape(shape), f"{node.name}__gamma", gamma.dtype)
        return [ctx.add("PRelu", [x, slope_name], ctx.out(node))]
    raise _unsupported(ctx, node, f"act_type {act}")


@register("Pooling", "Pooling_v1")
def pooling(ctx: Graph, node: SymNode) -> list[str]:
    """max/avg/sum/lp pooling, global or windowed, valid or full (ceil) convention."""
    a = node.attrs
    pool = a.str("pool_type", "max").lower()
    x = ctx.inp(node, 0)
    out = ctx.out(node)
    if pool not in ("max", "avg", "sum", "lp"):
        raise _unsupported(ctx, node, f"pool_type {pool}")
    if a.bool("global_pool"):
        if pool == "max":
            return [ctx.add("GlobalMaxPool", [x], out)]
        if pool == "avg":
            return [ctx.add("GlobalAveragePool", [x], out)]
        if pool == "lp":
            return [ctx.add("GlobalLpPool", [x], out, p=a.int("p_value", 2))]
        rank = ctx.rank(x, node)
        return [ctx.add("ReduceSum", [x, ctx.ints(list(range(2, rank)), f"{node.name}__axes")], out, keepdims=1)]
    kernel = list(a.ints("kernel"))
    n = len(kernel)
    pad = _spatial(node, "pad", n, 0)
    stride = _spatial(node, "stride", n, 1)
    convention = a.str("pooling_convention", "valid").lower()
    if convention not in ("valid", "full"):
        raise _unsupported(ctx, node, f"pooling_convention {convention}")
    ceil = 1 if convention == "full" else 0
    common = {"kernel_shape": kernel, "strides": stride, "pads": pad + pad, "ceil_mode": ceil}
    if pool == "max":
        return [ctx.add("MaxPool", [x], out, **common)]
    if pool == "lp":
        if ceil:
            raise _unsupported(ctx, node, "p-norm pooling with pooling_convention full")
        del common["ceil_mode"]
        return [ctx.add("LpPool", [x], out, p=a.int("p_value", 2), **common)]
    include = 1 if a.bool("count_include_pad", True) else 0
    if pool == "avg":
        return [ctx.add("AveragePool", [x], out, count_include_pad=include, **common)]
    avg = ctx.add("AveragePool", [x], f"{node.name}__avg", count_include_pad=1, **common)
    size = float(np.prod(kernel))
    return [ctx.add("Mul", [avg, ctx.const(size, f"{node.name}__size", ctx.np_dtype(x))], out)]


@register("Dropout")
def dropout(ctx: Graph, node: SymNode) -> list[str]:
    """Removed at inference (Identity)."""
    return [ctx.add("Identity", [ctx.inp(node, 0)], ctx.out(node))]


def _softmax(ctx: Graph, node: SymNode, x: str, axis: int, op: str = "Softmax") -> str:
    temperature = node.attrs.float("temperature", 1.0) if node.attrs.has("temperature") else 1.0
    if temperature != 1.0:
        x = ctx.add("Div", [x, ctx.const(temperature, f"{node.name}__t", ctx.np_dtype(x))], f"{node.name}__scaled")
    return ctx.add(op, [x], ctx.out(node), axis=axis)


def _flat_softmax(ctx: Graph, node: SymNode, x: str) -> str:
    """Softmax over everything but the batch axis, output shaped as the input."""
    rank = ctx.rank(x, node)
    if rank == 2:
        return ctx.add("Softmax", [x], ctx.out(node), axis=1)
    flat = ctx.add("Flatten", [x], f"{node.name}__flat", axis=1)
    soft = ctx.add("Softmax", [flat], f"{node.name}__soft", axis=1)
    shape = ctx.add("Shape", [x], f"{node.name}__shape")
    return ctx.add("Reshape", [soft, shape], ctx.out(node))


@register("softmax")
def softmax(ctx: Graph, node: SymNode) -> list[str]:
    """softmax along `axis` (default -1) with temperature."""
    if node.attrs.bool("use_length"):
        raise _unsupported(ctx, node, "use_length")
    return [_softmax(ctx, node, ctx.inp(node, 0), node.attrs.int("axis", -1))]


@register("log_softmax")
def log_softmax(ctx: Graph, node: SymNode) -> list[str]:
    """log_softmax along `axis` (default -1)."""
    return [_softmax(ctx, node, ctx.inp(node, 0), node.attrs.int("axis", -1), "LogSoftmax")]


@register("SoftmaxOutput", "Softmax")
def softmax_output(ctx: Graph, node: SymNode) -> list[str]:
    """Inference softmax of the training head (label input dropped); multi_output/preserve_shape honoured."""
    a = node.attrs
    x = ctx.inp(node, 0)
    if a.bool("multi_output"):
        return [ctx.add("Softmax", [x], ctx.out(node), axis=1)]
    if a.bool("preserve_shape"):
        return [ctx.add("Softmax", [x], ctx.out(node), axis=-1)]
    return [_flat_softmax(ctx, node, x)]


@register("SoftmaxActivation")
def softmax_activation(ctx: Graph, node: SymNode) -> list[str]:
    """mode=channel: softmax over axis 1; mode=instance: over the last axis (as MXNet 1.9 computes it)."""
    x = ctx.inp(node, 0)
    axis = 1 if node.attrs.str("mode", "instance").lower() == "channel" else -1
    return [ctx.add("Softmax", [x], ctx.out(node), axis=axis)]


@register("L2Normalization")
def l2_normalization(ctx: Graph, node: SymNode) -> list[str]:
    """x / sqrt(sum(x^2) + eps) over instance, channel or spatial axes."""
    x = ctx.inp(node, 0)
    rank = ctx.rank(x, node)
    mode = node.attrs.str("mode", "instance").lower()
    axes = {"instance": list(range(1, rank)), "channel": [1], "spatial": list(range(2, rank))}.get(mode)
    if axes is None:
        raise _unsupported(ctx, node, f"mode {mode}")
    dtype = ctx.np_dtype(x)
    squares = ctx.add("ReduceSumSquare", [x], f"{node.name}__ss", axes=axes, keepdims=1)
    eps = ctx.add("Add", [squares, ctx.const(node.attrs.float("eps", 1e-10), f"{node.name}__eps", dtype)], f"{node.name}__sse")
    norm = ctx.add("Sqrt", [eps], f"{node.name}__norm")
    return [ctx.add("Div", [x, norm], ctx.out(node))]


@register("InstanceNorm")
def instance_norm(ctx: Graph, node: SymNode) -> list[str]:
    """InstanceNormalization with gamma, beta and eps."""
    x = ctx.inp(node, 0)
    gamma = ctx.param(node, 1, what="gamma")
    channels = ctx.param_array(node, 1).shape
    beta = ctx.param(node, 2, channels, "beta")
    return [ctx.add("InstanceNormalization", [x, gamma, beta], ctx.out(node), epsilon=node.attrs.float("eps", 1e-3))]


@register("LRN")
def lrn(ctx: Graph, node: SymNode) -> list[str]:
    """Local response normalisation across channels."""
    a = node.attrs
    return [
        ctx.add(
            "LRN",
            [ctx.inp(node, 0)],
            ctx.out(node),
            size=a.int("nsize", 5),
            alpha=a.float("alpha", 1e-4),
            beta=a.float("beta", 0.75),
            bias=a.float("knorm", 2.0),
        )
    ]


@register("UpSampling")
def upsampling(ctx: Graph, node: SymNode) -> list[str]:
    """Nearest-neighbour upsampling by an integer scale; several inputs are resized alike and concatenated or summed."""
    a = node.attrs
    sample = a.str("sample_type", "nearest").lower()
    if sample != "nearest":
        raise _unsupported(ctx, node, f"sample_type {sample} (needs a learned deconvolution weight)")
    count = max(a.int("num_args", 1), 1)
    scale = a.int("scale", 1)
    x = ctx.inp(node, 0)
    if count == 1:
        rank = ctx.rank(x, node)
        scales = ctx.const([1.0, 1.0] + [float(scale)] * (rank - 2), f"{node.name}__scales")
        return [
            ctx.add(
                "Resize",
                [x, "", scales],
                ctx.out(node),
                mode="nearest",
                nearest_mode="floor",
                coordinate_transformation_mode="asymmetric",
            )
        ]
    # several inputs: each is brought to the first input's size times scale, then concatenated or summed
    target = ctx.static_shape(x, node, "upsampling several inputs")[2:]
    parts = []
    for i in range(count):
        xi = ctx.inp(node, i)
        spatial = ctx.static_shape(xi, node, "upsampling several inputs")[2:]
        factors = [t * scale / s for t, s in zip(target, spatial)]
        scales = ctx.const([1.0, 1.0] + factors, f"{node.name}__scales{i}")
        parts.append(
            ctx.add(
                "Resize",
                [xi, "", scales],
                f"{node.name}__up{i}",
                mode="nearest",
                nearest_mode="floor",
                coordinate_transformation_mode="asymmetric",
            )
        )
    if a.str("multi_input_mode", "concat").lower() == "sum":
        return [ctx.add("Sum", parts, ctx.out(node))]
    return [ctx.add("Concat", parts, ctx.out(node), axis=1)]


@register("_contrib_BilinearResize2D")
def bilinear_resize(ctx: Graph, node: SymNode) -> list[str]:
    """Bilinear resize to (height, width) or by scale, align_corners as MXNet (default True)."""
    a = node.attrs
    x = ctx.inp(node, 0)
    mode = a.str("mode", "size").lower()
    if mode not in ("size", "odd_scale") or ctx.num_inputs(node) > 1:
        raise _unsupported(ctx, node, f"mode {mode}")
    n, c, h, w = ctx.static_shape(x, node, "the output size")
    if mode == "odd_scale":  # odd sizes keep their corners: (size - 1) * scale + 1
        sh, sw = a.float("scale_height", 1.0), a.float("scale_width", 1.0)
        out_h = int((h - 1) * sh + 1) if h % 2 else int(h * sh)
        out_w = int((w - 1) * sw + 1) if w % 2 else int(w * sw)
    elif a.has("scale_height") or a.has("scale_width"):
        out_h = int(h * a.float("scale_height", 1.0))
        out_w = int(w * a.float("scale_width", 1.0))
    else:
        out_h, out_w = a.int("height", h), a.int("width", w)
    align = a.bool("align_corners", True)
    sizes = ctx.ints([n, c, out_h, out_w], f"{node.name}__sizes")
    return [
        ctx.add(
            "Resize",
            [x, "", "", sizes],
            ctx.out(node),
            mode="linear",
            coordinate_transformation_mode="align_corners" if align else "half_pixel",
        )
    ]


@register("_contrib_AdaptiveAvgPooling2D")
def adaptive_avg_pool(ctx: Graph, node: SymNode) -> list[str]:
    """Adaptive average pooling when the output size divides the input size (1 = global)."""
    x = ctx.inp(node, 0)
    size = list(node.attrs.ints("output_size", (1,)))
    size = size * 2 if len(size) == 1 else size
    if size == [1, 1]:
        return [ctx.add("GlobalAveragePool", [x], ctx.out(node))]
    _, _, h, w = ctx.static_shape(x, node, "adaptive pooling")
    if h % size[0] or w % size[1]:
        raise _unsupported(ctx, node, f"output size {tuple(size)} does not divide input {h}x{w}")
    kernel = [h // size[0], w // size[1]]
    return [ctx.add("AveragePool", [x], ctx.out(node), kernel_shape=kernel, strides=kernel)]
