"""Reusable operator constraints: each returns `(ok, detail)`; the docstring is the rule users read."""

from __future__ import annotations

from collections.abc import Sequence

from edgecc.targets.api import Check, NodeView, constraint

__all__ = [
    "SHAPE_OPS",
    "axis_channel_or_last",
    "axis_last",
    "batch_one",
    "constant_weights",
    "conv_2d",
    "dilation_one",
    "QDQ_OPS",
    "float_or_quantized_tensors",
    "float_tensors",
    "gemm_no_transpose_a",
    "group_is_one_or_depthwise",
    "kernel_range",
    "max_channels",
    "max_rank",
    "mode_in",
    "no_ceil_mode",
    "pool_2d",
    "static_shapes",
    "stride_range",
    "symmetric_pads",
    "tensor_dtypes",
]

#: ops that only move or reshape data (no attribute constraints on most targets)
SHAPE_OPS = ("Reshape", "Flatten", "Transpose", "Concat", "Squeeze", "Unsqueeze", "Identity", "Constant")


def _fmt(shape: object) -> str:
    return "x".join("?" if not isinstance(d, int) else str(d) for d in shape) if shape is not None else "unknown"


def static_shapes(view: NodeView) -> tuple[bool, str]:
    """Every input and output shape is static (known integer dimensions)."""
    for name, shape in [*zip(view.inputs, view.input_shapes), *zip(view.outputs, view.output_shapes)]:
        if name and (shape is None or not all(isinstance(d, int) for d in shape)):
            return False, f"tensor '{name}' has dynamic shape {_fmt(shape)}"
    return True, ""


def tensor_dtypes(allowed: Sequence[str], rule: str, name: str) -> Check:
    """Activations (non-constant inputs and outputs) have one of the `allowed` dtypes (or an unknown one); `rule` is the text."""
    accepted = (None, *allowed)

    @constraint(rule)
    def check(view: NodeView) -> tuple[bool, str]:
        for tensor, dtype in [*zip(view.inputs, view.input_dtypes), *zip(view.outputs, view.output_dtypes)]:
            if tensor and tensor not in view.constant_inputs and dtype not in accepted:
                return False, f"tensor '{tensor}' is {dtype}"
        return True, ""

    check.__name__ = name
    return check


float_or_quantized_tensors = tensor_dtypes(
    ("float32", "float16", "int8", "uint8"),
    "Activations are float (the compiler converts them) or int8/uint8 (a model quantised already, with Q/DQ nodes).",
    "float_or_quantized_tensors",
)


#: the QuantizeLinear/DequantizeLinear nodes of an already-quantised (QDQ) model, for targets that run 8-bit QDQ
QDQ_OPS: tuple[str, ...] = ("QuantizeLinear", "DequantizeLinear")


float_tensors = tensor_dtypes(
    ("float32", "float16"), "Activations are float (the compiler converts them to the target's precision).", "float_tensors"
)


def batch_one(view: NodeView) -> tuple[bool, str]:
    """Batch size (first dimension of rank-4 activations) is 1."""
    for name, shape in zip(view.inputs, view.input_shapes):
        if name and name not in view.constant_inputs and shape and len(shape) == 4 and shape[0] != 1:
            return False, f"batch {shape[0]} on '{name}'"
    return True, ""


def max_rank(limit: int) -> Check:
    """Tensors have rank at most `limit`."""

    @constraint(f"Tensors have rank at most {limit}.")
    def check(view: NodeView) -> tuple[bool, str]:
        for name, shape in [*zip(view.inputs, view.input_shapes), *zip(view.outputs, view.output_shapes)]:
            if name and shape is not None and len(shape) > limit:
                return False, f"'{name}' has rank {len(shape)} > {limit}"
        return True, ""

    return check


def conv_2d(view: NodeView) -> tuple[bool, str]:
    """Convolutions and poolings are 2-D (rank-4 NCHW input)."""
    shape = view.input_shapes[0] if view.input_shapes else None
    if shape is None or len(shape) != 4:
        return False, f"input rank {len(shape) if shape is not None else '?'}, need 4"
    return True, ""


pool_2d = conv_2d


def _kernel(view: NodeView) -> list[int] | None:
    kernel = view.attr("kernel_shape")
    if kernel is None and view.op_type in ("Conv", "ConvTranspose") and len(view.input_shapes) > 1 and view.input_shapes[1]:
        kernel = list(view.input_shapes[1][2:])
    return list(kernel) if kernel is not None else None


def kernel_range(low: int, high: int) -> Check:
    """Kernel height and width lie in [low, high]."""

    @constraint(f"Kernel height and width are in [{low}, {high}].")
    def check(view: NodeView) -> tuple[bool, str]:
        kernel = _kernel(view)
        if kernel is None:
            return False, "kernel size unknown"
        if any(not isinstance(k, int) or k < low or k > high for k in kernel):
            return False, f"kernel {_fmt(kernel)}"
        return True, ""

    return check


def stride_range(low: int, high: int) -> Check:
    """Strides lie in [low, high]."""

    @constraint(f"Strides are in [{low}, {high}].")
    def check(view: NodeView) -> tuple[bool, str]:
        strides = list(view.attr("strides") or [1, 1])
        if any(s < low or s > high for s in strides):
            return False, f"stride {_fmt(strides)}"
        return True, ""

    return check


def dilation_one(view: NodeView) -> tuple[bool, str]:
    """Dilations are 1."""
    dilations = list(view.attr("dilations") or [])
    if any(d != 1 for d in dilations):
        return False, f"dilation {_fmt(dilations)}"
    return True, ""


def constant_weights(view: NodeView) -> tuple[bool, str]:
    """Weights and biases (inputs after the first) are constant."""
    for index in range(1, len(view.inputs)):
        if view.inputs[index] and not view.is_constant(index):
            return False, f"input '{view.inputs[index]}' is not constant"
    return True, ""


def no_ceil_mode(view: NodeView) -> tuple[bool, str]:
    """Pooling uses floor rounding (ceil_mode 0)."""
    if view.attr("ceil_mode", 0):
        return False, "ceil_mode 1"
    return True, ""


def symmetric_pads(view: NodeView) -> tuple[bool, str]:
    """Padding is symmetric (begin == end per axis) and auto_pad is NOTSET."""
    pads = list(view.attr("pads") or [])
    auto_pad = view.attr("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad not in ("NOTSET", "VALID"):
        return False, f"auto_pad {auto_pad}"
    half = len(pads) // 2
    if pads and pads[:half] != pads[half:]:
        return False, f"pads {pads}"
    return True, ""


def axis_last(view: NodeView) -> tuple[bool, str]:
    """The reduction axis is the last one (axis -1 or rank-1)."""
    shape = view.input_shapes[0] if view.input_shapes else None
    axis = view.attr("axis", -1)
    rank = len(shape) if shape is not None else None
    if axis == -1 or (rank is not None and axis == rank - 1):
        return True, ""
    return False, f"axis {axis} of rank {rank}"


def max_channels(limit: int) -> Check:
    """Input and output channels (dimension 1) are at most `limit`."""

    @constraint(f"Channels (dimension 1) are at most {limit}.")
    def check(view: NodeView) -> tuple[bool, str]:
        for shape in (*view.input_shapes[:1], *view.output_shapes[:1]):
            if shape is not None and len(shape) >= 2 and isinstance(shape[1], int) and shape[1] > limit:
                return False, f"{shape[1]} channels > {limit}"
        return True, ""

    return check


def group_is_one_or_depthwise(view: NodeView) -> tuple[bool, str]:
    """Convolution group is 1 (dense) or equals the input channels (depthwise)."""
    group = int(view.attr("group", 1))
    shape = view.input_shapes[0] if view.input_shapes else None
    if group == 1 or (shape is not None and len(shape) > 1 and shape[1] == group):
        return True, ""
    return False, f"group {group}"


def gemm_no_transpose_a(view: NodeView) -> tuple[bool, str]:
    """Gemm does not transpose its first input (transA 0)."""
    if view.attr("transA", 0):
        return False, "transA 1"
    return True, ""


def mode_in(attr: str, allowed: Sequence[str], default: str) -> Check:
    """A string attribute takes one of the allowed values."""

    @constraint(f"Attribute {attr} is one of {', '.join(allowed)}.")
    def check(view: NodeView) -> tuple[bool, str]:
        value = view.attr(attr, default)
        value = value.decode() if isinstance(value, bytes) else value
        if value not in allowed:
            return False, f"{attr} {value}"
        return True, ""

    return check


def axis_channel_or_last(view: NodeView) -> tuple[bool, str]:
    """The axis is the channel axis (1) or the last one."""
    shape = view.input_shapes[0] if view.input_shapes else None
    axis = view.attr("axis", -1)
    rank = len(shape) if shape is not None else None
    if axis in (-1, 1) or (rank is not None and axis in (rank - 1, 1 - rank)):
        return True, ""
    return False, f"axis {axis} of rank {rank}"
