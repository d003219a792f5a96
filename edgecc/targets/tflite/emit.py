"""`emit_tflite`: an ONNX partition (float or QDQ int8, static shapes) -> a self-describing TFLite flatbuffer.

Graph inputs consumed by conv-class ops are NHWC in the TFLite file and the host transposes at the partition
boundary; the "edgecc" metadata entry (JSON) records, for every input and output, the ONNX name, shape, dtype,
the permutation and the quantisation the host applies, so that `TfliteRunner` reproduces the ONNX partition's
inputs and outputs exactly.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgecc.errors import UnsupportedNode, UnsupportedOperator, UsageError
from edgecc.targets.tflite import layout
from edgecc.targets.tflite.context import Context, NotExpressible, Value

if TYPE_CHECKING:
    import onnx

    from edgecc.targets.tflite.schema import QuantParams

__all__ = ["IO_TYPES", "METADATA_NAME", "TfliteArtifact", "emit_tflite"]

IO_TYPES = ("float32", "int8", "uint8")
METADATA_NAME = "edgecc"
#: ops that need NCHW (conv-class): a 4-D graph input reaching one through layout-agnostic ops is stored NHWC
_SPATIAL = {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Resize", "Upsample"}
_AGNOSTIC = {
    "QuantizeLinear",
    "DequantizeLinear",
    "Relu",
    "Clip",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Max",
    "Min",
    "Sigmoid",
    "Tanh",
    "LeakyRelu",
    "PRelu",
    "HardSwish",
    "Pad",
    "Identity",
    "Concat",
}
#: ops that only move elements: quantising before them is exact
_LAYOUT_ONLY = {"Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"}


@dataclass
class TfliteArtifact:
    """A written TFLite model: its bytes, TFLite operators in execution order, and the conversion report."""

    data: bytes
    operators: list[str]
    report: dict[str, Any] = field(default_factory=dict)


def _input_perm(ctx: Context, name: str, rank: int) -> tuple[int, ...]:
    if rank != 4:
        return layout.identity(rank)
    seen, stack = set(), [name]
    while stack:
        tensor = stack.pop()
        for user in ctx.consumers.get(tensor, []):
            if user.op_type in _SPATIAL:
                return layout.NHWC
            if user.op_type in _AGNOSTIC and id(user) not in seen:
                seen.add(id(user))
                stack.extend(o for o in user.output if o)
    return layout.identity(rank)


def _setup_inputs(ctx: Context, io: list[dict[str, Any]], conversions: list[str]) -> None:
    """Graph inputs: TFLite input tensors (NHWC where conv-class ops read them), integer when the io type says so."""
    inits = set(ctx.inits)
    for graph_input in ctx.graph.input:
        name = graph_input.name
        if name in inits:
            continue
        shape = ctx.shape(name)
        onnx_dtype = ctx.dtypes.get(name, "float32")
        perm = _input_perm(ctx, name, len(shape))
        entry: dict[str, Any] = {"name": name, "shape": list(shape), "onnx_dtype": onnx_dtype, "perm": list(perm)}
        users = ctx.consumers.get(name, [])
        quant = None
        bound = name
        if onnx_dtype in ("int8", "uint8"):
            dq = _behind_layout_ops(ctx, name, "DequantizeLinear")
            if dq is None:
                raise NotExpressible(f"integer input '{name}' is not dequantised (directly or through Transpose/Reshape)")
            quant = ctx.quant_of(dq)
            tfl_dtype = "int8" if ctx.io_type == "int8" else onnx_dtype  # int8 io: uint8 re-expressed as int8 (exact)
        elif (
            ctx.io_type != "float32"
            and name not in ctx.graph_outputs
            and _behind_layout_ops(ctx, name, "QuantizeLinear") is not None
        ):
            # integer io: the input's QuantizeLinear, also behind layout-only ops (quantising first is exact), is the host's
            q = _behind_layout_ops(ctx, name, "QuantizeLinear")
            quant = ctx.quant_of(q)
            tfl_dtype = ctx.io_type
            if q in users:
                ctx.absorbed.add(id(q))
                bound = q.output[0]
        elif onnx_dtype != "float32":
            raise NotExpressible(f"{onnx_dtype} graph input '{name}' (the writer takes float32, int8 and uint8 inputs)")
        else:
            tfl_dtype = "float32"
        io_quant = quant.with_dtype(tfl_dtype) if quant is not None else None
        index = ctx.new_tensor(name, shape, perm, io_quant, tfl_dtype)
        ctx.builder.inputs.append(index)
        entry.update(tensor=index, dtype=tfl_dtype)
        if io_quant is not None:
            entry.update(scale=io_quant.scale[0], zero_point=io_quant.zero_point[0])
        internal = index
        if tfl_dtype != ctx.act_dtype and tfl_dtype != "float32":
            internal = ctx.new_tensor(f"{name}_{ctx.act_dtype}", shape, perm, quant)
            ctx.builder.operator("QUANTIZE", [index], [internal])
        ctx.values[bound] = Value(shape=tuple(shape), tensor=internal, perm=perm, quant=quant)
        if bound != name:
            ctx.values[name] = Value(shape=tuple(shape), tensor=internal, perm=perm, quant=quant)
        if not layout.is_identity(perm):
            conversions.append(f"input {name}: transpose {_layout_text(perm)} (host)")
        if io_quant is not None and onnx_dtype == "float32":
            conversions.append(
                f"input {name}: quantise float32 -> {tfl_dtype} "
                f"(scale {io_quant.scale[0]:.6g}, zero point {io_quant.zero_point[0]}) (host)"
            )
        io.append(entry)


def _behind_layout_ops(ctx: Context, name: str, op_type: str) -> onnx.NodeProto | None:
    """The `op_type` node reading `name` directly or through single-use layout-only ops (Transpose, Reshape, ...), if any."""
    while name not in ctx.graph_outputs:
        users = ctx.consumers.get(name, [])
        if op_type == "DequantizeLinear":  # an integer input may have other readers besides its DequantizeLinear
            found = [u for u in users if u.op_type == op_type]
            if found:
                return found[0]
        if len(users) != 1:
            return None
        user = users[0]
        if user.op_type == op_type:
            return user
        if user.op_type not in _LAYOUT_ONLY:
            return None
        name = user.output[0]
    return None


def _layout_text(perm: tuple[int, ...]) -> str:
    return "NCHW->NHWC" if tuple(perm) == layout.NHWC else f"perm {list(perm)}"


def _setup_outputs(ctx: Context, io: list[dict[str, Any]], conversions: list[str]) -> None:
    for name in ctx.graph_outputs:
        value = ctx.value(name)
        if value.is_const or value.col_perm is not None:
            raise NotExpressible(f"graph output '{name}' is a constant or a flattened NHWC tensor")
        onnx_dtype = ctx.dtypes.get(name, "float32")
        index = value.tensor
        quant = value.quant
        want = _output_dtype(ctx, onnx_dtype, quant)
        if quant is not None and want != quant.dtype:  # a zero-point shift by 128 (exact)
            out = ctx.new_tensor(f"{name}_{want}", value.shape, value.perm, quant.with_dtype(want), want)
            ctx.builder.operator("QUANTIZE", [index], [out])
            index, quant = out, quant.with_dtype(want)
        if index in ctx.builder.inputs or index in ctx.builder.outputs:
            raise NotExpressible(f"graph output '{name}' is also a graph input or another output")
        spec = ctx.builder.tensors[index]
        if spec.name != name and name not in {t.name for t in ctx.builder.tensors}:
            spec.name = name
        ctx.builder.outputs.append(index)
        entry: dict[str, Any] = {
            "name": name,
            "shape": list(value.shape),
            "onnx_dtype": onnx_dtype,
            "perm": list(value.perm),
            "tensor": index,
            "dtype": spec.dtype,
        }
        if quant is not None:
            entry.update(scale=quant.scale[0], zero_point=quant.zero_point[0], step=quant.scale[0])
            if onnx_dtype == "float32":
                conversions.append(
                    f"output {name}: dequantise {spec.dtype} -> float32 "
                    f"(scale {quant.scale[0]:.6g}, zero point {quant.zero_point[0]}) (host)"
                )
        elif name in ctx.steps:
            entry.update(step=ctx.steps[name][0])
        if not layout.is_identity(value.perm):
            conversions.append(f"output {name}: transpose {_layout_text(tuple(value.perm))} back (host)")
        io.append(entry)


def _output_dtype(ctx: Context, onnx_dtype: str, quant: QuantParams | None) -> str | None:
    """The TFLite type of an integer graph output: the io type where it is integer, else the ONNX output's own type."""
    if quant is None:
        return None
    if ctx.io_type in ("int8", "uint8"):
        return ctx.io_type
    return onnx_dtype if onnx_dtype in ("int8", "uint8") else quant.dtype


def _views(model: onnx.ModelProto) -> dict[int, Any]:
    """NodeViews in which DequantizeLinear(initializer) outputs count as constants (QDQ weights)."""
    import dataclasses

    from edgecc.targets.graph import analyse

    inits = {t.name for t in model.graph.initializer}
    qweights = frozenset(n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits)
    return {
        i: dataclasses.replace(v, constant_inputs=v.constant_inputs | (qweights & set(v.inputs)))
        for i, v in enumerate(analyse(model).views)
    }


def _float_nodes(ctx: Context, mapping: dict[str, list[int]]) -> list[str]:
    """Nodes of an int8 model that compute in float: their TFLite ops read or write float activations."""
    if not any(t.quant is not None for t in ctx.builder.tensors):
        return []
    names = list(ctx.float_ops)
    for label, ops in mapping.items():
        for index in ops:
            op = ctx.builder.operators[index]
            if ctx.builder.op_names[index] in ("QUANTIZE", "DEQUANTIZE"):
                continue
            tensors = [ctx.builder.tensors[i] for i in [*op.inputs, *op.outputs] if i >= 0]
            if any(t.dtype == "float32" and not t.buffer for t in tensors) and label not in names:
                names.append(label)
    return names


def _pin_batch(model: onnx.ModelProto) -> onnx.ModelProto:
    """A symbolic leading (batch) dimension of graph inputs/outputs becomes 1, as TensorFlow's converter writes it."""
    import copy

    symbolic = [
        vi
        for vi in [*model.graph.input, *model.graph.output]
        if vi.type.tensor_type.shape.dim and not vi.type.tensor_type.shape.dim[0].HasField("dim_value")
    ]
    if not symbolic:
        return model
    model = copy.deepcopy(model)
    for vi in [*model.graph.input, *model.graph.output]:
        dims = vi.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1
    del model.graph.value_info[:]
    return model


def emit_tflite(
    model: onnx.ModelProto,
    *,
    io_type: str = "float32",
    always_bias: bool = False,
    flat_fully_connected: bool = False,
    name: str = "model",
) -> TfliteArtifact:
    """Write `model` (shape-inferred, static shapes, float or QDQ int8) as a TFLite flatbuffer.

    `always_bias`: every Conv/FullyConnected gets a bias tensor; `flat_fully_connected`: FULLY_CONNECTED outputs are 2-D
    and a RESHAPE restores their rank (for readers without keep_num_dims, e.g. Arm NN 20.08).

    Raises UnsupportedOperator listing every node the writer cannot express (exit 4).
    """
    import onnx

    from edgecc.onnxutil import infer_shapes
    from edgecc.targets.tflite.ops import load

    if io_type not in IO_TYPES:
        raise UsageError(f"io_type must be one of {', '.join(IO_TYPES)}, not '{io_type}'")
    started = time.perf_counter()
    registry = load()
    model = infer_shapes(_pin_batch(model))
    ctx = Context(model, io_type=io_type, always_bias=always_bias, flat_fully_connected=flat_fully_connected)
    problems: list[UnsupportedNode] = []
    views = _views(model)
    for index, node in enumerate(model.graph.node):
        label = node.name or f"{node.op_type}_{index}"
        if node.domain not in ("", "ai.onnx") or node.op_type not in registry:
            problems.append(UnsupportedNode(label, node.op_type, "no TFLite operator for this ONNX op"))
            continue
        check = registry.get(node.op_type).check
        if check is not None:
            ok, why = check(views[index])
            if not ok:
                problems.append(UnsupportedNode(label, node.op_type, why))
    if problems:
        raise UnsupportedOperator(problems, where=f"TFLite writer ({name})")
    io_inputs: list[dict[str, Any]] = []
    io_outputs: list[dict[str, Any]] = []
    conversions: list[str] = []
    try:
        _setup_inputs(ctx, io_inputs, conversions)
    except NotExpressible as exc:
        raise UnsupportedOperator(
            [UnsupportedNode("<inputs>", "graph input", str(exc))], where=f"TFLite writer ({name})"
        ) from None
    mapping: dict[str, list[int]] = {}
    poisoned: set[str] = set()
    for node in model.graph.node:  # constants first: DQ(initializer) weights and biases, Constant
        if node.op_type == "Constant" or (node.op_type == "DequantizeLinear" and node.input[0] in ctx.inits):
            if node.op_type == "DequantizeLinear":
                registry.get("DequantizeLinear").convert(
                    ctx, node, {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
                )
            ctx.absorbed.add(id(node))
    for index, node in enumerate(model.graph.node):
        label = node.name or f"{node.op_type}_{index}"
        if id(node) in ctx.absorbed:
            mapping[label] = []
            continue
        if any(i in poisoned for i in node.input):
            poisoned.update(node.output)
            continue
        before = len(ctx.builder.operators)
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        try:
            registry.get(node.op_type).convert(ctx, node, attrs)
        except NotExpressible as exc:
            problems.append(UnsupportedNode(label, node.op_type, str(exc)))
            poisoned.update(node.output)
            continue
        mapping[label] = list(range(before, len(ctx.builder.operators)))
    if not problems:
        try:
            _setup_outputs(ctx, io_outputs, conversions)
        except NotExpressible as exc:
            problems.append(UnsupportedNode("<outputs>", "graph output", str(exc)))
    if problems:
        raise UnsupportedOperator(problems, where=f"TFLite writer ({name})")
    quantized = any(t.quant is not None for t in ctx.builder.tensors)
    metadata = {
        "format": "edgecc-tflite",
        "version": 1,
        "name": name,
        "io_type": io_type,
        "quantized": quantized,
        "inputs": io_inputs,
        "outputs": io_outputs,
    }
    ctx.builder.add_metadata(METADATA_NAME, json.dumps(metadata, sort_keys=True, separators=(",", ":")).encode())
    data = ctx.builder.to_bytes()
    operators = list(ctx.builder.op_names)
    report = {
        "operators": len(operators),
        "ops_by_type": dict(sorted(Counter(operators).items())),
        "internal_transposes": ctx.transposes,
        "float_nodes": _float_nodes(ctx, mapping),
        "activation_type": ctx.act_dtype,
        "node_map": mapping,
        "conversions": conversions,
        "io": {"inputs": io_inputs, "outputs": io_outputs},
        "io_type": io_type,
        "quantized": quantized,
        "bytes": len(data),
        "emit_seconds": round(time.perf_counter() - started, 4),
    }
    return TfliteArtifact(data=data, operators=operators, report=report)
