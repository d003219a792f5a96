"""MaxPool / AveragePool -> MAX_POOL_2D / AVERAGE_POOL_2D, GlobalAveragePool / ReduceMean -> MEAN, GlobalMaxPool -> REDUCE_MAX."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgecc.targets.tflite import layout
from edgecc.targets.tflite.context import Context, NotExpressible
from edgecc.targets.tflite.ops import converter
from edgecc.targets.tflite.ops.common import pad_tensor, rank_is, spatial_padding

if TYPE_CHECKING:
    import onnx

    from edgecc.targets.api import NodeView

_PAD = {"SAME": 0, "VALID": 1}


def _pool_check(view: NodeView) -> tuple[bool, str]:
    ok, why = rank_is(view, 4)
    if not ok:
        return ok, why
    if any(d != 1 for d in view.attr("dilations", [1, 1])):
        return False, "dilated pooling"
    if view.op_type == "MaxPool" and len(view.outputs) > 1 and view.outputs[1]:
        return False, "MaxPool indices output"
    return True, ""


@converter(
    "MaxPool",
    "AveragePool",
    tflite=("MAX_POOL_2D", "AVERAGE_POOL_2D", "PAD", "PADV2"),
    check=_pool_check,
    planned={"MaxPool": "MAX_POOL_2D", "AveragePool": "AVERAGE_POOL_2D"},
)
def pool(ctx: Context, node: onnx.NodeProto, attrs: dict) -> None:
    """2-D pooling in NHWC; pads TFLite's SAME cannot express become an explicit PAD (AveragePool: count_include_pad=1)."""
    x_shape = ctx.shape(node.input[0])
    out_shape = ctx.shape(node.output[0])
    if len(x_shape) != 4:
        raise NotExpressible("only 2-D pooling")
    if any(d != 1 for d in attrs.get("dilations", [1, 1])):
        raise NotExpressible("dilated pooling")
    if len(node.output) > 1 and node.output[1]:
        raise NotExpressible("MaxPool indices output")
    kernel = list(attrs["kernel_shape"])
    strides = list(attrs.get("strides", [1, 1]))
    auto_pad = attrs.get("auto_pad", "NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    padding, explicit = spatial_padding(x_shape[2:], kernel, strides, [1, 1], pads, auto_pad)
    is_max = node.op_type == "MaxPool"
    if not is_max and padding == "SAME" and any(pads) and int(attrs.get("count_include_pad", 0)):
        padding, explicit = "VALID", pads  # SAME excludes the padding from the average
    if not is_max and padding == "VALID" and explicit is not None and not int(attrs.get("count_include_pad", 0)):
        raise NotExpressible(f"AveragePool pads {pads} with count_include_pad=0 that TFLite's SAME padding does not match")
    plan = ctx.plan_output(node, fusable=True)
    quantized = plan.quant is not None
    x = ctx.tensor(node.input[0], layout.NHWC, quantized=quantized, quantize_with=plan.quant if is_max else None)
    in_quant = ctx.builder.tensors[x].quant
    h, w = x_shape[2:]
    if explicit is not None:
        x, padded = pad_tensor(ctx, x, node.input[0], x_shape, layout.NHWC, explicit, value=-3.0e38 if is_max else None)
        h, w = padded[2:]
    expect = [(-(-size // s) if padding == "SAME" else (size - k) // s + 1) for size, k, s in zip((h, w), kernel, strides)]
    if list(out_shape[2:]) != expect:
        raise NotExpressible(f"output size {list(out_shape[2:])} (ceil_mode or pads) differs from TFLite's {expect}")
    # int8 pooling keeps the input's quantisation; a different output scale is re-quantised after it
    ctx.emit(
        "MAX_POOL_2D" if is_max else "AVERAGE_POOL_2D",
        [x],
        plan,
        out_shape,
        layout.NHWC,
        "Pool2DOptions",
        out_quant=in_quant,
        Padding=_PAD[padding],
        StrideH=strides[0],
        StrideW=strides[1],
        FilterHeight=kernel[0],
        FilterWidth=kernel[1],
        version=2 if quantized else 1,
    )


def _reduce(ctx: Context, node: onnx.NodeProto, op: str, axes: list[int], keepdims: bool) -> None:
    import numpy as np

    value = ctx.value(node.input[0])
    rank = len(value.shape)
    axes = sorted({a % rank for a in axes})
    plan = ctx.plan_output(node)
    quantized = plan.quant is not None
    perm = value.perm
    x = ctx.tensor(node.input[0], perm, quantized=quantized)
    tfl_axes = sorted(layout.tfl_axis(a, perm) for a in axes)
    if keepdims:
        out_perm = perm
    else:
        kept = [p for p in perm if p not in axes]
        renumber = {a: i for i, a in enumerate(sorted(kept))}
        out_perm = tuple(renumber[p] for p in kept)
    axes_t = ctx.const_tensor(f"{node.name or node.output[0]}_axes", np.asarray(tfl_axes, dtype=np.int32))
    ctx.emit(
        op,
        [x, axes_t],
        plan,
        ctx.shape(node.output[0]),
        out_perm,
        "ReducerOptions",
        KeepDims=bool(keepdims),
        out_quant=ctx.builder.tensors[x].quant if op == "REDUCE_MAX" else None,
    )


@converter(
    "GlobalAveragePool",
    "GlobalMaxPool",
    tflite=("MEAN", "REDUCE_MAX"),
    planned={"GlobalAveragePool": "MEAN", "GlobalMaxPool": "REDUCE_MAX"},
)
def global_pool(ctx: Context, node: onnx.NodeProto, attrs: dict) -> None:
    """GlobalAveragePool -> MEAN over H, W (keep dims), GlobalMaxPool -> REDUCE_MAX, as TensorFlow's converter writes them."""
    rank = len(ctx.shape(node.input[0]))
    _reduce(ctx, node, "MEAN" if node.op_type == "GlobalAveragePool" else "REDUCE_MAX", list(range(2, rank)), True)


def _reduce_check(view: NodeView) -> tuple[bool, str]:
    if len(view.inputs) > 1 and view.inputs[1] and not view.is_constant(1):
        return False, "axes must be a constant"
    if int(view.attr("noop_with_empty_axes", 0)):
        return False, "noop_with_empty_axes"
    return True, ""


@converter(
    "ReduceMean",
    "ReduceMax",
    tflite=("MEAN", "REDUCE_MAX"),
    check=_reduce_check,
    planned={"ReduceMean": "MEAN", "ReduceMax": "REDUCE_MAX"},
)
def reduce_mean(ctx: Context, node: onnx.NodeProto, attrs: dict) -> None:
    """ReduceMean -> MEAN, ReduceMax -> REDUCE_MAX over the remapped axes."""
    rank = len(ctx.shape(node.input[0]))
    axes = list(attrs.get("axes", [])) or (
        ctx.ints(node.input[1]) if len(node.input) > 1 and node.input[1] else list(range(rank))
    )
    _reduce(ctx, node, "MEAN" if node.op_type == "ReduceMean" else "REDUCE_MAX", axes, bool(attrs.get("keepdims", 1)))
