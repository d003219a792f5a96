"""Caffe2 element-wise and tensor-manipulation operators."""

from __future__ import annotations

import numpy as np

from edgecc.converters.caffe2.graph import OPS, Graph, Op, OpInvalid, OpUnsupported

__all__ = ["broadcast_operand", "concat_axis"]


def broadcast_operand(g: Graph, op: Op, a: str, b: str) -> str:
    """B shaped for numpy broadcasting against A under Caffe2's legacy `broadcast=1, axis=k` rule."""
    if not op.i("broadcast", 0):
        return b
    axis = op.i("axis", -1)
    if op.has("axis_str"):
        order = (op.s("order", "NCHW") or "NCHW").upper()
        axis_str = op.s("axis_str", "") or ""
        if len(axis_str) != 1 or axis_str not in order:
            raise OpInvalid(f"axis_str '{axis_str}' is not one dimension of order {order}")
        axis = order.index(axis_str)
    if axis == -1:
        return b  # suffix matching: numpy broadcasting does it
    rank_a, rank_b = g.rank(a), g.rank(b)
    if axis is None or axis < 0:
        axis = (axis or 0) + rank_a
    trailing = rank_a - axis - rank_b
    if axis < 0 or trailing < 0:
        raise OpInvalid(f"B of rank {rank_b} does not fit into A of rank {rank_a} at axis {axis}")
    if trailing == 0:
        return b
    if b in g.consts:
        value = g.consts[b]
        return g.const(value.reshape(value.shape + (1,) * trailing), f"{b}_bcast")
    axes = g.ints(list(range(rank_b, rank_b + trailing)), f"{b}_bcast_axes")
    return g.one("Unsqueeze", [b, axes], g.unique(f"{b}_bcast"))


def _binary(onnx_type: str):
    def convert(g: Graph, op: Op) -> None:
        a = op.input(0)
        g.one(onnx_type, [a, broadcast_operand(g, op, a, op.input(1))], op.output(), name=op.name)

    convert.__doc__ = f"Element-wise {onnx_type}: numpy broadcasting, or the legacy broadcast=1 with axis/axis_str."
    return convert


for _caffe2, _onnx in (("Add", "Add"), ("Sub", "Sub"), ("Mul", "Mul"), ("Div", "Div"), ("Pow", "Pow")):
    OPS.register(_caffe2, _binary(_onnx))


@OPS.register("Sum")
def sum_(g: Graph, op: Op) -> None:
    """Element-wise sum of all inputs."""
    g.one("Sum", list(op.onnx_inputs), op.output(), name=op.name)


@OPS.register("Max")
def max_(g: Graph, op: Op) -> None:
    """Element-wise maximum of all inputs."""
    g.one("Max", list(op.onnx_inputs), op.output(), name=op.name)


@OPS.register("Scale")
def scale(g: Graph, op: Op) -> None:
    """x * scale (scale defaults to 1)."""
    factor = g.const(np.float32(op.f("scale", 1.0)), f"{op.name}_scale")
    g.one("Mul", [op.input(0), factor], op.output(), name=op.name)


@OPS.register("Clip")
def clip(g: Graph, op: Op) -> None:
    """min(max(x, min), max) with unbounded defaults."""
    lo = g.const(np.float32(op.f("min", float("-inf"))), f"{op.name}_min")
    hi = g.const(np.float32(op.f("max", float("inf"))), f"{op.name}_max")
    g.one("Clip", [op.input(0), lo, hi], op.output(), name=op.name)


def concat_axis(g: Graph, op: Op, rank: int, default_order_axis: bool = True) -> int:
    """The Concat/Split axis: `axis`, else the channel dim of `order` (NCHW -> 1, NHWC -> last)."""
    if op.has("axis"):
        axis = int(op.i("axis", 1) or 0)
    else:
        axis = rank - 1 if op.order() == "NHWC" else 1
    return axis


def _split_info(g: Graph, op: Op, parts: list[str], axis: int) -> None:
    from onnx import TensorProto

    sizes = [g.one("Shape", [p], g.unique(f"{p}_size"), start=axis, end=axis + 1) for p in parts]
    joined = g.one("Concat", sizes, g.unique(f"{op.output(1)}_i64"), axis=0)
    g.one("Cast", [joined], op.output(1), to=TensorProto.INT32)


@OPS.register("Concat")
def concat(g: Graph, op: Op) -> None:
    """Join inputs along `axis` (or the order's channel dim); add_axis stacks; output 2 is split_info (int32 sizes)."""
    parts = list(op.onnx_inputs)
    if not parts:
        raise OpInvalid("Concat without inputs")
    rank = g.rank(parts[0])
    add_axis = bool(op.i("add_axis", 0))
    axis = concat_axis(g, op, rank + (1 if add_axis else 0))
    out_rank = rank + (1 if add_axis else 0)
    if axis < 0:
        axis += out_rank
    if not 0 <= axis < out_rank:
        raise OpInvalid(f"axis {axis} out of range for rank {out_rank}")
    inputs = parts
    if add_axis:
        axes = g.ints([axis], f"{op.name}_axis")
        inputs = [g.one("Unsqueeze", [p, axes], g.unique(f"{p}_stacked")) for p in parts]
    g.one("Concat", inputs, op.output(), name=op.name, axis=axis)
    if len(op.onnx_outputs) > 1 and op.onnx_outputs[1]:
        if add_axis:
            from onnx import TensorProto, helper

            g.one(
                "Constant", [], op.output(1), value=helper.make_tensor("sizes", TensorProto.INT32, [len(parts)], [1] * len(parts))
            )
        else:
            _split_info(g, op, parts, axis)


OPS.register("DepthConcat", concat)


@OPS.register("Split")
def split(g: Graph, op: Op) -> None:
    """Split along `axis` (or the order's channel dim) by the `split` argument, a second input, or equally."""
    x = op.input(0)
    rank = g.rank(x)
    axis = concat_axis(g, op, rank)
    if axis < 0:
        axis += rank
    outputs = list(op.onnx_outputs)
    sizes = op.ints("split")
    if len(op.onnx_inputs) > 1:
        if op.input(1) not in g.consts:
            raise OpUnsupported("Split sizes computed at run time")
        sizes = [int(v) for v in g.consts[op.input(1)].reshape(-1)]
    add_axis = bool(op.i("add_axis", 0))
    targets = [g.unique(f"{o}_keepdim") for o in outputs] if add_axis else outputs
    inputs = [x]
    if sizes:
        if len(sizes) != len(outputs):
            raise OpInvalid(f"{len(sizes)} split sizes for {len(outputs)} outputs")
        inputs.append(g.ints(sizes, f"{op.name}_split"))
    else:
        dim = (g.shape(x) or [None] * rank)[axis]
        if dim is not None and dim % len(outputs):
            raise OpInvalid(f"dimension {dim} does not split equally into {len(outputs)} parts")
    g.node("Split", inputs, targets, name=op.name, axis=axis)
    if add_axis:
        axes = g.ints([axis], f"{op.name}_axis")
        for target, out in zip(targets, outputs):
            g.one("Squeeze", [target, axes], out)


@OPS.register("Reshape")
def reshape(g: Graph, op: Op) -> None:
    """Reshape by the `shape` argument or a second input (0 copies a dim, -1 infers); output 2 is the old shape."""
    x = op.input(0)
    if len(op.onnx_inputs) > 1:
        source = op.input(1)
        shape = (
            g.const(g.consts[source].astype(np.int64), f"{source}_i64")
            if source in g.consts
            else g.one("Cast", [source], g.unique(f"{source}_i64"), to=7)
        )
    else:
        dims = op.ints("shape")
        if dims is None:
            raise OpInvalid("Reshape without a 'shape' argument or a second input")
        shape = g.ints(dims, f"{op.name}_shape")
    g.one("Reshape", [x, shape], op.output(), name=op.name)
    if len(op.onnx_outputs) > 1 and op.onnx_outputs[1]:
        g.one("Shape", [x], op.output(1))


@OPS.register("Flatten")
def flatten(g: Graph, op: Op) -> None:
    """2-D [prod(dims[:axis]), prod(dims[axis:])], axis defaults to 1."""
    g.one("Flatten", [op.input(0)], op.output(), name=op.name, axis=int(op.i("axis", 1) if op.has("axis") else 1))


@OPS.register("FlattenToVec")
def flatten_to_vec(g: Graph, op: Op) -> None:
    """1-D view of all elements."""
    g.one("Reshape", [op.input(0), g.ints([-1], f"{op.name}_shape")], op.output(), name=op.name)


@OPS.register("Transpose")
def transpose(g: Graph, op: Op) -> None:
    """Permute dims by `axes` (reversed when absent)."""
    axes = op.ints("axes")
    g.one("Transpose", [op.input(0)], op.output(), name=op.name, perm=axes or None)


OPS.register("NCHW2NHWC", lambda g, op: g.to_nhwc(op.input(0), op.output(), g.rank(op.input(0))))
OPS.register(
    "NHWC2NCHW",
    lambda g, op: g.one(
        "Transpose",
        [op.input(0)],
        op.output(),
        name=op.name,
        perm=[0, g.rank(op.input(0)) - 1] + list(range(1, g.rank(op.input(0)) - 1)),
    ),
)
OPS.get("NCHW2NHWC").__doc__ = "Transpose channels-first to channels-last."
OPS.get("NHWC2NCHW").__doc__ = "Transpose channels-last to channels-first."


@OPS.register("Squeeze")
def squeeze(g: Graph, op: Op) -> None:
    """Remove the size-1 dims listed in `dims`."""
    dims = op.ints("dims") or []
    g.one("Squeeze", [op.input(0), g.ints(dims, f"{op.name}_axes")], op.output(), name=op.name)


@OPS.register("ExpandDims")
def expand_dims(g: Graph, op: Op) -> None:
    """Insert size-1 dims at the (output) positions listed in `dims`."""
    dims = sorted(op.ints("dims") or [])
    if not dims:
        raise OpInvalid("ExpandDims without dims")
    g.one("Unsqueeze", [op.input(0), g.ints(dims, f"{op.name}_axes")], op.output(), name=op.name)


def _identity(g: Graph, op: Op) -> None:
    g.one("Identity", [op.input(0)], op.output(), name=op.name)


for _name, _doc in (
    ("Copy", "A copy of the input."),
    ("Alias", "The same tensor under another name."),
    ("StopGradient", "Identity at inference."),
    ("EnsureDense", "Identity for dense tensors."),
    ("CopyCPUToGPU", "Identity (device copy)."),
    ("CopyGPUToCPU", "Identity (device copy)."),
):

    def _make(doc: str):
        def convert(g: Graph, op: Op) -> None:
            _identity(g, op)

        convert.__doc__ = doc
        return convert

    OPS.register(_name, _make(_doc))
