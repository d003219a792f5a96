"""Caffe layers that combine, split, reshape or resample blobs."""

from __future__ import annotations

import itertools

import numpy as np

from edgecc.converters.caffe.graph import LAYERS, LayerContext, LayerError, Shape

__all__ = ["caffe_reshape", "interp_size"]


@LAYERS.register("Eltwise")
def eltwise(ctx: LayerContext) -> list[Shape]:
    """Eltwise SUM (with coefficients), PROD, MAX -> Sum/Mul/Max."""
    param = ctx.layer.eltwise_param
    shapes = ctx.shapes
    if any(s != shapes[0] for s in shapes):
        raise LayerError(f"bottoms of different shapes {shapes}")
    if len(ctx.inputs) < 2:
        raise LayerError("Eltwise needs at least two bottoms")
    inputs = list(ctx.inputs)
    if param.operation == 1:
        coeffs = [float(c) for c in param.coeff]
        if coeffs and len(coeffs) != len(inputs):
            raise LayerError(f"{len(coeffs)} coefficients for {len(inputs)} bottoms")
        if coeffs and any(c != 1.0 for c in coeffs):
            inputs = [
                name if c == 1.0 else ctx.node("Mul", [name, ctx.const(f"coeff{i}", c)])[0]
                for i, (name, c) in enumerate(zip(inputs, coeffs))
            ]
        ctx.node("Sum", inputs, ctx.outputs)
    elif param.operation == 0:
        current = inputs[0]
        for index, other in enumerate(inputs[1:]):
            last = index == len(inputs) - 2
            current = ctx.node("Mul", [current, other], ctx.outputs if last else 1)[0]
    else:
        ctx.node("Max", inputs, ctx.outputs)
    return [shapes[0]]


@LAYERS.register("Concat")
def concat(ctx: LayerContext) -> list[Shape]:
    """Concat along axis (or legacy concat_dim) -> Concat."""
    param = ctx.layer.concat_param
    rank = len(ctx.shape())
    axis = ctx.axis(
        int(param.concat_dim) if param.HasField("concat_dim") and not param.HasField("axis") else int(param.axis), rank
    )
    shapes = ctx.shapes
    for shape in shapes[1:]:
        if len(shape) != rank or any(a != b for i, (a, b) in enumerate(zip(shape, shapes[0])) if i != axis):
            raise LayerError(f"bottoms of shapes {shapes} cannot be joined on axis {axis}")
    if len(ctx.inputs) == 1:
        ctx.node("Identity", ctx.inputs, ctx.outputs)
    else:
        ctx.node("Concat", ctx.inputs, ctx.outputs, axis=axis)
    out = list(shapes[0])
    out[axis] = sum(s[axis] for s in shapes)
    return [tuple(out)]


@LAYERS.register("Slice")
def slice_layer(ctx: LayerContext) -> list[Shape]:
    """Slice at slice_point (or into equal parts) along axis -> Split."""
    param = ctx.layer.slice_param
    shape = ctx.shape()
    axis = ctx.axis(
        int(param.slice_dim) if param.HasField("slice_dim") and not param.HasField("axis") else int(param.axis), len(shape)
    )
    size, count = shape[axis], len(ctx.outputs)
    points = [int(p) for p in param.slice_point]
    if points:
        if len(points) != count - 1 or points != sorted(points) or points[-1] >= size or points[0] <= 0:
            raise LayerError(f"slice points {points} do not cut axis {axis} of size {size} into {count} parts")
        bounds = [0, *points, size]
        sizes = [b - a for a, b in itertools.pairwise(bounds)]
    else:
        if size % count:
            raise LayerError(f"axis {axis} of size {size} does not split into {count} equal parts")
        sizes = [size // count] * count
    if count == 1:
        ctx.node("Identity", ctx.inputs, ctx.outputs)
    else:
        ctx.node("Split", [ctx.inputs[0], ctx.ints("split", sizes)], ctx.outputs, axis=axis)
    return [tuple(s if i != axis else part for i, s in enumerate(shape)) for part in sizes]


@LAYERS.register("Split")
def split(ctx: LayerContext) -> list[Shape]:
    """Split (copies of one blob) -> Identity per top."""
    for output in ctx.outputs:
        ctx.graph.node("Identity", ctx.inputs[:1], [output], name=f"{ctx.name}/{output}")
    return [ctx.shape()] * len(ctx.outputs)


@LAYERS.register("Dropout")
def dropout(ctx: LayerContext) -> list[Shape]:
    """Dropout (inference: identity) -> Identity."""
    ctx.node("Identity", ctx.inputs, ctx.outputs)
    return [ctx.shape()]


def _reshape(ctx: LayerContext, out: tuple[int, ...]) -> list[Shape]:
    ctx.node("Reshape", [ctx.inputs[0], ctx.ints("shape", out)], ctx.outputs)
    return [out]


@LAYERS.register("Flatten")
def flatten(ctx: LayerContext) -> list[Shape]:
    """Flatten axes axis..end_axis -> Reshape."""
    param = ctx.layer.flatten_param
    shape = ctx.shape()
    start = ctx.axis(int(param.axis), len(shape))
    end = ctx.axis(int(param.end_axis), len(shape))
    if end < start:
        raise LayerError(f"end_axis {param.end_axis} before axis {param.axis}")
    out = (*shape[:start], int(np.prod(shape[start : end + 1])), *shape[end + 1 :])
    return _reshape(ctx, out)


def caffe_reshape(shape: Shape, dims: list[int], axis: int, num_axes: int) -> tuple[int, ...]:
    """Caffe's Reshape: 0 copies the input dim, -1 is inferred, only axes [axis, axis+num_axes) are replaced."""
    rank = len(shape)
    start = axis if axis >= 0 else rank + axis + 1
    if not 0 <= start <= rank:
        raise LayerError(f"axis {axis} out of range for rank {rank}")
    end = rank if num_axes == -1 else start + num_axes
    if num_axes < -1 or end > rank:
        raise LayerError(f"num_axes {num_axes} out of range")
    new: list[int] = []
    for index, dim in enumerate(dims):
        if dim == 0:
            if start + index >= rank:
                raise LayerError(f"dim {index} copies input axis {start + index}, which does not exist")
            new.append(shape[start + index])
        else:
            new.append(dim)
    if new.count(-1) > 1:
        raise LayerError("more than one -1 in the shape")
    out = [*shape[:start], *new, *shape[end:]]
    total = int(np.prod(shape))
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1]))
        if known == 0 or total % known:
            raise LayerError(f"cannot infer -1 in {new} for input {shape}")
        out[out.index(-1)] = total // known
    if int(np.prod(out)) != total or any(d <= 0 for d in out):
        raise LayerError(f"shape {new} does not fit input {shape}")
    return tuple(out)


@LAYERS.register("Reshape")
def reshape(ctx: LayerContext) -> list[Shape]:
    """Reshape (0 copies, -1 infers, axis/num_axes) -> Reshape with the resolved static shape."""
    param = ctx.layer.reshape_param
    out = caffe_reshape(ctx.shape(), [int(d) for d in param.shape.dim], int(param.axis), int(param.num_axes))
    return _reshape(ctx, out)


@LAYERS.register("Permute")
def permute(ctx: LayerContext) -> list[Shape]:
    """SSD's Permute (order, completed with the remaining axes) -> Transpose."""
    shape = ctx.shape()
    order = [int(o) for o in ctx.layer.permute_param.order]
    if len(set(order)) != len(order) or any(o >= len(shape) for o in order):
        raise LayerError(f"order {order} is not a permutation of {len(shape)} axes")
    order += [axis for axis in range(len(shape)) if axis not in order]
    ctx.node("Transpose", ctx.inputs, ctx.outputs, perm=order)
    return [tuple(shape[o] for o in order)]


@LAYERS.register("Softmax")
def softmax(ctx: LayerContext) -> list[Shape]:
    """Softmax along axis -> Softmax."""
    shape = ctx.shape()
    ctx.node("Softmax", ctx.inputs, ctx.outputs, axis=ctx.axis(int(ctx.layer.softmax_param.axis), len(shape)))
    return [shape]


@LAYERS.register("Crop")
def crop(ctx: LayerContext) -> list[Shape]:
    """Crop to the second bottom's shape from axis, at offsets -> Slice."""
    param = ctx.layer.crop_param
    if len(ctx.inputs) != 2:
        raise LayerError("Crop needs two bottoms")
    shape, reference = ctx.shape(0), ctx.shape(1)
    if len(shape) != len(reference):
        raise LayerError(f"bottoms of ranks {len(shape)} and {len(reference)}")
    axis = ctx.axis(int(param.axis), len(shape))
    offsets = [int(o) for o in param.offset]
    cropped = list(range(axis, len(shape)))
    if len(offsets) not in (0, 1, len(cropped)):
        raise LayerError(f"{len(offsets)} offsets for {len(cropped)} cropped axes")
    starts = [offsets[0] if len(offsets) == 1 else (offsets[i] if offsets else 0) for i in range(len(cropped))]
    ends = [s + reference[a] for s, a in zip(starts, cropped)]
    if any(e > shape[a] for e, a in zip(ends, cropped)):
        raise LayerError(f"crop of {reference} at offsets {starts} exceeds input {shape}")
    ctx.node("Slice", [ctx.inputs[0], ctx.ints("starts", starts), ctx.ints("ends", ends), ctx.ints("axes", cropped)], ctx.outputs)
    return [tuple(shape[:axis]) + tuple(reference[axis:])]


def interp_size(param: object, height: int, width: int) -> tuple[int, int]:
    """PSPNet's Interp output size (zoom_factor, shrink_factor, explicit height/width, pad_beg/pad_end)."""
    pad_beg, pad_end = int(param.pad_beg), int(param.pad_end)  # type: ignore[attr-defined]
    if pad_beg > 0 or pad_end > 0:
        raise LayerError("Interp pads must be zero or negative")
    h_eff, w_eff = height + pad_beg + pad_end, width + pad_beg + pad_end
    has = param.HasField  # type: ignore[attr-defined]
    zoom, shrink = int(param.zoom_factor), int(param.shrink_factor)  # type: ignore[attr-defined]
    if has("shrink_factor") and not has("zoom_factor"):
        return (h_eff - 1) // shrink + 1, (w_eff - 1) // shrink + 1
    if has("zoom_factor") and not has("shrink_factor"):
        return h_eff + (h_eff - 1) * (zoom - 1), w_eff + (w_eff - 1) * (zoom - 1)
    if has("height") and has("width"):
        return int(param.height), int(param.width)  # type: ignore[attr-defined]
    if has("shrink_factor") and has("zoom_factor"):
        h, w = (h_eff - 1) // shrink + 1, (w_eff - 1) // shrink + 1
        return h + (h - 1) * (zoom - 1), w + (w - 1) * (zoom - 1)
    raise LayerError("Interp needs zoom_factor, shrink_factor or height and width")


@LAYERS.register("Interp")
def interp(ctx: LayerContext) -> list[Shape]:
    """PSPNet/DeepLab Interp (bilinear, corners aligned; size from factors, height/width or a second bottom) -> Resize."""
    shape = ctx.shape()
    if len(shape) != 4:
        raise LayerError(f"Interp of a rank-{len(shape)} input")
    if int(ctx.layer.interp_param.pad_beg) or int(ctx.layer.interp_param.pad_end):
        raise LayerError("Interp with non-zero pad_beg/pad_end")
    if len(ctx.inputs) > 1:
        if len(ctx.shape(1)) != 4:
            raise LayerError(f"the size bottom has rank {len(ctx.shape(1))}, not 4")
        height, width = ctx.shape(1)[2], ctx.shape(1)[3]
    else:
        height, width = interp_size(ctx.layer.interp_param, shape[2], shape[3])
    if height <= 0 or width <= 0:
        raise LayerError(f"output size {height}x{width} is empty")
    out = (shape[0], shape[1], height, width)
    ctx.node(
        "Resize",
        [ctx.inputs[0], "", "", ctx.ints("sizes", out)],
        ctx.outputs,
        mode="linear",
        coordinate_transformation_mode="align_corners",
    )
    return [out]


@LAYERS.register("Upsample")
def upsample(ctx: LayerContext) -> list[Shape]:
    """YOLO-style Upsample (nearest neighbour by an integer scale) -> Resize."""
    shape = ctx.shape()
    if len(ctx.inputs) != 1:
        raise LayerError("SegNet's max-unpooling Upsample (with a mask bottom)")
    factor = int(ctx.layer.upsample_param.scale)
    if len(shape) != 4 or factor <= 0:
        raise LayerError(f"Upsample of a rank-{len(shape)} input by {factor}")
    out = (shape[0], shape[1], shape[2] * factor, shape[3] * factor)
    ctx.node(
        "Resize",
        [ctx.inputs[0], "", "", ctx.ints("sizes", out)],
        ctx.outputs,
        mode="nearest",
        nearest_mode="floor",
        coordinate_transformation_mode="asymmetric",
    )
    return [out]


@LAYERS.register("ShuffleChannel")
def shuffle_channel(ctx: LayerContext) -> list[Shape]:
    """ShuffleNet's ShuffleChannel (group) -> Reshape/Transpose/Reshape."""
    shape = ctx.shape()
    group = int(ctx.layer.shuffle_channel_param.group)
    if len(shape) < 2 or group <= 0 or shape[1] % group:
        raise LayerError(f"group {group} does not divide the channels of {shape}")
    split_shape = (shape[0], group, shape[1] // group, *shape[2:])
    grouped = ctx.node("Reshape", [ctx.inputs[0], ctx.ints("grouped", split_shape)])[0]
    perm = [0, 2, 1, *range(3, len(split_shape))]
    swapped = ctx.node("Transpose", [grouped], perm=perm)[0]
    ctx.node("Reshape", [swapped, ctx.ints("shape", shape)], ctx.outputs)
    return [shape]


@LAYERS.register("ArgMax")
def argmax(ctx: LayerContext) -> list[Shape]:
    """ArgMax (top_k, out_max_val, axis or per-sample flattened) -> TopK (+ Cast/Concat)."""
    param = ctx.layer.argmax_param
    shape = ctx.shape()
    top_k = int(param.top_k)
    k = ctx.ints("k", [top_k])
    if param.HasField("axis"):
        axis = ctx.axis(int(param.axis), len(shape))
        if top_k > shape[axis]:
            raise LayerError(f"top_k {top_k} is larger than axis {axis} ({shape[axis]})")
        values, indices = ctx.node("TopK", [ctx.inputs[0], k], 2, axis=axis)
        if param.out_max_val:
            ctx.node("Identity", [values], ctx.outputs)
        else:
            ctx.node("Cast", [indices], ctx.outputs, to=1)
        out = list(shape)
        out[axis] = top_k
        return [tuple(out)]
    inner = int(np.prod(shape[1:]))
    if top_k > inner:
        raise LayerError(f"top_k {top_k} is larger than the {inner} values per sample")
    flat = ctx.node("Reshape", [ctx.inputs[0], ctx.ints("flat", [shape[0], 1, inner])])[0]
    values, indices = ctx.node("TopK", [flat, k], 2, axis=2)
    if not param.out_max_val:
        ctx.node("Cast", [indices], ctx.outputs, to=1)
        return [(shape[0], 1, top_k)]
    as_float = ctx.node("Cast", [indices], to=1)[0]
    ctx.node("Concat", [as_float, values], ctx.outputs, axis=1)
    return [(shape[0], 2, top_k)]
