"""Caffe2 neural-network operators: convolution, fully connected, pooling, normalisation, activations."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgecc.converters.caffe2.graph import OPS, Graph, Op, OpInvalid, OpUnsupported

__all__ = ["ConvParams", "conv_params", "emit_conv", "emit_fc", "emit_pool", "emit_softmax"]

NOTSET, VALID, SAME, CAFFE_LEGACY_POOLING = 0, 1, 2, 3


@dataclass
class ConvParams:
    """Kernel, strides, dilations, pads ([begins..., ends...]) and legacy padding of a conv or pool op."""

    kernel: list[int] | None
    strides: list[int]
    dilations: list[int]
    pads: list[int]
    legacy_pad: int
    group: int


def _spatial(op: Op, plural: str, single: str, names: tuple[str, ...], default: int | None, nd: int) -> list[int] | None:
    if op.has(plural):
        values = op.ints(plural) or []
        if len(values) != nd:
            raise OpInvalid(f"'{plural}' has {len(values)} values, expected {nd}")
        return values
    if op.has(single):
        return [int(op.i(single) or 0)] * nd
    if any(op.has(n) for n in names):
        return [int(op.i(n, default if default is not None else 0) or 0) for n in names]
    return None if default is None else [default] * nd


def conv_params(op: Op, nd: int = 2) -> ConvParams:
    """Read kernel/kernels/kernel_h..., stride(s), dilation(s), pad(s)/pad_t..., legacy_pad and group."""
    hw = nd == 2
    kernel = _spatial(op, "kernels", "kernel", ("kernel_h", "kernel_w") if hw else (), None, nd)
    strides = _spatial(op, "strides", "stride", ("stride_h", "stride_w") if hw else (), 1, nd) or [1] * nd
    dilations = _spatial(op, "dilations", "dilation", ("dilation_h", "dilation_w") if hw else (), 1, nd) or [1] * nd
    if op.has("pads"):
        pads = op.ints("pads") or []
        if len(pads) != 2 * nd:
            raise OpInvalid(f"'pads' has {len(pads)} values, expected {2 * nd}")
    elif op.has("pad"):
        pads = [int(op.i("pad") or 0)] * (2 * nd)
    elif nd == 2:
        pads = [int(op.i(n, 0) or 0) for n in ("pad_t", "pad_l", "pad_b", "pad_r")]
    else:
        pads = [0] * (2 * nd)
    if any(p < 0 for p in pads) or any(s <= 0 for s in strides) or any(d <= 0 for d in dilations):
        raise OpInvalid(f"negative padding or non-positive stride/dilation (pads {pads}, strides {strides})")
    if kernel is not None and any(k <= 0 for k in kernel):
        raise OpInvalid(f"kernel {kernel} is not positive")
    legacy = int(op.i("legacy_pad", NOTSET) or NOTSET)
    if legacy not in (NOTSET, VALID, SAME, CAFFE_LEGACY_POOLING):
        raise OpUnsupported(f"legacy_pad {legacy}")
    return ConvParams(kernel, strides, dilations, pads, legacy, int(op.i("group", 1) or 1))


def _pad_attrs(params: ConvParams) -> dict[str, object]:
    if params.legacy_pad == VALID:
        return {"pads": [0] * len(params.pads)}
    if params.legacy_pad == SAME:
        return {"auto_pad": "SAME_UPPER"}
    return {"pads": params.pads}


def _weight_to_oihw(g: Graph, weight: str, nd: int) -> str:
    perm = [0, nd + 1] + list(range(1, nd + 1))
    if weight in g.consts:
        return g.const(np.ascontiguousarray(g.consts[weight].transpose(perm)), f"{weight}_oihw")
    return g.one("Transpose", [weight], g.unique(f"{weight}_oihw"), perm=perm)


def emit_conv(
    g: Graph, op: Op, x: str, w: str, b: str | None, output: str, *, transpose: bool = False, weight_oihw: bool = False
) -> str:
    """A Conv/ConvTranspose node in NCHW or NHWC order writing `output` (float tensors)."""
    order = op.order()
    rank = g.rank(x)
    nd = rank - 2
    if nd < 1:
        raise OpInvalid(f"input '{x}' has rank {rank}, a convolution needs at least 3")
    params = conv_params(op, nd)
    if params.legacy_pad == CAFFE_LEGACY_POOLING:
        raise OpUnsupported("legacy_pad CAFFE_LEGACY_POOLING on a convolution")
    if order == "NHWC":
        x = g.to_nchw(x, rank)
        w = (
            w if weight_oihw else _weight_to_oihw(g, w, nd)
        )  # [M, k..., C] and ConvTranspose's [C, k..., M] both move the last dim to 1
    _check_channels(g, op, x, w, params.group, transpose)
    attrs: dict[str, object] = {"strides": params.strides, "group": params.group, **_pad_attrs(params)}
    if params.kernel is not None:
        attrs["kernel_shape"] = params.kernel
    if transpose:
        adj = op.ints("adjs") if op.has("adjs") else ([int(op.i("adj", 0) or 0)] * nd)
        if any(adj or []):
            attrs["output_padding"] = adj
    else:
        attrs["dilations"] = params.dilations
    inputs = [x, w] + ([b] if b else [])
    op_type = "ConvTranspose" if transpose else "Conv"
    if order == "NHWC":
        y = g.one(op_type, inputs, g.unique(f"{output}_nchw"), name=op.name, **attrs)
        return g.to_nhwc(y, output, rank)
    return g.one(op_type, inputs, output, name=op.name, **attrs)


def _check_channels(g: Graph, op: Op, x: str, w: str, group: int, transpose: bool) -> None:
    x_shape, w_shape = g.shape(x), g.shape(w)
    if not x_shape or not w_shape or x_shape[1] is None or w_shape[0 if transpose else 1] is None:
        return
    channels = x_shape[1]
    expected = w_shape[0] if transpose else w_shape[1] * group  # type: ignore[operator]
    if channels != expected:
        raise OpInvalid(
            f"input '{op.inputs[0]}' has {channels} channels but filter '{op.inputs[1]}' of shape "
            f"{'x'.join(map(str, w_shape))} (group {group}) expects {expected}"
        )
    if not transpose and w_shape[0] is not None and w_shape[0] % group:
        raise OpInvalid(f"{w_shape[0]} filters do not split into {group} groups")


@OPS.register("Conv")
def conv(g: Graph, op: Op) -> None:
    """Convolution (NCHW/NHWC, kernel(s), stride(s), pad(s), dilation(s), group, legacy_pad VALID/SAME)."""
    emit_conv(g, op, op.input(0), op.input(1), op.onnx_inputs[2] if len(op.onnx_inputs) > 2 else None, op.output())


OPS.register("Conv2D", conv)


@OPS.register("ConvTranspose")
def conv_transpose(g: Graph, op: Op) -> None:
    """Transposed convolution; the filter is [C_in, C_out/group, k...] as in ONNX; `adj` becomes output_padding."""
    emit_conv(
        g, op, op.input(0), op.input(1), op.onnx_inputs[2] if len(op.onnx_inputs) > 2 else None, op.output(), transpose=True
    )


def emit_fc(g: Graph, op: Op, x: str, w: str, b: str | None, output: str) -> str:
    """Y = X_2d W_2d^T + b with X flattened at `axis` and W at `axis_w`; Y keeps X's leading dims."""
    axis = int(op.i("axis", 1) or 1) if op.has("axis") else 1
    axis_w = int(op.i("axis_w", 1) or 1) if op.has("axis_w") else 1
    rank = g.rank(x)
    if axis < 0:
        axis += rank
    if not 0 < axis <= rank:
        raise OpInvalid(f"axis {axis} out of range for input rank {rank}")
    w_rank = g.rank(w)
    if w_rank != 2 or axis_w != 1:
        w = g.one("Flatten", [w], g.unique(f"{w}_2d"), axis=axis_w if axis_w >= 0 else axis_w + w_rank)
    x_shape, w_shape = g.shape(x), g.shape(w)
    if x_shape and w_shape and len(w_shape) == 2 and all(d is not None for d in x_shape[axis:]) and w_shape[1] is not None:
        k = int(np.prod([d for d in x_shape[axis:]], dtype=np.int64))
        if k != w_shape[1]:
            raise OpInvalid(
                f"input '{op.inputs[0]}' gives {k} features per row (axis {axis}) but weight '{op.inputs[1]}' "
                f"of shape {'x'.join(map(str, w_shape))} expects {w_shape[1]}"
            )
    flat = x if rank == 2 and axis == 1 else g.one("Flatten", [x], g.unique(f"{x}_2d"), axis=axis)
    if b is None:
        b = g.const(np.zeros(1, np.float32), f"{op.name}_nobias")
    if axis == 1:
        return g.one("Gemm", [flat, w, b], output, name=op.name, transB=1)
    y2d = g.one("Gemm", [flat, w, b], g.unique(f"{output}_2d"), name=op.name, transB=1)
    lead = g.one("Shape", [x], g.unique(f"{x}_lead"), end=axis)
    last = g.one("Shape", [y2d], g.unique(f"{y2d}_n"), start=1)
    shape = g.one("Concat", [lead, last], g.unique(f"{output}_shape"), axis=0)
    return g.one("Reshape", [y2d, shape], output, name=f"{op.name}_reshape")


@OPS.register("FC")
def fc(g: Graph, op: Op) -> None:
    """Fully connected: X flattened at `axis`, W [N, K] flattened at `axis_w`, plus bias."""
    emit_fc(g, op, op.input(0), op.input(1), op.onnx_inputs[2] if len(op.onnx_inputs) > 2 else None, op.output())


def emit_pool(g: Graph, op: Op, kind: str, x: str, output: str) -> str:
    """MaxPool / AveragePool (global, legacy Caffe ceil padding, count_include_pad) in NCHW or NHWC."""
    order = op.order()
    rank = g.rank(x)
    nd = rank - 2
    if nd < 1:
        raise OpInvalid(f"input '{x}' has rank {rank}, pooling needs at least 3")
    nhwc = order == "NHWC"
    src = g.to_nchw(x, rank) if nhwc else x
    target = g.unique(f"{output}_nchw") if nhwc else output
    if op.i("global_pooling", 0):
        y = g.one("GlobalMaxPool" if kind == "MaxPool" else "GlobalAveragePool", [src], target, name=op.name)
        return g.to_nhwc(y, output, rank) if nhwc else y
    params = conv_params(op, nd)
    if params.kernel is None:
        raise OpInvalid("pooling without a kernel")
    attrs: dict[str, object] = {"kernel_shape": params.kernel, "strides": params.strides}
    if kind == "AveragePool":
        attrs["count_include_pad"] = 1 if op.i("count_include_pad", 0) else 0
    elif any(d != 1 for d in params.dilations):
        attrs["dilations"] = params.dilations
    if params.legacy_pad == CAFFE_LEGACY_POOLING:
        pads = _legacy_pool_pads(g, src, params, nd)
        if all(p < k for p, k in zip(pads[nd:], params.kernel)):
            attrs["pads"] = pads
        elif attrs.get("count_include_pad"):  # pad explicitly so that every window divides by the kernel area
            pad_values = g.ints([0, 0] + pads[:nd] + [0, 0] + pads[nd:], f"{op.name}_pads")
            src = g.one("Pad", [src, pad_values], g.unique(f"{src}_padded"))
        else:  # end padding of a whole window is refused by onnxruntime; ceil mode gives the same windows
            attrs["pads"] = params.pads[:nd] * 2
            attrs["ceil_mode"] = 1
    else:
        attrs.update(_pad_attrs(params))
    y = g.one(kind, [src], target, name=op.name, **attrs)
    return g.to_nhwc(y, output, rank) if nhwc else y


def _legacy_pool_pads(g: Graph, x: str, params: ConvParams, nd: int) -> list[int]:
    """Caffe's pooling output size (ceil, last window starting inside the image) as explicit end padding."""
    shape = g.static_shape(x, "legacy Caffe pooling (legacy_pad 3)")
    heads = params.pads[:nd]
    tails: list[int] = []
    for size, kernel, stride, head in zip(shape[2:], params.kernel or [], params.strides, heads):
        out = math.ceil((size + 2 * head - kernel) / stride + 1)
        if head > 0 and (out - 1) * stride >= size + head:
            out -= 1
        standard = int((size + 2 * head - kernel) / stride + 1)
        tails.append(head + stride * (out - standard))
    return heads + tails


def _pool(kind: str):
    def convert(g: Graph, op: Op) -> None:
        emit_pool(g, op, kind, op.input(0), op.output())

    convert.__doc__ = f"{kind} (kernel(s), stride(s), pad(s), global_pooling, legacy_pad, NCHW/NHWC)."
    return convert


for _name in ("MaxPool", "MaxPool1D", "MaxPool2D", "MaxPool3D"):
    OPS.register(_name, _pool("MaxPool"))
for _name in ("AveragePool", "AveragePool1D", "AveragePool2D", "AveragePool3D"):
    OPS.register(_name, _pool("AveragePool"))


def _training_outputs(op: Op, what: str) -> None:
    if not op.i("is_test", 0):
        raise OpUnsupported(f"{what} in training mode (is_test=0); deploy nets set is_test=1")


@OPS.register("SpatialBN")
def spatial_bn(g: Graph, op: Op) -> None:
    """Inference batch normalisation (is_test=1): X, scale, bias, mean, var, epsilon, NCHW/NHWC."""
    _training_outputs(op, "SpatialBN")
    if len([o for o in op.outputs if o]) > 1:
        raise OpUnsupported("SpatialBN with running-statistics outputs")
    x = op.input(0)
    rank = g.rank(x)
    nhwc = op.order() == "NHWC"
    src = g.to_nchw(x, rank) if nhwc else x
    inputs = [src] + [op.input(i) for i in range(1, 5)]
    eps = op.f("epsilon", 1e-5)
    if nhwc:
        y = g.one("BatchNormalization", inputs, g.unique(f"{op.output()}_nchw"), name=op.name, epsilon=eps)
        g.to_nhwc(y, op.output(), rank)
    else:
        g.one("BatchNormalization", inputs, op.output(), name=op.name, epsilon=eps)


@OPS.register("LRN")
def lrn(g: Graph, op: Op) -> None:
    """Cross-channel local response normalisation: size, alpha, beta, bias (NCHW/NHWC)."""
    if len([o for o in op.outputs if o]) > 1 and op.outputs[1] in op.consumed:
        raise OpUnsupported("LRN's scale output is used")
    x = op.input(0)
    rank = g.rank(x)
    nhwc = op.order() == "NHWC"
    size = op.i("size")
    if size is None:
        raise OpInvalid("LRN without size")
    attrs = {"size": size, "alpha": op.f("alpha", 0.0), "beta": op.f("beta", 0.0), "bias": op.f("bias", 1.0)}
    if nhwc:
        y = g.one("LRN", [g.to_nchw(x, rank)], g.unique(f"{op.output()}_nchw"), name=op.name, **attrs)
        g.to_nhwc(y, op.output(), rank)
    else:
        g.one("LRN", [x], op.output(), name=op.name, **attrs)


def _unary(onnx_type: str, doc: str, **fixed: object):
    def convert(g: Graph, op: Op) -> None:
        g.one(onnx_type, [op.input(0)], op.output(), name=op.name, **fixed)

    convert.__doc__ = doc
    return convert


OPS.register("Relu", _unary("Relu", "max(x, 0)."))
OPS.register("Sigmoid", _unary("Sigmoid", "1 / (1 + exp(-x))."))
OPS.register("Tanh", _unary("Tanh", "tanh(x)."))
OPS.register("Exp", _unary("Exp", "exp(x)."))
OPS.register("Log", _unary("Log", "log(x)."))
OPS.register("Sqrt", _unary("Sqrt", "sqrt(x)."))
OPS.register("Abs", _unary("Abs", "|x|."))
OPS.register("Softsign", _unary("Softsign", "x / (1 + |x|)."))


@OPS.register("LeakyRelu")
def leaky_relu(g: Graph, op: Op) -> None:
    """x if x > 0 else alpha * x (alpha defaults to 0.01)."""
    g.one("LeakyRelu", [op.input(0)], op.output(), name=op.name, alpha=op.f("alpha", 0.01))


@OPS.register("Elu")
def elu(g: Graph, op: Op) -> None:
    """x if x > 0 else alpha * (exp(x) - 1) (alpha defaults to 1)."""
    g.one("Elu", [op.input(0)], op.output(), name=op.name, alpha=op.f("alpha", 1.0))


@OPS.register("PRelu")
def prelu(g: Graph, op: Op) -> None:
    """x if x > 0 else slope[c] * x, slope per channel (axis 1 in NCHW, last in NHWC) or shared."""
    x, slope = op.input(0), op.input(1)
    rank = g.rank(x)
    nhwc = op.order() == "NHWC"
    slope_shape = g.shape(slope)
    if not nhwc and slope_shape is not None and len(slope_shape) == 1 and rank > 2:
        if slope in g.consts:
            slope = g.const(g.consts[slope].reshape((-1,) + (1,) * (rank - 2)), f"{slope}_c11")
        else:
            slope = g.one("Unsqueeze", [slope, g.ints(list(range(1, rank - 1)), f"{slope}_axes")], g.unique(f"{slope}_c11"))
    g.one("PRelu", [x, slope], op.output(), name=op.name)


def emit_softmax(g: Graph, op: Op, x: str, output: str) -> str:
    """Caffe2 Softmax: the input is coerced to 2-D at `axis` (default 1) and normalised over the second dim."""
    rank = g.rank(x)
    axis = int(op.i("axis", 1) or 0) if op.has("axis") else (op.forced_axis if op.forced_axis is not None else 1)
    if axis < 0:
        axis += rank
    if not 0 <= axis < max(rank, 1):
        raise OpInvalid(f"axis {axis} out of range for rank {rank}")
    if axis == rank - 1:
        return g.one("Softmax", [x], output, name=op.name, axis=-1)
    flat = g.one("Flatten", [x], g.unique(f"{x}_2d"), axis=axis)
    y = g.one("Softmax", [flat], g.unique(f"{output}_2d"), name=op.name, axis=1)
    shape = g.one("Shape", [x], g.unique(f"{x}_shape"))
    return g.one("Reshape", [y, shape], output, name=f"{op.name}_reshape")


@OPS.register("Softmax")
def softmax(g: Graph, op: Op) -> None:
    """Softmax over the dims from `axis` on (Caffe2 coerces to 2-D)."""
    emit_softmax(g, op, op.input(0), op.output())


@OPS.register("Dropout")
def dropout(g: Graph, op: Op) -> None:
    """Identity at inference (is_test=1); the mask output, when used, is all true."""
    _training_outputs(op, "Dropout")
    g.one("Identity", [op.input(0)], op.output(), name=op.name)
    if len(op.onnx_outputs) > 1 and op.onnx_outputs[1]:
        shape = g.one("Shape", [op.input(0)], g.unique(f"{op.name}_shape"))
        from onnx import TensorProto, helper

        g.one("ConstantOfShape", [shape], op.output(1), value=helper.make_tensor("one", TensorProto.BOOL, [1], [True]))


@OPS.register("ChannelShuffle")
def channel_shuffle(g: Graph, op: Op) -> None:
    """Channels viewed as [group, C/group], transposed to [C/group, group] (NCHW/NHWC)."""
    x = op.input(0)
    rank = g.rank(x)
    group = int(op.i("group", 1) or 1)
    nhwc = op.order() == "NHWC"
    channels = g.shape(x)[-1 if nhwc else 1]  # type: ignore[index]
    if channels is None:
        raise OpUnsupported("ChannelShuffle needs a static channel count")
    if channels % group:
        raise OpInvalid(f"{channels} channels do not split into {group} groups")
    src = g.to_nchw(x, rank) if nhwc else x
    split = g.one(
        "Reshape", [src, g.ints([0, group, channels // group, -1], f"{op.name}_grouped")], g.unique(f"{op.name}_grouped")
    )
    swapped = g.one("Transpose", [split], g.unique(f"{op.name}_swapped"), perm=[0, 2, 1, 3])
    shape = g.one("Shape", [src], g.unique(f"{op.name}_shape"))
    if nhwc:
        y = g.one("Reshape", [swapped, shape], g.unique(f"{op.output()}_nchw"), name=op.name)
        g.to_nhwc(y, op.output(), rank)
    else:
        g.one("Reshape", [swapped, shape], op.output(), name=op.name)


@OPS.register("ResizeNearest")
def resize_nearest(g: Graph, op: Op) -> None:
    """Nearest upsampling by height_scale/width_scale: in = min(floor(out / scale), size - 1) (NCHW/NHWC)."""
    if len(op.onnx_inputs) > 1:
        scales_input = op.input(1)
        if scales_input not in g.consts:
            raise OpUnsupported("ResizeNearest with scales computed at run time")
        height, width = (float(v) for v in g.consts[scales_input].reshape(-1)[:2])
    else:
        height, width = op.f("height_scale", 1.0), op.f("width_scale", 1.0)
    x = op.input(0)
    nhwc = op.order() == "NHWC"
    scales = [1.0, height, width, 1.0] if nhwc else [1.0, 1.0, height, width]
    attrs = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
    g.one("Resize", [x, "", g.const(np.asarray(scales, np.float32), f"{op.name}_scales")], op.output(), name=op.name, **attrs)
