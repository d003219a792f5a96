"""Conv -> CONV_2D / DEPTHWISE_CONV_2D, ConvTranspose -> TRANSPOSE_CONV, Gemm/MatMul -> FULLY_CONNECTED (float and int8)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgecc.targets.tflite import layout
from edgecc.targets.tflite.context import Context, NotExpressible
from edgecc.targets.tflite.ops import PlannedOp, converter
from edgecc.targets.tflite.ops.common import pad_tensor, rank_is, spatial_padding, static_input
from edgecc.targets.tflite.quant import QConst, bias_int32, weight_int8, weight_uint8
from edgecc.targets.tflite.schema import QuantParams

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from edgecc.targets.api import NodeView


def _conv_check(view: NodeView) -> tuple[bool, str]:
    ok, why = rank_is(view, 4)
    if not ok:
        return ok, why
    ok, why = static_input(view, 1, "the weight")
    if not ok:
        return ok, why
    group = int(view.attr("group", 1))
    shape = view.input_shapes[0]
    weight = view.input_shapes[1] if len(view.input_shapes) > 1 else None
    grouped = (shape is not None and isinstance(shape[1], int) and group != shape[1]) or (weight is not None and weight[1] != 1)
    if group != 1 and grouped:
        return False, f"grouped convolution (group={group}): only group 1 or depthwise (group == channels)"
    return True, ""


def _weights(ctx: Context, name: str, quantized: bool, axis_hint: int = 0) -> tuple[np.ndarray, QuantParams | None]:
    """(weights in ONNX layout, int8 params or None) of constant `name`."""
    value = ctx.value(name)
    if not value.is_const:
        raise NotExpressible(f"weight '{name}' is not a constant")
    if not quantized:
        return ctx.array(name).astype("float32"), None
    if value.qconst is None:
        raise NotExpressible(
            f"float weight '{name}' in an int8 operator (quantise weights with DequantizeLinear(int8 initializer))"
        )
    result = weight_uint8(value.qconst) if ctx.act_dtype == "uint8" else weight_int8(value.qconst)
    if isinstance(result, str):
        raise NotExpressible(result)
    return result


def _bias(
    ctx: Context,
    node: onnx.NodeProto,
    index: int,
    channels: int,
    quantized: bool,
    in_quant: QuantParams | None,
    w_quant: QuantParams | None,
    name: str,
    extra: np.ndarray | None = None,
    required: bool = False,
) -> int | None:
    """The bias tensor (int32 in int8 mode, float otherwise), a zero bias when required / always_bias, or None."""
    import numpy as np

    source = node.input[index] if len(node.input) > index and node.input[index] else None
    if source is None and extra is None and not ctx.always_bias and not required:
        return None
    if quantized:
        bias = ctx.value(source).qconst or ctx.array(source) if source else None
        if extra is not None:
            bias = extra
        data, params = bias_int32(bias, in_quant.scale[0], w_quant.scale, channels)
        return ctx.const_tensor(f"{name}_bias", data, params)
    data = ctx.array(source).astype(np.float32).reshape(channels) if source else np.zeros(channels, np.float32)
    if extra is not None:
        data = np.asarray(extra.real() if isinstance(extra, QConst) else extra, dtype=np.float32).reshape(channels)
    return ctx.const_tensor(f"{name}_bias", data)


def _conv_op(view: NodeView) -> str:
    group = int(view.attr("group", 1))
    shape = view.input_shapes[0] if view.input_shapes else None
    channels = shape[1] if shape is not None and len(shape) > 1 and isinstance(shape[1], int) else None
    return "DEPTHWISE_CONV_2D" if group > 1 and group == channels else "CONV_2D"


@converter(
    "Conv",
    tflite=("CONV_2D", "DEPTHWISE_CONV_2D", "PAD"),
    check=_conv_check,
    planned=PlannedOp(("CONV_2D", "DEPTHWISE_CONV_2D"), _conv_op),
)
def conv(ctx: Context, node: onnx.NodeProto, attrs: dict) -> None:
    """Conv (2-D, group 1 or depthwise) with fused Relu/Relu6/ReluN1To1; explicit pads TFLite cannot express -> PAD."""
    import numpy as np

    x_shape = ctx.shape(node.input[0])
    if len(x_shape) != 4:
        raise NotExpressible(f"{len(x_shape) - 2}-D convolution (the writer handles 2-D)")
    plan = ctx.plan_output(node, fusable=True)
    quantized = plan.quant is not None
    if quantized and not ctx.quantized_inputs([node.input[0]]):
        raise NotExpressible("int8 output from a float input")
    w, wq = _weights(ctx, node.input[1], quantized)
    out_c, in_per_group, kh, kw = w.shape
    group = int(attrs.get("group", 1))
    channels = x_shape[1]
    strides = list(attrs.get("strides", [1, 1]))
    dilations = list(attrs.get("dilations", [1, 1]))
    padding, explicit = spatial_padding(
        x_shape[2:],
        [kh, kw],
        strides,
        dilations,
        list(attrs.get("pads", [0, 0, 0, 0])),
        attrs.get("auto_pad", b"NOTSET").decode()
        if isinstance(attrs.get("auto_pad"), bytes)
        else attrs.get("auto_pad", "NOTSET"),
    )
    x = ctx.tensor(node.input[0], layout.NHWC, quantized=quantized)
    in_quant = ctx.builder.tensors[x].quant
    if explicit is not None:
        x, _ = pad_tensor(ctx, x, node.input[0], x_shape, layout.NHWC, explicit)
    out_shape = ctx.shape(node.output[0])
    name = node.name or node.output[0]
    if group == 1:
        filt = np.ascontiguousarray(w.transpose(0, 2, 3, 1))
        w_params = QuantParams(wq.scale, wq.zero_point, 0, wq.dtype) if wq else None
        w_t = ctx.const_tensor(f"{name}_weights", filt, w_params)
        b_t = _bias(ctx, node, 2, out_c, quantized, in_quant, wq, name, required=True)
        inputs = [x, w_t, b_t if b_t is not None else -1]
        ctx.emit(
            "CONV_2D",
            inputs,
            plan,
            out_shape,
            layout.NHWC,
            "Conv2DOptions",
            Padding=_PAD[padding],
            StrideH=strides[0],
            StrideW=strides[1],
            DilationHFactor=dilations[0],
            DilationWFactor=dilations[1],
            version=3 if quantized else 1,
        )
        return
    if group != channels or in_per_group != 1:
        raise NotExpressible(f"grouped convolution (group={group}, {channels} channels): only group 1 or depthwise")
    filt = np.ascontiguousarray(w.reshape(out_c, kh, kw).transpose(1, 2, 0)[None])
    w_params = QuantParams(wq.scale, wq.zero_point, 3 if wq.per_channel else 0, wq.dtype) if wq else None
    w_t = ctx.const_tensor(f"{name}_weights", filt, w_params)
    b_t = _bias(ctx, node, 2, out_c, quantized, in_quant, wq, name, required=True)
    ctx.emit(
        "DEPTHWISE_CONV_2D",
        [x, w_t, b_t if b_t is not None else -1],
        plan,
        out_shape,
        layout.NHWC,
        "DepthwiseConv2DOptions",
        Padding=_PAD[padding],
        StrideH=strides[0],
        StrideW=strides[1],
        DepthMultiplier=out_c // channels,
        DilationHFactor=dilations[0],
        DilationWFactor=dilations[1],
        version=3 if quantized else 1,
    )


_PAD = {"SAME": 0, "VALID": 1}


def _convtranspose_check(view: NodeView) -> tuple[bool, str]:
    ok, why = rank_is(view, 4)
    if not ok:
        return ok, why
    if int(view.attr("group", 1)) != 1:
        return False, "grouped ConvTranspose"
    if any(d != 1 for d in view.attr("dilations", [1, 1])):
        return False, "dilated ConvTranspose"
    return static_input(view, 1, "the weight")


@converter("ConvTranspose", tflite=("TRANSPOSE_CONV",), check=_convtranspose_check)
def conv_transpose(ctx: Context, node: onnx.NodeProto, attrs: dict) -> None:
    """ConvTranspose (2-D, group 1) -> TRANSPOSE_CONV with SAME/VALID padding (others are not expressible)."""
    import numpy as np

    x_shape = ctx.shape(node.input[0])
    out_shape = ctx.shape(node.output[0])
    if len(x_shape) != 4 or int(attrs.get("group", 1)) != 1:
        raise NotExpressible("only 2-D ConvTranspose with group 1")
    plan = ctx.plan_output(node)
    quantized = plan.quant is not None
    w, wq = _weights(ctx, node.input[1], quantized)
    in_c, out_c, kh, kw = w.shape
    strides = list(attrs.get("strides", [1, 1]))
    # TFLite's TRANSPOSE_CONV output size is given; the padding mode decides where the kernel sits
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    padding = None
    for mode in ("SAME", "VALID"):
        ok = True
        for i, (size, k, s) in enumerate(zip(out_shape[2:], (kh, kw), strides)):
            in_size = x_shape[2 + i]
            if mode == "VALID":
                ok = ok and pads[i] == 0 and pads[i + 2] == 0 and size == (in_size - 1) * s + k
            else:
                total = max((in_size - 1) * s + k - size, 0)
                ok = ok and size == in_size * s and pads[i] == total // 2 and pads[i + 2] == total - total // 2
        if ok:
            padding = mode
            break
    if padding is None or any(attrs.get("output_padding", [0, 0])) and padding == "VALID":
        raise NotExpressible(f"ConvTranspose pads {pads} / output size {out_shape[2:]} match neither SAME nor VALID")
    x = ctx.tensor(node.input[0], layout.NHWC, quantized=quantized)
    in_quant = ctx.builder.tensors[x].quant
    name = node.name or node.output[0]
    filt = np.ascontiguousarray(w.transpose(1, 2, 3, 0))  # (in, out, kh, kw) -> (out, kh, kw, in)
    w_params = None
    if wq is not None:
        if wq.per_channel and wq.axis != 1:
            raise NotExpressible("ConvTranspose weights quantised along an axis other than the output channels")
        w_params = QuantParams(wq.scale, wq.zero_point, 0, wq.dtype)
    w_t = ctx.const_tensor(f"{name}_weights", filt, w_params)
    shape_t = ctx.const_tensor(f"{name}_output_shape", np.asarray(layout.tfl_shape(out_shape, layout.NHWC), dtype=np.int32))
    b_t = _bias(ctx, node, 2, out_c, quantized, in_quant, wq, name)
    inputs = [shape_t, w_t, x] + ([b_t] if b_t is not None else [])
    ctx.emit(
        "TRANSPOSE_CONV",
        inputs,
        plan,
        out_shape,
        layout.NHWC,
        "TransposeConvOptions",
        Padding=_PAD[padding],
        StrideH=strides[0],
        StrideW=strides[1],
        version=3 if b_t is not None else 1,
    )


def _gemm_check(view: NodeView) -> tuple[bool, str]:
    if view.op_type == "Gemm":
        if int(view.attr("transA", 0)):
            return False, "Gemm with transA=1"
        if float(view.attr("alpha", 1.0)) != 1.0 or float(view.attr("beta", 1.0)) != 1.0:
            return False, "Gemm with alpha/beta other than 1"
    shape = view.input_shapes[1] if len(view.input_shapes) > 1 else None
    if shape is not None and len(shape) != 2:
        return False, f"MatMul with a rank-{len(shape)} right operand (FullyConnected needs 2-D constant weights)"
    return static_input(view, 1, "the weight (right operand)")


def _bias_consumer(ctx: Context, node: onnx.NodeProto, out_features: int) -> onnx.NodeProto | None:
    """An Add of a constant [N] vector right after MatMul (the bias of a FullyConnected)."""
    nxt = ctx.single_consumer(node.output[0])
    if nxt is None or nxt.op_type != "Add":
        return None
    other = nxt.input[1] if nxt.input[0] == node.output[0] else nxt.input[0]
    if not ctx.is_const(other):
        return None
    shape = ctx.value(other).shape
    return nxt if int(np.prod(shape)) == out_features and (len(shape) <= 1 or all(d == 1 for d in shape[:-1])) else None


import numpy as np  # noqa: E402 -- used by _bias_consumer at conversion time only; numpy is loaded with the op modules


def _matmul_op(view: NodeView) -> str:
    return "FULLY_CONNECTED" if view.is_constant(1) else "BATCH_MATMUL"


#: a dynamic MatMul plans as BATCH_MATMUL, which the writer does not write (_gemm_check refuses it)
@converter(
    "Gemm",
    "MatMul",
    tflite=("FULLY_CONNECTED",),
    check=_gemm_check,
    planned={"Gemm": "FULLY_CONNECTED", "MatMul": PlannedOp(("FULLY_CONNECTED", "BATCH_MATMUL"), _matmul_op)},
)
def fully_connected(ctx: Context, node: onnx.NodeProto, attrs: dict) -> None:
    """Gemm / MatMul with constant 2-D weights (+ a following bias Add) -> FULLY_CONNECTED with fused activation."""
    if int(attrs.get("transA", 0)) or float(attrs.get("alpha", 1.0)) != 1.0 or float(attrs.get("beta", 1.0)) != 1.0:
        raise NotExpressible("Gemm with transA=1 or alpha/beta other than 1")
    x_name = node.input[0]
    x_value = ctx.value(x_name)
    bias_node = None
    w_value = ctx.value(node.input[1])
    if not w_value.is_const or len(w_value.shape) != 2:
        raise NotExpressible("the weight (right operand) must be a constant 2-D tensor")
    transpose_b = node.op_type == "Gemm" and int(attrs.get("transB", 0))
    out_features = w_value.shape[0] if transpose_b else w_value.shape[1]
    if node.op_type == "MatMul":
        bias_node = _bias_consumer(ctx, node, out_features)
    plan = ctx.plan_output(bias_node or node, fusable=True)
    if bias_node is not None:
        plan.absorbed.append(bias_node)
    quantized = plan.quant is not None
    w, wq = _weights(ctx, node.input[1], quantized)
    if not transpose_b:
        w = w.T
        if wq is not None and wq.per_channel:
            wq = QuantParams(wq.scale, wq.zero_point, 1 - wq.axis, wq.dtype)
    if wq is not None and wq.per_channel and wq.axis != 0:
        raise NotExpressible("weights quantised along the input features")
    if x_value.col_perm is not None:
        w = w[:, x_value.col_perm]
        x = x_value.tensor
        if quantized and x_value.quant is None:
            raise NotExpressible("float input to an int8 FullyConnected")
        if not quantized and x_value.quant is not None:
            raise NotExpressible("int8 flattened input to a float FullyConnected")
    else:
        x = ctx.tensor(x_name, quantized=quantized)
    in_quant = ctx.builder.tensors[x].quant
    name = node.name or node.output[0]
    w_params = QuantParams(wq.scale, wq.zero_point, 0, wq.dtype) if wq else None
    w_t = ctx.const_tensor(f"{name}_weights", np.ascontiguousarray(w), w_params)
    extra = None
    if bias_node is not None:
        other = bias_node.input[1] if bias_node.input[0] == node.output[0] else bias_node.input[0]
        extra = ctx.value(other).qconst or ctx.array(other)
        extra = extra if isinstance(extra, QConst) else np.asarray(extra).reshape(out_features)
        if isinstance(extra, QConst):
            extra = QConst(extra.data.reshape(out_features), extra.quant)
    b_t = _bias(ctx, node, 2, out_features, quantized, in_quant, wq, name, extra)
    out_shape = (
        ctx.shape(plan.absorbed[-1].output[0] if plan.absorbed else node.output[0])
        if plan.name not in ctx.shapes
        else ctx.shapes[plan.name]
    )
    import dataclasses

    from edgecc.targets.tflite.context import OutputPlan

    keep = len(out_shape) > 2
    flat = keep and ctx.flat_fully_connected
    fc_plan = dataclasses.replace(plan, name=f"{plan.name}_2d", absorbed=[]) if flat else plan
    fc_shape = [int(np.prod(out_shape[:-1])), out_shape[-1]] if flat else out_shape
    ctx.emit(
        "FULLY_CONNECTED",
        [x, w_t, b_t if b_t is not None else -1],
        fc_plan,
        fc_shape,
        layout.identity(len(fc_shape)),
        "FullyConnectedOptions",
        KeepNumDims=keep and not flat,
        version=5 if quantized and wq.per_channel else (4 if quantized else 1),
    )
    if flat:  # the rank back with a RESHAPE (same quantisation), under the ONNX output's name
        flat_out = ctx.values[fc_plan.name]
        shape_t = ctx.const_tensor(f"{name}_shape", np.asarray(out_shape, dtype=np.int32))
        reshape_plan = OutputPlan(name=plan.name, quant=plan.quant, absorbed=list(plan.absorbed))
        ctx.emit(
            "RESHAPE",
            [flat_out.tensor, shape_t],
            reshape_plan,
            out_shape,
            layout.identity(len(out_shape)),
            "ReshapeOptions",
            out_quant=ctx.builder.tensors[flat_out.tensor].quant,
            NewShape=list(out_shape),
        )
