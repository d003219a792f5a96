"""Data movement: Reshape/Flatten/Squeeze/Unsqueeze -> RESHAPE, Transpose (layout bookkeeping), Concat -> CONCATENATION
(or PACK for Concat of Unsqueezes), Pad -> PAD/PADV2/MIRROR_PAD, Slice -> STRIDED_SLICE, Split -> SPLIT/SPLIT_V,
Resize -> RESIZE_NEAREST_NEIGHBOR / RESIZE_BILINEAR."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgecc.targets.tflite import layout
from edgecc.targets.tflite.context import Context, NotExpressible, Value
from edgecc.targets.tflite.ops import PlannedOp, converter
from edgecc.targets.tflite.ops.elementwise import _requantized

if TYPE_CHECKING:
    import onnx

    from edgecc.targets.api import NodeView


def _relayout(ctx: Context, node: onnx.NodeProto, p: tuple[int, ...]) -> None:
    """`node` computes transpose(input, p): no operator, the output is the input's TFLite tensor with a composed layout."""
    value = ctx.value(node.input[0])
    if value.is_const or value.col_perm is not None:
        raise NotExpressible(f"{node.op_type} of a constant or flattened tensor")
    shape = ctx.shape(node.output[0])
    new_perm = layout.compose(layout.inverse(p), value.perm)
    for preferred in ((layout.NHWC,) if len(shape) == 4 else ()) + (layout.identity(len(shape)),):
        if layout.equivalent(shape, new_perm, preferred):
            new_perm = preferred
            break
    plan = ctx.plan_output(node)
    tensor, quant = value.tensor, value.quant  # an int8 tensor stays int8 (float readers dequantise where they need it)
    if plan.quant is not None and value.quant is None:  # float -> QuantizeLinear: quantise in the input's layout
        tensor, quant = ctx.tensor(node.input[0], value.perm, quantized=True, quantize_with=plan.quant), plan.quant
    elif plan.quant is not None and not plan.quant.same_as(value.quant):
        tensor, quant = _requantized(ctx, tensor, plan.quant), plan.quant
    for absorbed in plan.absorbed:
        ctx.absorbed.add(id(absorbed))
    ctx.values[plan.name] = Value(shape=shape, tensor=tensor, perm=new_perm, quant=quant)


def _fc_only(ctx: Context, name: str) -> bool:
    """True when every reader of `name` (through Q/DQ) is a Gemm/MatMul reading it as the left operand with constant weights."""
    users = list(ctx.consumers.get(name, []))
    if not users or name in ctx.graph_outputs:
        return False
    for user in users:
        if user.op_type in ("QuantizeLinear", "DequantizeLinear"):
            if not _fc_only(ctx, user.output[0]):
                return False
        elif (
            user.op_type not in ("Gemm", "MatMul")
            or user.input[0] != name
            or not ctx.is_const(user.input[1])
            and user.input[1]
            not in {n.output[0] for n in ctx.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in ctx.inits}
        ):
            return False
    return True


def _reshape_to(ctx: Context, node: onnx.NodeProto, out_shape: tuple[int, ...]) -> None:
    import numpy as np

    value = ctx.value(node.input[0])
    if value.is_const:
        raise NotExpressible("constant input (fold it first)")
    plan = ctx.plan_output(node)
    if plan.quant is None and value.quant is not None:
        plan.quant = value.quant  # data movement of an int8 tensor stays int8 (float readers dequantise where they need it)
    quantized = plan.quant is not None
    perm = value.perm
    name = node.name or node.output[0]
    col_perm = None
    if value.col_perm is not None:
        raise NotExpressible("reshaping a flattened NHWC tensor again")
    if not layout.is_identity(perm) and not layout.only_unit_moves(value.shape, perm):
        if len(out_shape) == 2 and out_shape[0] == value.shape[0] and _fc_only(ctx, node.output[0]):
            # TensorFlow's converter trick: flatten in NHWC order and permute the FullyConnected weights' columns
            order = np.arange(int(np.prod(value.shape))).reshape(value.shape).transpose(perm).reshape(out_shape[0], -1)
            col_perm = order[0] - order[0].min()
            x = ctx.tensor(node.input[0], perm, quantized=quantized, quantize_with=plan.quant)
        else:
            x = ctx.tensor(node.input[0], layout.identity(len(value.shape)), quantized=quantized, quantize_with=plan.quant)
    else:
        x = ctx.tensor(node.input[0], perm, quantized=quantized, quantize_with=plan.quant)
    shape_t = ctx.const_tensor(f"{name}_shape", np.asarray(out_shape, dtype=np.int32))
    ctx.emit(
        "RESHAPE",
        [x, shape_t],
        plan,
        out_shape,
        layout.identity(len(out_shape)),
        "ReshapeOptions",
        out_quant=ctx.builder.tensors[x].quant,
        NewShape=list(out_shape),
    )
    if col_perm is not None:
        ctx.values[plan.name].col_perm = col_perm


@converter("Reshape", "Flatten", "Squeeze", tflite=("RESHAPE",))
def reshape(ctx: Context, node: onnx.NodeProto, attrs: dict) -> None:
    """Reshape/Flatten/Squeeze -> RESHAPE; an NHWC input is flattened in NHWC order when the FullyConnected after it takes
    permuted weights; a reshape that only moves size-1 axes is a permutation (layout bookkeeping, no operator)."""
    out_shape = ctx.shape(node.output[0])
    p = layout.axis_permutation(ctx.shape(node.input[0]), out_shape)
    if p is not None and not ctx.value(node.input[0]).is_const and ctx.value(node.input[0]).col_perm is None:
        _relayout(ctx, node, p)
        return
    _reshape_to(ctx, node, out_shape)


def _unsqueeze_behind(ctx: Context, name: str) -> tuple[onnx.NodeProto, list[onnx.NodeProto]] | None:
    """The Unsqueeze producing `name` directly or through a single-use QuantizeLinear -> DequantizeLinear pair."""
    producers = ctx.producers
    chain = []
    node = producers.get(name)
    if node is not None and node.op_type == "DequantizeLinear":
        q = producers.get(node.input[0])
        if q is None or q.op_type != "QuantizeLinear" or ctx.single_consumer(q.output[0]) is not node:
            return None
        chain, node = [q, node], producers.get(q.input[0])
        if node is None or ctx.single_consumer(node.output[0]) is not chain[0]:
            return None
    if node is None or node.op_type != "Unsqueeze":
        return None
    return node, chain


def _packed_concat(ctx: Context, node: onnx.NodeProto) -> onnx.NodeProto | None:
    """The Concat that packs this Unsqueeze's output (with its siblings) on the unsqueezed axis, if any."""
    name = node.output[0]
    nxt = ctx.single_consumer(name)
    if nxt is not None and nxt.op_type == "QuantizeLinear":
        dq = ctx.single_consumer(nxt.output[0])
        nxt = ctx.single_consumer(dq.output[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
    if nxt is None or nxt.op_type != "Concat":
        return None
    out_rank = len(ctx.shape(name))
    axes = [a.ints for a in node.attribute if a.name == "axes"]
    axes = list(axes[0]) if axes else (ctx.ints(node.input[1]) if len(node.input) > 1 else [])
    concat_axis = {a.name: a.i for a in nxt.attribute}.get("axis", 0) % out_rank
    if len(axes) != 1 or axes[0] % out_rank != concat_axis:
        return None
    found = [_unsqueeze_behind(ctx, i) for i in nxt.input]
    if any(f is None for f in found):
        return None
    return nxt


@converter("Unsqueeze", tflite=("RESHAPE", "PACK"), planned="RESHAPE")
def unsqueeze(ctx: Context, node: onnx.NodeProto, attrs: dict) -> None:
    """Unsqueeze -> RESHAPE, or nothing when a Concat packs it (Concat of Unsqueezes on one axis -> PACK)."""
    concat_node = _packed_concat(ctx, node)
    if concat_node is not None:
        axis = {a.name: a.i for a in concat_node.attribute}.get("axis", 0) % len(ctx.shape(node.output[0]))
        for name in concat_node.input:
            unsq, chain = _unsqueeze_behind(ctx, name)
            if unsq is node:
                for absorbed in chain:
                    ctx.absorbed.add(id(absorbed))
                ctx.deferred[name] = (node.input[0], axis)
        return
    _reshape_to(ctx, node, ctx.shape(node.output[0]))


def _transpose_check(view: NodeView) -> tuple[bool, str]:
    return True, ""


@converter("Transpose", tflite=("TRANSPOSE",), check=_transpose_check)
def transpose(ctx: Context, node: onnx.NodeProto, attrs: dict) -> None:
    """Transpose -> no operator: the output is the same TFLite tensor with a composed layout permutation."""
    rank = len(ctx.shape(node.input[0]))
    _relayout(ctx, node, tuple(attrs.get("perm", list(reversed(range(rank))))))


def _concat_inputs(ctx: Context, names: list[str], perm: tuple[int, ...], quantized: bool) -> list[int]:
    return [ctx.tensor(n, perm, quantized=quantized, rank=len(perm)) for n in names]


@converter("Concat", tflite=("CONCATENATION", "PACK"), planned="CONCATENATION")
def concat(ctx: Context, node: onnx.NodeProto, attrs: dict) -> None:
    """Concat -> CONCATENATION on the remapped axis; Concat of single-use Unsqueezes on that axis -> PACK."""
    out_shape = ctx.shape(node.output[0])
    rank = len(out_shape)
    axis = int(attrs.get("axis", 0)) % rank
    plan = ctx.plan_output(node, fusable=True)
    quantized = plan.quant is not None
    if all(n in ctx.deferred for n in node.input):
        sources = [ctx.deferred[n][0] for n in node.input]
        src_rank = rank - 1
        from edgecc.targets.tflite.ops.elementwise import layout_of

        perm = layout_of(ctx, sources, src_rank)
        inputs = _concat_inputs(ctx, sources, perm, quantized)
        # PACK inserts the new axis; in TFLite layout it goes where ONNX axis `axis` lands after the permutation
        tfl_axis = sum(1 for p in perm if p < axis)
        out_perm = tuple(
            [*(p if p < axis else p + 1 for p in perm[:tfl_axis]), axis, *(p if p < axis else p + 1 for p in perm[tfl_axis:])]
        )
        out_quant = plan.quant
        if quantized:
            inputs = [_requantized(ctx, t, out_quant) for t in inputs]
        ctx.emit(
            "PACK",
            inputs,
            plan,
            out_shape,
            out_perm,
            "PackOptions",
            out_quant=out_quant,
            ValuesCount=len(inputs),
            Axis=layout.tfl_axis(axis, out_perm),
        )
        return
    from edgecc.targets.tflite.ops.elementwise import layout_of

    if quantized and not ctx.quantized_inputs(list(node.input)):
        raise NotExpressible("int8 output from a float input")
    perm = layout_of(ctx, list(node.input), rank)
    inputs = _concat_inputs(ctx, list(node.input), perm, quantized)
    if quantized:  # one scale for inputs and output, as TensorFlow's converter writes int8 concatenations
        inputs = [_requantized(ctx, t, plan.quant) for t in inputs]
    ctx.emit(
        "CONCATENATION",
        inputs,
        plan,
        out_shape,
        perm,
        "ConcatenationOptions",
        Axis=layout.tfl_axis(axis, perm),
        out_quant=plan.quant,
        version=2 if quantized else 1,
    )


def _pad_check(view: NodeView) -> tuple[bool, str]:
    mode = view.attr("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode not in ("constant", "reflect"):
        return False, f"Pad mode '{mode}' (TFLite has constant and reflect)"
    if len(view.inputs) > 1 and not view.is_constant(1):
        return False, "pads must be a constant"
    if len(view.inputs) > 3 and view.inputs[3]:
        return False, "Pad with axes"
    return True, ""


@converter("Pad", tflite=("PAD", "PADV2", "MIRROR_PAD"), check=_pad_check, planned="PAD")
def pad(ctx: Context, node: onnx.NodeProto, attrs: dict) -> None:
    """Pad constant -> PAD (zero) / PADV2 (other value), reflect -> MIRROR_PAD(REFLECT), pads remapped to TFLite layout."""
    import numpy as np

    mode = attrs.get("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode not in ("constant", "reflect"):
        raise NotExpressible(f"Pad mode '{mode}'")
    if len(node.input) > 3 and node.input[3]:
        raise NotExpressible("Pad with axes")
    value = ctx.value(node.input[0])
    rank = len(value.shape)
    pads = ctx.ints(node.input[1]) if len(node.input) > 1 and node.input[1] else list(attrs.get("pads", []))
    if any(p < 0 for p in pads):
        raise NotExpressible("negative pads (cropping)")
    fill = float(ctx.array(node.input[2]).ravel()[0]) if len(node.input) > 2 and node.input[2] else float(attrs.get("value", 0.0))
    plan = ctx.plan_output(node)
    quantized = plan.quant is not None
    perm = value.perm
    x = ctx.tensor(node.input[0], perm, quantized=quantized, quantize_with=plan.quant)
    in_quant = ctx.builder.tensors[x].quant
    table = np.asarray([[pads[p], pads[p + rank]] for p in perm], dtype=np.int32)
    name = node.name or node.output[0]
    pads_t = ctx.const_tensor(f"{name}_pads", table)
    shape = ctx.shape(node.output[0])
    if mode == "reflect":
        ctx.emit("MIRROR_PAD", [x, pads_t], plan, shape, perm, "MirrorPadOptions", out_quant=in_quant, Mode=0)
    elif fill == 0.0 and (in_quant is None or in_quant.zero_point[0] == round(0 / in_quant.scale[0]) + in_quant.zero_point[0]):
        ctx.emit("PAD", [x, pads_t], plan, shape, perm, "PadOptions", out_quant=in_quant, version=2 if quantized else 1)
    else:
        if in_quant is not None:
            info = np.iinfo(in_quant.dtype)
            q = int(np.clip(round(fill / in_quant.scale[0]) + in_quant.zero_point[0], info.min, info.max))
            fill_t = ctx.const_tensor(f"{name}_value", np.asarray(q, dtype=in_quant.dtype), in_quant)
        else:
            fill_t = ctx.const_tensor(f"{name}_value", np.asarray(fill, dtype=np.float32))
        ctx.emit("PADV2", [x, pads_t, fill_t], plan, shape, perm, "PadV2Options", out_quant=in_quant)


def _slice_check(view: NodeView) -> tuple[bool, str]:
    for i in range(1, len(view.inputs)):
        if view.inputs[i] and not view.is_constant(i):
            return False, "Slice starts/ends/axes/steps must be constants"
    return True, ""


@converter("Slice", tflite=("STRIDED_SLICE",), check=_slice_check)
def slice_(ctx: Context, node: onnx.NodeProto, attrs: dict) -> None:
    """Slice with constant starts/ends/axes/steps -> STRIDED_SLICE in TFLite layout (positive steps)."""
    import numpy as np

    value = ctx.value(node.input[0])
    shape = value.shape
    rank = len(shape)
    starts, ends = ctx.ints(node.input[1]), ctx.ints(node.input[2])
    axes = ctx.ints(node.input[3]) if len(node.input) > 3 and node.input[3] else list(range(len(starts)))
    steps = ctx.ints(node.input[4]) if len(node.input) > 4 and node.input[4] else [1] * len(starts)
    begin, end, stride = [0] * rank, list(shape), [1] * rank
    for s, e, a, st in zip(starts, ends, axes, steps):
        a %= rank
        if st <= 0:
            raise NotExpressible("Slice with a non-positive step")
        dim = shape[a]
        s = max(0, min(dim, s + dim if s < 0 else s))
        e = max(0, min(dim, e + dim if e < 0 else e))
        begin[a], end[a], stride[a] = s, e, st
    plan = ctx.plan_output(node)
    quantized = plan.quant is not None
    perm = value.perm
    x = ctx.tensor(node.input[0], perm, quantized=quantized)
    name = node.name or node.output[0]
    consts = [
        ctx.const_tensor(f"{name}_{what}", np.asarray([vec[p] for p in perm], dtype=np.int32))
        for what, vec in (("begin", begin), ("end", end), ("strides", stride))
    ]
    ctx.emit(
        "STRIDED_SLICE",
        [x, *consts],
        plan,
        ctx.shape(node.output[0]),
        perm,
        "StridedSliceOptions",
        out_quant=ctx.builder.tensors[x].quant,
        version=2 if quantized else 1,
    )


def _split_op(view: NodeView) -> str:
    return "SPLIT_V" if len(view.inputs) > 1 and view.inputs[1] else "SPLIT"


@converter("Split", tflite=("SPLIT", "SPLIT_V"), planned=PlannedOp(("SPLIT", "SPLIT_V"), _split_op))
def split(ctx: Context, node: onnx.NodeProto, attrs: dict) -> None:
    """Split -> SPLIT (equal parts) or SPLIT_V (sizes) on the remapped axis; outputs keep the input's layout."""
    import numpy as np

    value = ctx.value(node.input[0])
    rank = len(value.shape)
    axis = int(attrs.get("axis", 0)) % rank
    sizes = ctx.ints(node.input[1]) if len(node.input) > 1 and node.input[1] else list(attrs.get("split", []))
    if not sizes:
        sizes = [ctx.shape(o)[axis] for o in node.output]
    plans = [ctx.plan_output(node, i) for i in range(len(node.output))]
    quantized = all(p.quant is not None for p in plans)
    if not quantized and any(p.quant is not None for p in plans):
        plans = [ctx.plan_output(node, i, quantizable=False) for i in range(len(node.output))]
    perm = value.perm
    x = ctx.tensor(node.input[0], perm, quantized=quantized)
    spec = ctx.builder.tensors[x]
    tfl_axis = layout.tfl_axis(axis, perm)
    name = node.name or node.output[0]
    outs = [
        ctx.new_tensor(
            f"{p.name}_split" if quantized and not p.quant.same_as(spec.quant) else p.name, ctx.shape(o), perm, spec.quant
        )
        for p, o in zip(plans, node.output)
    ]
    axis_t = ctx.const_tensor(f"{name}_axis", np.asarray(tfl_axis, dtype=np.int32))
    if len(set(sizes)) == 1:
        ctx.builder.operator("SPLIT", [axis_t, x], outs, "SplitOptions", NumSplits=len(outs))
    else:
        sizes_t = ctx.const_tensor(f"{name}_sizes", np.asarray(sizes, dtype=np.int32))
        ctx.builder.operator("SPLIT_V", [x, sizes_t, axis_t], outs, "SplitVOptions", NumSplits=len(outs))
    for plan, out, onnx_out in zip(plans, outs, node.output):
        for absorbed in plan.absorbed:
            ctx.absorbed.add(id(absorbed))
        if quantized and not plan.quant.same_as(spec.quant):
            out = _requantized(ctx, out, plan.quant)
            ctx.builder.tensors[out].name = ctx.builder.unique(plan.name)
        ctx.values[plan.name] = Value(shape=ctx.shape(onnx_out), tensor=out, perm=perm, quant=ctx.builder.tensors[out].quant)


def _resize_check(view: NodeView) -> tuple[bool, str]:
    mode = view.attr("mode", "nearest")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    ctm = view.attr("coordinate_transformation_mode", "half_pixel")
    ctm = ctm.decode() if isinstance(ctm, bytes) else ctm
    nearest = view.attr("nearest_mode", "round_prefer_floor")
    nearest = nearest.decode() if isinstance(nearest, bytes) else nearest
    ok, why = _resize_flags(mode, ctm, nearest)
    return (True, "") if ok is not None else (False, why)


def _resize_flags(mode: str, ctm: str, nearest: str) -> tuple[tuple[str, bool, bool] | None, str]:
    """(TFLite op, align_corners, half_pixel_centers) for an ONNX Resize mode, or (None, reason)."""
    if mode == "linear":
        if ctm in ("half_pixel", "pytorch_half_pixel"):
            return ("RESIZE_BILINEAR", False, True), ""
        if ctm == "align_corners":
            return ("RESIZE_BILINEAR", True, False), ""
        if ctm == "asymmetric":
            return ("RESIZE_BILINEAR", False, False), ""
    elif mode == "nearest":
        if ctm == "asymmetric" and nearest == "floor":
            return ("RESIZE_NEAREST_NEIGHBOR", False, False), ""
        if ctm in ("half_pixel", "pytorch_half_pixel") and nearest == "round_prefer_ceil":
            return ("RESIZE_NEAREST_NEIGHBOR", False, True), ""
        if ctm == "align_corners" and nearest == "round_prefer_ceil":
            return ("RESIZE_NEAREST_NEIGHBOR", True, False), ""
    return None, f"Resize mode={mode} coordinate_transformation_mode={ctm} nearest_mode={nearest} has no TFLite equivalent"


def _resize_op(view: NodeView) -> str:
    mode = view.attr("mode", "nearest")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    return "RESIZE_BILINEAR" if mode == "linear" else "RESIZE_NEAREST_NEIGHBOR"


@converter(
    "Resize",
    "Upsample",
    tflite=("RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR"),
    check=_resize_check,
    planned=PlannedOp(("RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR"), _resize_op),
)
def resize(ctx: Context, node: onnx.NodeProto, attrs: dict) -> None:
    """Resize of H, W of an NCHW tensor -> RESIZE_NEAREST_NEIGHBOR / RESIZE_BILINEAR with the matching coordinate flags."""
    import numpy as np

    def text(key: str, default: str) -> str:
        v = attrs.get(key, default)
        return v.decode() if isinstance(v, bytes) else v

    flags, why = _resize_flags(
        text("mode", "nearest"),
        text("coordinate_transformation_mode", "half_pixel" if node.op_type == "Resize" else "asymmetric"),
        text("nearest_mode", "round_prefer_floor" if node.op_type == "Resize" else "floor"),
    )
    if flags is None:
        raise NotExpressible(why)
    op, align, half = flags
    value = ctx.value(node.input[0])
    out_shape = ctx.shape(node.output[0])
    if len(out_shape) != 4 or tuple(out_shape[:2]) != tuple(value.shape[:2]):
        raise NotExpressible("Resize of axes other than H, W of a 4-D tensor")
    plan = ctx.plan_output(node)
    quantized = plan.quant is not None
    x = ctx.tensor(node.input[0], layout.NHWC, quantized=quantized)
    size_t = ctx.const_tensor(f"{node.name or node.output[0]}_size", np.asarray(out_shape[2:], dtype=np.int32))
    options = "ResizeBilinearOptions" if op == "RESIZE_BILINEAR" else "ResizeNearestNeighborOptions"
    ctx.emit(
        op,
        [x, size_t],
        plan,
        out_shape,
        layout.NHWC,
        options,
        out_quant=ctx.builder.tensors[x].quant,
        AlignCorners=align,
        HalfPixelCenters=half,
    )
