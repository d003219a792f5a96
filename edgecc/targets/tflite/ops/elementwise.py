"""Binary (Add/Sub/Mul/Div/Max/Min) and activation ops (Relu, Clip, Sigmoid, Tanh, LeakyRelu, PRelu, HardSwish, Softmax)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgecc.targets.tflite import layout
from edgecc.targets.tflite.context import Context, NotExpressible
from edgecc.targets.tflite.ops import converter
from edgecc.targets.tflite.schema import QuantParams

if TYPE_CHECKING:
    import onnx

    from edgecc.targets.api import NodeView

_BINARY = {
    "Add": ("ADD", "AddOptions", True),
    "Sub": ("SUB", "SubOptions", True),
    "Mul": ("MUL", "MulOptions", True),
    "Div": ("DIV", "DivOptions", True),
    "Max": ("MAXIMUM", "MaximumMinimumOptions", False),
    "Min": ("MINIMUM", "MaximumMinimumOptions", False),
}


def _binary_check(view: NodeView) -> tuple[bool, str]:
    if len(view.inputs) != 2:
        return False, f"{view.op_type} with {len(view.inputs)} inputs (TFLite takes 2)"
    if all(view.is_constant(i) for i in range(2)):
        return False, "both operands are constants (fold them first)"
    return True, ""


def layout_of(ctx: Context, names: list[str], rank: int) -> tuple[int, ...]:
    """The layout an elementwise op works in: that of its first full-rank tensor input."""
    for name in names:
        if name and not ctx.is_const(name):
            v = ctx.value(name)
            if len(v.shape) == rank and v.col_perm is None:
                return v.perm
    return layout.identity(rank)


def operand(ctx: Context, name: str, perm: tuple[int, ...], quantized: bool) -> int:
    """A binary-op operand in layout `perm` (constants and lower-rank tensors broadcast as numpy does)."""
    value = ctx.value(name)
    rank = len(perm)
    if value.is_const or len(value.shape) == rank:
        return ctx.tensor(name, perm, quantized=quantized, rank=rank)
    if layout.is_identity(perm):
        return ctx.tensor(name, quantized=quantized)
    raise NotExpressible(f"broadcasting the rank-{len(value.shape)} tensor '{name}' against a permuted rank-{rank} tensor")


@converter(
    *_BINARY,
    tflite=tuple(v[0] for v in _BINARY.values()),
    check=_binary_check,
    planned={k: v[0] for k, v in _BINARY.items()},
    float_only=("Div",),
)
def binary(ctx: Context, node: onnx.NodeProto, attrs: dict) -> None:
    """Element-wise binary op with numpy broadcasting, operands in the layout of the first tensor input."""
    op, options, fusable = _BINARY[node.op_type]
    out_shape = ctx.shape(node.output[0])
    if all(ctx.is_const(n) for n in node.input):
        raise NotExpressible("both operands are constants (fold them first)")
    plan = ctx.plan_output(node, fusable=fusable)
    quantized = plan.quant is not None
    if quantized and node.op_type == "Div":
        raise NotExpressible("int8 Div (TFLite's DIV has no int8 kernel)")
    if quantized and not ctx.quantized_inputs(list(node.input)):
        raise NotExpressible("int8 output from a float input")
    perm = layout_of(ctx, list(node.input), len(out_shape))
    a, b = (operand(ctx, n, perm, quantized) for n in node.input)
    out_quant = None
    if quantized and op in ("MAXIMUM", "MINIMUM"):
        # TFLite's int8 MAXIMUM/MINIMUM compare raw values: inputs and output share one quantisation
        a, b = (_requantized(ctx, t, plan.quant) for t in (a, b))
        out_quant = plan.quant
    fields = {} if options == "MaximumMinimumOptions" else {}
    ctx.emit(
        op,
        [a, b],
        plan,
        out_shape,
        perm,
        options if options != "MaximumMinimumOptions" else None,
        out_quant=out_quant,
        version=2 if quantized else 1,
        **fields,
    )


def _requantized(ctx: Context, tensor: int, quant: QuantParams) -> int:
    """`tensor` re-quantised to `quant` (QUANTIZE int8 -> int8) unless it already has it."""
    spec = ctx.builder.tensors[tensor]
    if spec.quant is not None and spec.quant.same_as(quant):
        return tensor
    if spec.buffer:  # a constant: re-quantise its values
        import numpy as np

        raw = np.frombuffer(ctx.builder.buffers[spec.buffer], dtype=spec.dtype).reshape(spec.shape)
        real = (raw.astype(np.float64) - spec.quant.zero_point[0]) * spec.quant.scale[0]
        info = np.iinfo(quant.dtype)
        data = np.clip(np.round(real / quant.scale[0]) + quant.zero_point[0], info.min, info.max).astype(quant.dtype)
        return ctx.const_tensor(f"{spec.name}_requantized", data, quant)
    out = ctx.builder.tensor(f"{spec.name}_requantized", spec.shape, quant.dtype, quant=quant)
    ctx.builder.operator("QUANTIZE", [tensor], [out])
    return out


#: the operator version TensorFlow's converter writes for int8 inputs, where it is not 2 (tflite/tools/versioning/op_version.cc;
#: the interpreter refuses versions it has no kernel registration for: HARD_SWISH exists in version 1 only)
_INT8_VERSION = {"HARD_SWISH": 1, "LEAKY_RELU": 1}


def unary(
    ctx: Context,
    node: onnx.NodeProto,
    op: str,
    options: str | None = None,
    *,
    out_quant: QuantParams | None = None,
    extra_inputs: list[int] | None = None,
    **fields,
) -> None:
    """A one-input op in the layout its input already has."""
    plan = ctx.plan_output(node)
    quantized = plan.quant is not None
    if quantized and not ctx.quantized_inputs([node.input[0]]):
        raise NotExpressible("int8 output from a float input")
    value = ctx.value(node.input[0])
    if value.is_const:
        raise NotExpressible("constant input (fold it first)")
    perm = value.perm
    x = ctx.tensor(node.input[0], perm, quantized=quantized)
    ctx.emit(
        op,
        [x, *(extra_inputs or [])],
        plan,
        ctx.shape(node.output[0]),
        perm,
        options,
        out_quant=out_quant if quantized else None,
        version=_INT8_VERSION.get(op, 2) if quantized else 1,
        **fields,
    )


def _clip_check(view: NodeView) -> tuple[bool, str]:
    for i in (1, 2):
        if i < len(view.inputs) and view.inputs[i] and not view.is_constant(i):
            return False, "Clip bounds must be constants"
    return True, ""


@converter("Relu", tflite=("RELU",))
def relu(ctx: Context, node: onnx.NodeProto, attrs: dict) -> None:
    """Relu -> RELU (fused into the producer where it can be)."""
    unary(ctx, node, "RELU")


#: planned as RELU6: the bounds are inputs the planner does not see; the writer picks RELU/RELU6/RELU_N1_TO_1/RELU_0_TO_1
#: or MINIMUM/MAXIMUM, and the vendor compilers report any they leave on the CPU
@converter(
    "Clip", tflite=("RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "RELU", "MINIMUM", "MAXIMUM"), check=_clip_check, planned="RELU6"
)
def clip(ctx: Context, node: onnx.NodeProto, attrs: dict) -> None:
    """Clip 0..6 -> RELU6, -1..1 -> RELU_N1_TO_1, 0..1 -> RELU_0_TO_1, 0..inf -> RELU; other bounds -> MAXIMUM/MINIMUM (float)."""
    import numpy as np

    lo, hi = ctx.clip_bounds(node)
    named = {(0.0, 6.0): "RELU6", (-1.0, 1.0): "RELU_N1_TO_1", (0.0, 1.0): "RELU_0_TO_1", (0.0, float("inf")): "RELU"}
    if (lo, hi) in named:
        unary(ctx, node, named[(lo, hi)])
        return
    plan = ctx.plan_output(node)
    if plan.quant is not None:
        raise NotExpressible(f"int8 Clip({lo}, {hi}) (TFLite has RELU, RELU6, RELU_N1_TO_1 and RELU_0_TO_1)")
    value = ctx.value(node.input[0])
    x = ctx.tensor(node.input[0], value.perm, quantized=False)
    out_shape = ctx.shape(node.output[0])
    name = node.name or node.output[0]
    if hi != float("inf"):
        bound = ctx.const_tensor(f"{name}_max", np.asarray([hi], np.float32))
        if lo != float("-inf"):
            mid = ctx.new_tensor(f"{name}_min", out_shape, value.perm, None)
            ctx.builder.operator("MINIMUM", [x, bound], [mid])
            x = mid
        else:
            ctx.emit("MINIMUM", [x, bound], plan, out_shape, value.perm)
            return
    bound = ctx.const_tensor(f"{name}_min_bound", np.asarray([lo], np.float32))
    ctx.emit("MAXIMUM", [x, bound], plan, out_shape, value.perm)


@converter("Sigmoid", tflite=("LOGISTIC",))
def sigmoid(ctx: Context, node: onnx.NodeProto, attrs: dict) -> None:
    """Sigmoid -> LOGISTIC (int8 output 1/256, -128 as TFLite requires; re-quantised when the graph chose otherwise)."""
    unary(ctx, node, "LOGISTIC", out_quant=QuantParams((1 / 256,), (-128,)))


@converter("Tanh", tflite=("TANH",))
def tanh(ctx: Context, node: onnx.NodeProto, attrs: dict) -> None:
    """Tanh -> TANH (int8 output 1/128, 0 as TFLite requires)."""
    unary(ctx, node, "TANH", out_quant=QuantParams((1 / 128,), (0,)))


@converter("HardSwish", tflite=("HARD_SWISH",))
def hard_swish(ctx: Context, node: onnx.NodeProto, attrs: dict) -> None:
    """HardSwish -> HARD_SWISH."""
    unary(ctx, node, "HARD_SWISH")


@converter("LeakyRelu", tflite=("LEAKY_RELU",))
def leaky_relu(ctx: Context, node: onnx.NodeProto, attrs: dict) -> None:
    """LeakyRelu -> LEAKY_RELU(alpha)."""
    unary(ctx, node, "LEAKY_RELU", "LeakyReluOptions", Alpha=float(attrs.get("alpha", 0.01)))


def _prelu_check(view: NodeView) -> tuple[bool, str]:
    if len(view.inputs) > 1 and not view.is_constant(1):
        return False, "PRelu slope must be a constant"
    return True, ""


@converter("PRelu", tflite=("PRELU",), check=_prelu_check)
def prelu(ctx: Context, node: onnx.NodeProto, attrs: dict) -> None:
    """PRelu with a constant slope -> PRELU (slope broadcast to the input's layout)."""
    plan = ctx.plan_output(node)
    quantized = plan.quant is not None
    value = ctx.value(node.input[0])
    if not ctx.is_const(node.input[1]):
        raise NotExpressible("PRelu slope must be a constant")
    rank = len(value.shape)
    if quantized and ctx.value(node.input[1]).qconst is None:
        # a float slope (onnxruntime's QDQ quantiser leaves PRelu slopes float): compute in float as the graph says;
        # an int8 PRELU would round the slope and miss onnxruntime by a step (give the slope as DQ(int8) for int8)
        x = ctx.tensor(node.input[0], value.perm, quantized=False)
        slope = ctx.tensor(node.input[1], value.perm, quantized=False, rank=rank)
        shape = ctx.shape(node.output[0])
        mid = ctx.new_tensor(f"{plan.name}_float", shape, value.perm, None)
        ctx.builder.operator("PRELU", [x, slope], [mid])
        out = ctx.new_tensor(plan.name, shape, value.perm, plan.quant)
        ctx.builder.operator("QUANTIZE", [mid], [out])
        for absorbed in plan.absorbed:
            ctx.absorbed.add(id(absorbed))
        ctx.bind(plan.name, out, value.perm, plan.quant)
        ctx.float_ops.append(node.name or node.output[0])
        return
    x = ctx.tensor(node.input[0], value.perm, quantized=quantized)
    slope = ctx.tensor(node.input[1], value.perm, quantized=quantized, rank=rank)
    ctx.emit("PRELU", [x, slope], plan, ctx.shape(node.output[0]), value.perm)


def _softmax_check(view: NodeView) -> tuple[bool, str]:
    shape = view.input_shapes[0] if view.input_shapes else None
    axis = int(view.attr("axis", -1))
    if shape is not None and axis % len(shape) != len(shape) - 1 and len(shape) != 4:
        return False, f"Softmax over axis {axis} of a rank-{len(shape)} tensor (TFLite normalises the last axis)"
    return True, ""


@converter("Softmax", tflite=("SOFTMAX",), check=_softmax_check)
def softmax(ctx: Context, node: onnx.NodeProto, attrs: dict) -> None:
    """Softmax over the axis that is last in TFLite layout (channels of NHWC tensors) -> SOFTMAX (int8 out 1/256, -128)."""
    value = ctx.value(node.input[0])
    rank = len(value.shape)
    axis = int(attrs.get("axis", -1)) % rank
    perm = value.perm
    if layout.tfl_axis(axis, perm) != rank - 1:
        if axis != rank - 1:
            raise NotExpressible(f"Softmax over axis {axis} that is not last in TFLite layout")
        perm = layout.identity(rank)
    plan = ctx.plan_output(node)
    quantized = plan.quant is not None
    x = ctx.tensor(node.input[0], perm, quantized=quantized)
    ctx.emit(
        "SOFTMAX",
        [x],
        plan,
        ctx.shape(node.output[0]),
        perm,
        "SoftmaxOptions",
        out_quant=QuantParams((1 / 256,), (-128,)) if quantized else None,
        Beta=1.0,
    )
