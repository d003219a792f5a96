"""Tensor manipulation: reshape family, concat/split/slice, casts, copies, embedding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from onnx import helper, numpy_helper

from edgecc.converters.mxnet.graph import Graph, register
from edgecc.converters.mxnet.schema import SymNode
from edgecc.errors import InvalidInputError, UnsupportedError

__all__ = ["mx_reshape_shape"]

_INT_MAX = 2**63 - 1
_INT_MIN = -(2**63)
_DTYPES = {"float32", "float16", "float64", "int32", "int64", "int8", "uint8", "bool"}


def _normalise(target: Sequence[int], reverse: bool) -> list[int]:
    """The target in reading order: reversed for reverse=True, with each -4 kept before its two values."""
    if not reverse:
        return list(target)
    tgt = list(target)[::-1]
    fixed: list[int] = []
    i = 0
    while i < len(tgt):
        if i + 2 < len(tgt) and tgt[i + 2] == -4:
            fixed += [-4, tgt[i + 1], tgt[i]]
            i += 3
        else:
            fixed.append(tgt[i])
            i += 1
    return fixed


def mx_reshape_shape(dshape: Sequence[Any], target: Sequence[int], reverse: bool = False) -> list[Any]:
    """MXNet's Reshape rule: codes 0 (copy), -1 (infer), -2 (copy rest), -3 (merge two), -4 (split one)."""
    src = list(dshape)[::-1] if reverse else list(dshape)
    tgt = _normalise(target, reverse)
    out: list[Any] = []
    infer = -1
    s = 0
    i = 0
    while i < len(tgt):
        code = tgt[i]
        if code == 0:
            out.append(src[s])
            s += 1
        elif code == -1:
            infer = len(out)
            out.append(1)
            s += 1
        elif code == -2:
            out.extend(src[s:])
            s = len(src)
        elif code == -3:
            out.append(src[s] * src[s + 1])
            s += 2
        elif code == -4:
            d0, d1, d2 = src[s], tgt[i + 1], tgt[i + 2]
            s += 1
            i += 2
            if d1 == -1:
                d1 = d0 // d2
            if d2 == -1:
                d2 = d0 // d1
            out += [d1, d2]
        else:
            out.append(code)
            s += 1
        i += 1
    if infer >= 0:
        known = int(np.prod([d for j, d in enumerate(out) if j != infer], dtype=np.int64))
        out[infer] = int(np.prod(src, dtype=np.int64)) // max(known, 1)
    return out[::-1] if reverse else out


@register("Reshape", "reshape")
def reshape(ctx: Graph, node: SymNode) -> list[str]:
    """Reshape with MXNet's special codes (0, -1, -2, -3, -4) and reverse."""
    a = node.attrs
    x = ctx.inp(node, 0)
    if a.has("shape"):
        target = list(a.ints("shape"))
    elif a.has("target_shape"):
        target = list(a.ints("target_shape"))
        if a.bool("keep_highest"):
            target = [0] + target[1:]
    else:
        raise InvalidInputError(f"{ctx.path}: node '{node.name}' (Reshape) has no shape", path=ctx.path)
    reverse = a.bool("reverse")
    shape = ctx.shape(x)
    if shape is not None and all(isinstance(d, int) for d in shape):
        try:
            out = mx_reshape_shape(shape, target, reverse)
        except IndexError:
            raise InvalidInputError(
                f"{ctx.path}: node '{node.name}' (Reshape): shape {tuple(target)} does not fit input {tuple(shape)}",
                path=ctx.path,
            ) from None
        return [ctx.add("Reshape", [x, ctx.ints(out, f"{node.name}__shape")], ctx.out(node))]
    if not reverse and all(t >= -1 for t in target) and target.count(-1) <= 1:
        # 0, -1 and plain sizes mean the same in ONNX when no code shifts the input position
        return [ctx.add("Reshape", [x, ctx.ints(target, f"{node.name}__shape")], ctx.out(node))]
    if shape is None:
        ctx.static_shape(x, node, f"shape codes {tuple(target)}")
        raise AssertionError("unreachable")
    return [_dynamic_reshape(ctx, node, x, len(shape), target, reverse)]


def _dynamic_reshape(ctx: Graph, node: SymNode, x: str, rank: int, target: list[int], reverse: bool) -> str:
    """The MXNet rule on symbolic dimensions: the target shape is computed from Shape(x) at run time."""
    src = list(range(rank))[::-1] if reverse else list(range(rank))
    tgt = _normalise(target, reverse)
    out: list[tuple[Any, ...]] = []
    s = 0
    i = 0
    try:
        while i < len(tgt):
            code = tgt[i]
            if code == 0:
                out.append(("dim", src[s]))
                s += 1
            elif code == -1:
                out.append(("const", -1))
                s += 1
            elif code == -2:
                out.extend(("dim", k) for k in src[s:])
                s = len(src)
            elif code == -3:
                out.append(("mul", src[s], src[s + 1]))
                s += 2
            elif code == -4:
                d1, d2 = tgt[i + 1], tgt[i + 2]
                first = ("div", src[s], d2) if d1 == -1 else ("const", d1)
                second = ("div", src[s], d1) if d2 == -1 else ("const", d2)
                out += [first, second]
                s += 1
                i += 2
            else:
                out.append(("const", code))
                s += 1
            i += 1
    except IndexError:
        raise InvalidInputError(
            f"{ctx.path}: node '{node.name}' (Reshape): shape {tuple(target)} does not fit a rank-{rank} input", path=ctx.path
        ) from None
    if reverse:
        out.reverse()
    shape = ctx.add("Shape", [x], f"{node.name}__in_shape")

    def dim(index: int) -> str:
        return ctx.add("Gather", [shape, ctx.ints([index], f"{node.name}__i")], f"{node.name}__dim", axis=0)

    parts: list[str] = []
    for entry in out:
        if entry[0] == "const":
            parts.append(ctx.ints([entry[1]], f"{node.name}__c"))
        elif entry[0] == "dim":
            parts.append(dim(entry[1]))
        elif entry[0] == "mul":
            parts.append(ctx.add("Mul", [dim(entry[1]), dim(entry[2])], f"{node.name}__merged"))
        else:
            parts.append(ctx.add("Div", [dim(entry[1]), ctx.ints([entry[2]], f"{node.name}__c")], f"{node.name}__split"))
    joined = ctx.add("Concat", parts, f"{node.name}__shape", axis=0)
    return ctx.add("Reshape", [x, joined], ctx.out(node))


@register("Flatten", "flatten")
def flatten(ctx: Graph, node: SymNode) -> list[str]:
    """Flatten to (batch, -1)."""
    return [ctx.add("Flatten", [ctx.inp(node, 0)], ctx.out(node), axis=1)]


@register("transpose")
def transpose(ctx: Graph, node: SymNode) -> list[str]:
    """Transpose by `axes` (reversed axes when empty)."""
    axes = list(node.attrs.ints("axes"))
    attrs = {"perm": axes} if axes else {}
    return [ctx.add("Transpose", [ctx.inp(node, 0)], ctx.out(node), **attrs)]


@register("expand_dims")
def expand_dims(ctx: Graph, node: SymNode) -> list[str]:
    """Unsqueeze at `axis`."""
    axis = node.attrs.int("axis")
    return [ctx.add("Unsqueeze", [ctx.inp(node, 0), ctx.ints([axis], f"{node.name}__axes")], ctx.out(node))]


@register("squeeze")
def squeeze(ctx: Graph, node: SymNode) -> list[str]:
    """Squeeze `axis`; without it every size-1 axis (a symbolic dimension, such as the batch, is kept)."""
    axes = list(node.attrs.ints("axis"))
    x = ctx.inp(node, 0)
    shape = ctx.shape(x)
    if not axes and shape is not None:
        axes = [i for i, d in enumerate(shape) if d == 1]
        if not axes:
            return [ctx.add("Identity", [x], ctx.out(node))]
    inputs = [x] + ([ctx.ints(axes, f"{node.name}__axes")] if axes else [])
    return [ctx.add("Squeeze", inputs, ctx.out(node))]


@register("Concat", "concat")
def concat(ctx: Graph, node: SymNode) -> list[str]:
    """Concat along `dim` (default 1)."""
    inputs = [ctx.inp(node, i) for i in range(ctx.num_inputs(node))]
    return [ctx.add("Concat", inputs, ctx.out(node), axis=node.attrs.int("dim", 1))]


@register("stack")
def stack(ctx: Graph, node: SymNode) -> list[str]:
    """Unsqueeze every input at `axis`, then Concat."""
    axis = node.attrs.int("axis", 0)
    axes = ctx.ints([axis], f"{node.name}__axes")
    parts = [ctx.add("Unsqueeze", [ctx.inp(node, i), axes], f"{node.name}__in{i}") for i in range(ctx.num_inputs(node))]
    return [ctx.add("Concat", parts, ctx.out(node), axis=axis)]


@register("SliceChannel", "split")
def slice_channel(ctx: Graph, node: SymNode) -> list[str]:
    """Split into `num_outputs` equal parts along `axis`, optionally squeezing it."""
    a = node.attrs
    count = a.int("num_outputs")
    axis = a.int("axis", 1)
    x = ctx.inp(node, 0)
    names = [ctx.out(node, i, count) for i in range(count)]
    if not a.bool("squeeze_axis"):
        return ctx.add_multi("Split", [x], names, axis=axis)
    parts = ctx.add_multi("Split", [x], [f"{n}__unsqueezed" for n in names], axis=axis)
    axes = ctx.ints([axis], f"{node.name}__axes")
    return [ctx.add("Squeeze", [p, axes], n) for p, n in zip(parts, names)]


@register("slice", "crop")
def slice_(ctx: Graph, node: SymNode) -> list[str]:
    """Slice with begin/end/step tuples (None entries allowed)."""
    a = node.attrs
    begin = list(a.opt_ints("begin"))
    end = list(a.opt_ints("end"))
    step = list(a.opt_ints("step")) or [None] * len(begin)
    if len(end) != len(begin) or len(step) != len(begin):
        raise InvalidInputError(f"{ctx.path}: node '{node.name}' (slice): begin, end and step differ in length", path=ctx.path)
    steps = [1 if s is None else s for s in step]
    starts = [(0 if st > 0 else _INT_MAX) if b is None else b for b, st in zip(begin, steps)]
    ends = [(_INT_MAX if st > 0 else _INT_MIN) if e is None else e for e, st in zip(end, steps)]
    inputs = [
        ctx.inp(node, 0),
        ctx.ints(starts, f"{node.name}__starts"),
        ctx.ints(ends, f"{node.name}__ends"),
        ctx.ints(list(range(len(starts))), f"{node.name}__axes"),
        ctx.ints(steps, f"{node.name}__steps"),
    ]
    return [ctx.add("Slice", inputs, ctx.out(node))]


@register("slice_axis")
def slice_axis(ctx: Graph, node: SymNode) -> list[str]:
    """Slice one axis from begin to end (None = to the end)."""
    a = node.attrs
    end = a.opt_ints("end", (None,))[0] if a.has("end") else None
    inputs = [
        ctx.inp(node, 0),
        ctx.ints([a.int("begin")], f"{node.name}__starts"),
        ctx.ints([_INT_MAX if end is None else end], f"{node.name}__ends"),
        ctx.ints([a.int("axis")], f"{node.name}__axes"),
    ]
    return [ctx.add("Slice", inputs, ctx.out(node))]


@register("clip")
def clip(ctx: Graph, node: SymNode) -> list[str]:
    """Clip to [a_min, a_max]."""
    x = ctx.inp(node, 0)
    dtype = ctx.np_dtype(x)
    low = ctx.const(node.attrs.float("a_min"), f"{node.name}__min", dtype)
    high = ctx.const(node.attrs.float("a_max"), f"{node.name}__max", dtype)
    return [ctx.add("Clip", [x, low, high], ctx.out(node))]


@register("Cast", "cast")
def cast(ctx: Graph, node: SymNode) -> list[str]:
    """Cast to `dtype`."""
    dtype = node.attrs.str("dtype", "float32")
    if dtype not in _DTYPES:
        raise UnsupportedError(f"{ctx.path}: node '{node.name}' (Cast): dtype {dtype}", path=ctx.path)
    to = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    return [ctx.add("Cast", [ctx.inp(node, 0)], ctx.out(node), to=to)]


def _fill_like(ctx: Graph, node: SymNode, value: float) -> list[str]:
    x = ctx.inp(node, 0)
    shape = ctx.add("Shape", [x], f"{node.name}__shape")
    fill = numpy_helper.from_array(np.array([value], dtype=ctx.np_dtype(x)), "value")
    return [ctx.add("ConstantOfShape", [shape], ctx.out(node), value=fill)]


@register("zeros_like")
def zeros_like(ctx: Graph, node: SymNode) -> list[str]:
    """Zeros of the input's shape and dtype."""
    return _fill_like(ctx, node, 0.0)


@register("ones_like")
def ones_like(ctx: Graph, node: SymNode) -> list[str]:
    """Ones of the input's shape and dtype."""
    return _fill_like(ctx, node, 1.0)


@register("_copy", "identity", "BlockGrad", "stop_gradient", "MakeLoss", "make_loss")
def identity(ctx: Graph, node: SymNode) -> list[str]:
    """Identity (copies and gradient markers)."""
    return [ctx.add("Identity", [ctx.inp(node, 0)], ctx.out(node))]


@register("Embedding")
def embedding(ctx: Graph, node: SymNode) -> list[str]:
    """Gather rows of the (input_dim, output_dim) weight by the (float or int) indices."""
    a = node.attrs
    shape = (a.int("input_dim"), a.int("output_dim")) if a.has("input_dim") and a.has("output_dim") else None
    weight = ctx.param(node, 1, shape, "weight")
    indices = ctx.add("Cast", [ctx.inp(node, 0)], f"{node.name}__indices", to=7)
    return [ctx.add("Gather", [weight, indices], ctx.out(node), axis=0)]


_PAD_MODES = {"constant": "constant", "edge": "edge", "reflect": "reflect"}


@register("Pad", "pad")
def pad(ctx: Graph, node: SymNode) -> list[str]:
    """Pad with constant, edge or reflect mode; pad_width holds (before, after) per axis."""
    a = node.attrs
    mode = a.str("mode", "constant").lower()
    if mode not in _PAD_MODES:
        raise UnsupportedError(f"{ctx.path}: node '{node.name}' (Pad): mode {mode}", path=ctx.path)
    width = list(a.ints("pad_width"))
    x = ctx.inp(node, 0)
    pads = ctx.ints(width[0::2] + width[1::2], f"{node.name}__pads")
    inputs = [x, pads]
    if mode == "constant":
        inputs.append(ctx.const(a.float("constant_value"), f"{node.name}__value", ctx.np_dtype(x)))
    return [ctx.add("Pad", inputs, ctx.out(node), mode=_PAD_MODES[mode])]


@register("SwapAxis", "swapaxes")
def swap_axis(ctx: Graph, node: SymNode) -> list[str]:
    """Transpose exchanging dim1 and dim2."""
    x = ctx.inp(node, 0)
    rank = ctx.rank(x, node)
    perm = list(range(rank))
    d1, d2 = node.attrs.int("dim1") % rank, node.attrs.int("dim2") % rank
    perm[d1], perm[d2] = perm[d2], perm[d1]
    return [ctx.add("Transpose", [x], ctx.out(node), perm=perm)]


@register("tile")
def tile(ctx: Graph, node: SymNode) -> list[str]:
    """Tile by `reps` (missing leading reps are 1; extra reps add leading axes)."""
    x = ctx.inp(node, 0)
    reps = list(node.attrs.ints("reps"))
    rank = ctx.rank(x, node)
    if len(reps) > rank:
        x = ctx.add("Unsqueeze", [x, ctx.ints(list(range(len(reps) - rank)), f"{node.name}__lead")], f"{node.name}__expanded")
    reps = [1] * (rank - len(reps)) + reps
    return [ctx.add("Tile", [x, ctx.ints(reps, f"{node.name}__reps")], ctx.out(node))]


@register("repeat")
def repeat(ctx: Graph, node: SymNode) -> list[str]:
    """Repeat every element `repeats` times along `axis` (the flattened input without axis)."""
    x = ctx.inp(node, 0)
    count = node.attrs.int("repeats")
    if not node.attrs.has("axis"):
        x = ctx.add("Reshape", [x, ctx.ints([-1], f"{node.name}__flat_shape")], f"{node.name}__flat")
        shape: tuple[int, ...] = (-1,)
        axis = 0
    else:
        shape = ctx.static_shape(x, node, "repeat")
        axis = node.attrs.int("axis") % len(shape)
    unsq = ctx.add("Unsqueeze", [x, ctx.ints([axis + 1], f"{node.name}__axis")], f"{node.name}__unsq")
    reps = [1] * (len(shape) + 1)
    reps[axis + 1] = count
    tiled = ctx.add("Tile", [unsq, ctx.ints(reps, f"{node.name}__reps")], f"{node.name}__tiled")
    out_shape = list(shape)
    out_shape[axis] = -1 if out_shape[axis] == -1 else out_shape[axis] * count
    return [ctx.add("Reshape", [tiled, ctx.ints(out_shape, f"{node.name}__oshape")], ctx.out(node))]


@register("broadcast_to")
def broadcast_to(ctx: Graph, node: SymNode) -> list[str]:
    """Expand to `shape` (0 keeps the input's dimension)."""
    target = [1 if d == 0 else d for d in node.attrs.ints("shape")]
    return [ctx.add("Expand", [ctx.inp(node, 0), ctx.ints(target, f"{node.name}__shape")], ctx.out(node))]


@register("broadcast_like")
def broadcast_like(ctx: Graph, node: SymNode) -> list[str]:
    """Expand the first input to the shape of the second (all axes)."""
    if node.attrs.has("lhs_axes") or node.attrs.has("rhs_axes"):
        raise UnsupportedError(f"{ctx.path}: node '{node.name}' (broadcast_like): lhs_axes/rhs_axes", path=ctx.path)
    shape = ctx.add("Shape", [ctx.inp(node, 1)], f"{node.name}__shape")
    return [ctx.add("Expand", [ctx.inp(node, 0), shape], ctx.out(node))]


@register("where")
def where(ctx: Graph, node: SymNode) -> list[str]:
    """x where the condition is non-zero, else y."""
    cond = ctx.add("Cast", [ctx.inp(node, 0)], f"{node.name}__cond", to=9)
    return [ctx.add("Where", [cond, ctx.inp(node, 1), ctx.inp(node, 2)], ctx.out(node))]
