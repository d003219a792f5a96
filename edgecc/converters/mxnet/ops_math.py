"""Arithmetic: elementwise and broadcast binaries, `_scalar` variants, unary math, reductions, dot."""

from __future__ import annotations

from edgecc.converters.mxnet.graph import Graph, register
from edgecc.converters.mxnet.schema import SymNode
from edgecc.errors import UnsupportedError

__all__: list[str] = []


def _binary(onnx_op: str):
    def convert(ctx: Graph, node: SymNode) -> list[str]:
        return [ctx.add(onnx_op, [ctx.inp(node, 0), ctx.inp(node, 1)], ctx.out(node))]

    convert.__doc__ = f"Elementwise {onnx_op} with numpy broadcasting."
    return convert


_BINARIES = {
    "Add": ("elemwise_add", "_plus", "_Plus", "_add", "broadcast_add", "broadcast_plus"),
    "Sub": ("elemwise_sub", "_minus", "_Minus", "_sub", "broadcast_sub", "broadcast_minus"),
    "Mul": ("elemwise_mul", "_mul", "_Mul", "broadcast_mul"),
    "Div": ("elemwise_div", "_div", "_Div", "broadcast_div"),
    "Max": ("_maximum", "_Maximum", "broadcast_maximum"),
    "Min": ("_minimum", "_Minimum", "broadcast_minimum"),
    "Pow": ("_power", "_Power", "broadcast_power"),
}
for _op, _names in _BINARIES.items():
    register(*_names)(_binary(_op))


@register("add_n", "ElementWiseSum")
def add_n(ctx: Graph, node: SymNode) -> list[str]:
    """Sum of all inputs."""
    return [ctx.add("Sum", [ctx.inp(node, i) for i in range(ctx.num_inputs(node))], ctx.out(node))]


def _scalar(onnx_op: str, reverse: bool):
    def convert(ctx: Graph, node: SymNode) -> list[str]:
        x = ctx.inp(node, 0)
        s = ctx.const(node.attrs.float("scalar"), f"{node.name}__scalar", ctx.np_dtype(x))
        return [ctx.add(onnx_op, [s, x] if reverse else [x, s], ctx.out(node))]

    convert.__doc__ = f"{onnx_op} of the input and the `scalar` attribute{' (scalar first)' if reverse else ''}."
    return convert


_SCALARS = {
    ("Add", False): ("_plus_scalar", "_PlusScalar"),
    ("Sub", False): ("_minus_scalar", "_MinusScalar"),
    ("Sub", True): ("_rminus_scalar", "_RMinusScalar"),
    ("Mul", False): ("_mul_scalar", "_MulScalar"),
    ("Div", False): ("_div_scalar", "_DivScalar"),
    ("Div", True): ("_rdiv_scalar", "_RDivScalar"),
    ("Pow", False): ("_power_scalar", "_PowerScalar"),
    ("Pow", True): ("_rpower_scalar", "_RPowerScalar"),
    ("Max", False): ("_maximum_scalar", "_MaximumScalar"),
    ("Min", False): ("_minimum_scalar", "_MinimumScalar"),
}
for (_op, _rev), _names in _SCALARS.items():
    register(*_names)(_scalar(_op, _rev))


def _unary(onnx_op: str):
    def convert(ctx: Graph, node: SymNode) -> list[str]:
        return [ctx.add(onnx_op, [ctx.inp(node, 0)], ctx.out(node))]

    convert.__doc__ = f"Elementwise {onnx_op}."
    return convert


_UNARIES = {
    "Exp": ("exp",),
    "Log": ("log",),
    "Sqrt": ("sqrt",),
    "Abs": ("abs",),
    "Neg": ("negative",),
    "Relu": ("relu",),
    "Sigmoid": ("sigmoid",),
    "Tanh": ("tanh",),
    "Reciprocal": ("reciprocal",),
    "Floor": ("floor",),
    "Ceil": ("ceil",),
    "Sin": ("sin",),
    "Cos": ("cos",),
    "Erf": ("erf",),
    "Softsign": ("softsign",),
    "Sign": ("sign",),
}
for _op, _names in _UNARIES.items():
    register(*_names)(_unary(_op))


@register("square")
def square(ctx: Graph, node: SymNode) -> list[str]:
    """x * x."""
    x = ctx.inp(node, 0)
    return [ctx.add("Mul", [x, x], ctx.out(node))]


@register("rsqrt")
def rsqrt(ctx: Graph, node: SymNode) -> list[str]:
    """1 / sqrt(x)."""
    root = ctx.add("Sqrt", [ctx.inp(node, 0)], f"{node.name}__sqrt")
    return [ctx.add("Reciprocal", [root], ctx.out(node))]


def _reduce(onnx_op: str):
    def convert(ctx: Graph, node: SymNode) -> list[str]:
        a = node.attrs
        x = ctx.inp(node, 0)
        axes = list(a.ints("axis"))
        if a.bool("exclude"):
            rank = ctx.rank(x, node)
            drop = {ax % rank for ax in axes}
            axes = [ax for ax in range(rank) if ax not in drop]
        keep = 1 if a.bool("keepdims") else 0
        # MXNet (without numpy semantics) returns shape (1,) when every axis goes
        everything = not keep and (not axes or len({ax % ctx.rank(x, node) for ax in axes}) == ctx.rank(x, node))
        out = f"{node.name}__all" if everything else ctx.out(node)
        if onnx_op == "ReduceSum":
            inputs = [x] + ([ctx.ints(axes, f"{node.name}__axes")] if axes else [])
            result = ctx.add(onnx_op, inputs, out, keepdims=keep)
        else:
            attrs = {"axes": axes} if axes else {}
            result = ctx.add(onnx_op, [x], out, keepdims=keep, **attrs)
        if everything:
            result = ctx.add("Reshape", [result, ctx.ints([1], f"{node.name}__one")], ctx.out(node))
        return [result]

    convert.__doc__ = f"{onnx_op} over `axis` (all when empty) with keepdims and exclude."
    return convert


_REDUCTIONS = {
    "ReduceSum": ("sum", "sum_axis"),
    "ReduceMean": ("mean",),
    "ReduceMax": ("max", "max_axis"),
    "ReduceMin": ("min", "min_axis"),
    "ReduceProd": ("prod",),
}
for _op, _names in _REDUCTIONS.items():
    register(*_names)(_reduce(_op))


def _swap_last(ctx: Graph, x: str, node: SymNode, tag: str) -> str:
    rank = ctx.rank(x, node)
    perm = list(range(rank))
    perm[-1], perm[-2] = perm[-2], perm[-1]
    return ctx.add("Transpose", [x], f"{node.name}__{tag}_t", perm=perm)


@register("dot")
def dot(ctx: Graph, node: SymNode) -> list[str]:
    """Tensor dot of the last axis of a with the first axis of b (transpose_a/b for 2-D)."""
    a_attr = node.attrs
    a = ctx.inp(node, 0)
    b = ctx.inp(node, 1)
    rank_a = ctx.rank(a, node)
    rank_b = ctx.rank(b, node)
    if a_attr.bool("transpose_a"):
        if rank_a != 2:
            raise UnsupportedError(f"{ctx.path}: node '{node.name}' (dot): transpose_a on a {rank_a}-D input", path=ctx.path)
        a = ctx.add("Transpose", [a], f"{node.name}__a_t", perm=[1, 0])
    if a_attr.bool("transpose_b"):
        if rank_b != 2:
            raise UnsupportedError(f"{ctx.path}: node '{node.name}' (dot): transpose_b on a {rank_b}-D input", path=ctx.path)
        b = ctx.add("Transpose", [b], f"{node.name}__b_t", perm=[1, 0])
    if rank_b <= 2:
        return [ctx.add("MatMul", [a, b], ctx.out(node))]
    shape_a = ctx.static_shape(a, node, "dot of N-D tensors")
    shape_b = ctx.static_shape(b, node, "dot of N-D tensors")
    flat_b = ctx.add("Reshape", [b, ctx.ints([shape_b[0], -1], f"{node.name}__bshape")], f"{node.name}__b2d")
    prod = ctx.add("MatMul", [a, flat_b], f"{node.name}__mm")
    out_shape = list(shape_a[:-1]) + list(shape_b[1:])
    return [ctx.add("Reshape", [prod, ctx.ints(out_shape, f"{node.name}__oshape")], ctx.out(node))]


@register("batch_dot")
def batch_dot(ctx: Graph, node: SymNode) -> list[str]:
    """Batched MatMul with optional transposes of the last two axes."""
    a = ctx.inp(node, 0)
    b = ctx.inp(node, 1)
    if node.attrs.bool("transpose_a"):
        a = _swap_last(ctx, a, node, "a")
    if node.attrs.bool("transpose_b"):
        b = _swap_last(ctx, b, node, "b")
    return [ctx.add("MatMul", [a, b], ctx.out(node))]


def _compare(onnx_op: str, negate: bool = False):
    def convert(ctx: Graph, node: SymNode) -> list[str]:
        a = ctx.inp(node, 0)
        result = ctx.add(onnx_op, [a, ctx.inp(node, 1)], f"{node.name}__bool")
        if negate:
            result = ctx.add("Not", [result], f"{node.name}__not")
        return [ctx.add("Cast", [result], ctx.out(node), to=ctx.elem_type(a))]

    convert.__doc__ = f"{'Not ' if negate else ''}{onnx_op} as 0/1 in the inputs' dtype."
    return convert


_COMPARISONS = {
    ("Equal", False): ("broadcast_equal", "_equal"),
    ("Equal", True): ("broadcast_not_equal", "_not_equal"),
    ("Greater", False): ("broadcast_greater", "_greater"),
    ("GreaterOrEqual", False): ("broadcast_greater_equal", "_greater_equal"),
    ("Less", False): ("broadcast_lesser", "_lesser"),
    ("LessOrEqual", False): ("broadcast_lesser_equal", "_lesser_equal"),
}
for (_op, _neg), _names in _COMPARISONS.items():
    register(*_names)(_compare(_op, _neg))


def _arg(onnx_op: str):
    def convert(ctx: Graph, node: SymNode) -> list[str]:
        x = ctx.inp(node, 0)
        keep = 1 if node.attrs.bool("keepdims") else 0
        if node.attrs.has("axis"):
            index = ctx.add(onnx_op, [x], f"{node.name}__index", axis=node.attrs.int("axis"), keepdims=keep)
        else:
            flat = ctx.add("Reshape", [x, ctx.ints([-1], f"{node.name}__flat_shape")], f"{node.name}__flat")
            index = ctx.add(onnx_op, [flat], f"{node.name}__index", axis=0, keepdims=1)
        return [ctx.add("Cast", [index], ctx.out(node), to=ctx.elem_type(x))]

    convert.__doc__ = f"{onnx_op} along `axis` (flattened without it), as MXNet returns it: float indices."
    return convert


register("argmax")(_arg("ArgMax"))
register("argmin")(_arg("ArgMin"))


@register("norm")
def norm(ctx: Graph, node: SymNode) -> list[str]:
    """L2 (ord=2) or L1 (ord=1) norm over `axis` (all axes give shape (1,))."""
    a = node.attrs
    x = ctx.inp(node, 0)
    order = a.int("ord", 2)
    if order not in (1, 2):
        raise UnsupportedError(f"{ctx.path}: node '{node.name}' (norm): ord {order}", path=ctx.path)
    op = "ReduceL2" if order == 2 else "ReduceL1"
    axes = list(a.ints("axis"))
    keep = 1 if a.bool("keepdims") else 0
    attrs = {"axes": axes} if axes else {}
    if axes or keep:
        return [ctx.add(op, [x], ctx.out(node), keepdims=keep, **attrs)]
    total = ctx.add(op, [x], f"{node.name}__all", keepdims=0)
    return [ctx.add("Reshape", [total, ctx.ints([1], f"{node.name}__one")], ctx.out(node))]


@register("hard_sigmoid")
def hard_sigmoid(ctx: Graph, node: SymNode) -> list[str]:
    """max(0, min(1, alpha * x + beta))."""
    return [
        ctx.add(
            "HardSigmoid",
            [ctx.inp(node, 0)],
            ctx.out(node),
            alpha=node.attrs.float("alpha", 0.2),
            beta=node.attrs.float("beta", 0.5),
        )
    ]


@register("round")
def round_(ctx: Graph, node: SymNode) -> list[str]:
    """Round half away from zero (ONNX Round rounds half to even): sign(x) * floor(|x| + 0.5)."""
    x = ctx.inp(node, 0)
    half = ctx.const(0.5, f"{node.name}__half", ctx.np_dtype(x))
    floor = ctx.add(
        "Floor",
        [ctx.add("Add", [ctx.add("Abs", [x], f"{node.name}__abs"), half], f"{node.name}__shifted")],
        f"{node.name}__floor",
    )
    return [ctx.add("Mul", [ctx.add("Sign", [x], f"{node.name}__sign"), floor], ctx.out(node))]
