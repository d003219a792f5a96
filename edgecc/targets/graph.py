"""The model as the partitioner sees it: nodes in execution order, tensors with sizes, per-node views and MACs."""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from typing import TYPE_CHECKING, Any

from edgecc.targets.api import NodeView

if TYPE_CHECKING:
    import onnx

__all__ = ["ModelGraph", "analyse"]


@dataclass
class ModelGraph:
    """Node views in execution order plus what the cost model needs (elements, MACs, bytes)."""

    views: list[NodeView]
    macs: list[int]
    node_bytes: list[int]  # float32 bytes each node reads and writes (activations and weights)
    elements: dict[str, int]  # activation tensor -> element count (1 when unknown)
    graph_inputs: list[str]
    graph_outputs: list[str]
    dtypes: dict[str, str] = field(default_factory=dict)
    shapes: dict[str, Any] = field(default_factory=dict)


def _shape(vi: onnx.ValueInfoProto) -> tuple[Any, ...] | None:
    tensor_type = vi.type.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor_type.shape.dim)


def _dequantized(graph: onnx.GraphProto) -> dict[str, dict[str, Any]]:
    """Tensor -> how the DequantizeLinear producing it quantises it (scale/zero point from initializers)."""
    from onnx import numpy_helper

    initializers = {i.name: i for i in graph.initializer}
    found: dict[str, dict[str, Any]] = {}
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or len(node.input) < 2 or node.input[1] not in initializers:
            continue
        scale = numpy_helper.to_array(initializers[node.input[1]])
        zero = initializers.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        zeros = [int(z) for z in numpy_helper.to_array(zero).ravel()] if zero is not None else [0]
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        found[node.output[0]] = {"per_channel": scale.size > 1, "axis": axis, "zero_points": zeros}
    return found


def analyse(model: onnx.ModelProto) -> ModelGraph:
    """Views of every node of a shape-inferred model (its graph must be topologically sorted)."""
    import onnx

    from edgecc.modelinfo import MAC_COUNTERS

    graph = model.graph
    shapes: dict[str, Any] = {}
    dtypes: dict[str, str] = {}
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        shapes[vi.name] = _shape(vi)
        elem = vi.type.tensor_type.elem_type
        if elem:
            dtypes[vi.name] = onnx.helper.tensor_dtype_to_np_dtype(elem).name if elem != onnx.TensorProto.STRING else "object"
    constants = set()
    for init in graph.initializer:
        constants.add(init.name)
        shapes[init.name] = tuple(int(d) for d in init.dims)
        dtypes[init.name] = onnx.helper.tensor_dtype_to_np_dtype(init.data_type).name
    for node in graph.node:  # Constant outputs count as constants for "weights are constant" checks
        if node.op_type == "Constant":
            constants.update(o for o in node.output if o)
        elif node.op_type in ("DequantizeLinear", "QuantizeLinear") and all(i in constants for i in node.input if i):
            constants.update(o for o in node.output if o)  # quantised weights of a QDQ model (DQ of an initializer)
    quant = _dequantized(graph)
    views: list[NodeView] = []
    macs: list[int] = []
    node_bytes: list[int] = []
    static_shape = {k: v for k, v in shapes.items() if v is not None and all(isinstance(d, int) for d in v)}
    for index, node in enumerate(graph.node):
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute if a.type != onnx.AttributeProto.GRAPH}
        view = NodeView(
            name=node.name or f"{node.op_type}_{index}",
            op_type=node.op_type,
            domain=node.domain or "",
            attrs=attrs,
            inputs=tuple(node.input),
            outputs=tuple(node.output),
            input_shapes=tuple(shapes.get(i) for i in node.input),
            output_shapes=tuple(shapes.get(o) for o in node.output),
            input_dtypes=tuple(dtypes.get(i) for i in node.input),
            output_dtypes=tuple(dtypes.get(o) for o in node.output),
            constant_inputs=frozenset(i for i in node.input if i in constants),
            input_quant=tuple(quant.get(i) for i in node.input),
        )
        views.append(view)
        count = None
        if node.op_type in MAC_COUNTERS and view.domain == "":
            count = MAC_COUNTERS.get(node.op_type)(node, static_shape.get)
        macs.append(int(count or 0))
        touched = sum(prod(static_shape[t]) for t in [*node.input, *node.output] if t in static_shape)
        node_bytes.append(4 * int(touched))
    initializers = {i.name for i in graph.initializer}
    elements = {name: (prod(s) if name in static_shape else 1) for name, s in shapes.items() if name not in constants}
    return ModelGraph(
        views=views,
        macs=macs,
        node_bytes=node_bytes,
        elements=elements,
        graph_inputs=[i.name for i in graph.input if i.name not in initializers],
        graph_outputs=[o.name for o in graph.output],
        dtypes=dtypes,
        shapes=shapes,
    )
