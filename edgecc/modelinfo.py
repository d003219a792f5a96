"""What `edgecc inspect` reports about an ONNX model: io, opsets, op histogram, parameters, MACs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from math import prod
from typing import TYPE_CHECKING, Any

from edgecc.inputs import TensorInfo
from edgecc.registry import Registry

if TYPE_CHECKING:
    import onnx

__all__ = ["ModelInfo", "MAC_COUNTERS", "describe_onnx"]

Shape = tuple[int, ...]
ShapeOf = Callable[[str], "Shape | None"]

#: op type -> function(node, shape_of) giving the node's multiply-accumulates, None if shapes are unknown
MAC_COUNTERS: Registry[Callable[["onnx.NodeProto", ShapeOf], "int | None"]] = Registry("MAC counter")


@dataclass
class ModelInfo:
    """Summary of an ONNX model."""

    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    ir_version: int
    opsets: dict[str, int]
    producer: str
    nodes: int
    op_histogram: list[tuple[str, int]]
    parameters: int
    parameter_bytes: int
    macs: int
    macs_by_op: dict[str, int]
    macs_unknown_nodes: list[str]
    metadata: dict[str, str] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""

        def io(info: TensorInfo) -> dict[str, Any]:
            return {"name": info.name, "shape": list(info.shape) if info.shape is not None else None, "dtype": info.dtype}

        return {
            "inputs": [io(i) for i in self.inputs],
            "outputs": [io(o) for o in self.outputs],
            "ir_version": self.ir_version,
            "opsets": self.opsets,
            "producer": self.producer,
            "nodes": self.nodes,
            "op_histogram": dict(self.op_histogram),
            "parameters": self.parameters,
            "parameter_bytes": self.parameter_bytes,
            "macs": self.macs,
            "macs_by_op": self.macs_by_op,
            "macs_unknown_nodes": self.macs_unknown_nodes,
            "metadata": self.metadata,
            "source": self.source,
        }


def _conv_macs(node: "onnx.NodeProto", shape_of: ShapeOf, weight_index: int = 1, output_index: int = 0) -> int | None:
    weight = shape_of(node.input[weight_index]) if len(node.input) > weight_index else None
    output = shape_of(node.output[output_index])
    if weight is None or output is None:
        return None
    return prod(output) * prod(weight[1:])


@MAC_COUNTERS.register("Conv")
def conv_macs(node: "onnx.NodeProto", shape_of: ShapeOf) -> int | None:
    """Conv: output elements x (input channels / group) x kernel size."""
    return _conv_macs(node, shape_of)


@MAC_COUNTERS.register("ConvInteger")
def conv_integer_macs(node: "onnx.NodeProto", shape_of: ShapeOf) -> int | None:
    """ConvInteger: as Conv."""
    return _conv_macs(node, shape_of)


@MAC_COUNTERS.register("QLinearConv")
def qlinear_conv_macs(node: "onnx.NodeProto", shape_of: ShapeOf) -> int | None:
    """QLinearConv: as Conv, the weight is input 3."""
    return _conv_macs(node, shape_of, weight_index=3)


@MAC_COUNTERS.register("ConvTranspose")
def conv_transpose_macs(node: "onnx.NodeProto", shape_of: ShapeOf) -> int | None:
    """ConvTranspose: input elements x (output channels / group) x kernel size."""
    data = shape_of(node.input[0])
    weight = shape_of(node.input[1])
    if data is None or weight is None:
        return None
    return prod(data) * prod(weight[1:])


def _matmul_macs(node: "onnx.NodeProto", shape_of: ShapeOf) -> int | None:
    a = shape_of(node.input[0])
    out = shape_of(node.output[0])
    if a is None or out is None or not a:
        return None
    return prod(out) * a[-1]


@MAC_COUNTERS.register("MatMul")
def matmul_macs(node: "onnx.NodeProto", shape_of: ShapeOf) -> int | None:
    """MatMul: output elements x inner dimension."""
    return _matmul_macs(node, shape_of)


@MAC_COUNTERS.register("MatMulInteger")
def matmul_integer_macs(node: "onnx.NodeProto", shape_of: ShapeOf) -> int | None:
    """MatMulInteger: as MatMul."""
    return _matmul_macs(node, shape_of)


@MAC_COUNTERS.register("QLinearMatMul")
def qlinear_matmul_macs(node: "onnx.NodeProto", shape_of: ShapeOf) -> int | None:
    """QLinearMatMul: as MatMul."""
    return _matmul_macs(node, shape_of)


@MAC_COUNTERS.register("Gemm")
def gemm_macs(node: "onnx.NodeProto", shape_of: ShapeOf) -> int | None:
    """Gemm: M x N x K (transA respected)."""
    from onnx import helper

    a = shape_of(node.input[0])
    out = shape_of(node.output[0])
    if a is None or out is None or len(a) != 2:
        return None
    trans_a = next((helper.get_attribute_value(x) for x in node.attribute if x.name == "transA"), 0)
    inner = a[0] if trans_a else a[1]
    return prod(out) * inner


def _shape_table(model: "onnx.ModelProto") -> dict[str, Shape]:
    shapes: dict[str, Shape] = {}
    values = list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output)
    for vi in values:
        tensor_type = vi.type.tensor_type
        if tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in tensor_type.shape.dim):
            shapes[vi.name] = tuple(int(d.dim_value) for d in tensor_type.shape.dim)
    for init in model.graph.initializer:
        shapes[init.name] = tuple(int(d) for d in init.dims)
    return shapes


def _tensor_bytes(tensor: "onnx.TensorProto") -> int:
    import onnx

    count = prod(tensor.dims) if tensor.dims else 1
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    except KeyError:  # a data type onnx's dtype table does not know
        itemsize = 1
    if tensor.data_type in (onnx.TensorProto.INT4, onnx.TensorProto.UINT4):
        return (count + 1) // 2
    return count * itemsize


def describe_onnx(model: "onnx.ModelProto", *, source: Mapping[str, Any] | None = None) -> ModelInfo:
    """Summarise an ONNX model (shape inference runs first so MACs can be counted)."""
    from edgecc.onnxutil import graph_inputs, graph_outputs, infer_shapes

    inferred = infer_shapes(model)
    shapes = _shape_table(inferred)
    histogram = Counter(
        node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}" for node in inferred.graph.node
    )
    tensors = list(inferred.graph.initializer)
    tensors += [a.t for n in inferred.graph.node if n.op_type == "Constant" for a in n.attribute if a.HasField("t")]
    parameters = sum(prod(t.dims) if t.dims else 1 for t in tensors)
    parameter_bytes = sum(_tensor_bytes(t) for t in tensors)
    macs_by_op: Counter[str] = Counter()
    unknown: list[str] = []
    for node in inferred.graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type not in MAC_COUNTERS:
            continue
        macs = MAC_COUNTERS.get(node.op_type)(node, shapes.get)
        if macs is None:
            unknown.append(node.name or node.output[0])
        else:
            macs_by_op[node.op_type] += macs
    return ModelInfo(
        inputs=graph_inputs(inferred),
        outputs=graph_outputs(inferred),
        ir_version=int(inferred.ir_version),
        opsets={(o.domain or "ai.onnx"): int(o.version) for o in inferred.opset_import},
        producer=" ".join(x for x in (inferred.producer_name, inferred.producer_version) if x),
        nodes=len(inferred.graph.node),
        op_histogram=sorted(histogram.items(), key=lambda kv: (-kv[1], kv[0])),
        parameters=int(parameters),
        parameter_bytes=int(parameter_bytes),
        macs=int(sum(macs_by_op.values())),
        macs_by_op=dict(sorted(macs_by_op.items())),
        macs_unknown_nodes=unknown,
        metadata={p.key: p.value for p in inferred.metadata_props},
        source=dict(source or {}),
    )


def format_count(value: int) -> str:
    """1234567 -> '1.23M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{unit}"
    return str(value)


def format_bytes(value: int) -> str:
    """Bytes in KiB/MiB/GiB."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value} B"
