"""tf2onnx calls, one per source kind, then edgecc's checks: unsupported ops, NCHW inputs, layout metadata."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from edgecc.converters.options import DEFAULT_OPSET, ConvertOptions
from edgecc.converters.tensorflow import schema
from edgecc.converters.tensorflow.reader import one_line
from edgecc.converters.tensorflow.runtime import quiet, tf, tf2onnx
from edgecc.converters.tensorflow.schema import Source
from edgecc.errors import EdgeccError, UnsupportedError, UnsupportedNode, UnsupportedOperator, UsageError
from edgecc.registry import Registry

if TYPE_CHECKING:
    import onnx

__all__ = [
    "EXPORTERS",
    "LAYOUT_KEY",
    "MAX_TF2ONNX_OPSET",
    "canonicalize",
    "dequantize_requested",
    "export",
    "name_dynamic_dims",
    "nchw_inputs",
]

log = logging.getLogger(__name__)

#: source kind -> exporter(source, opset, options) -> ModelProto (straight from tf2onnx)
EXPORTERS: Registry[Callable[[Source, int, ConvertOptions], onnx.ModelProto]] = Registry("TensorFlow exporter")

LAYOUT_KEY = "edgecc.input_layout"
MAX_TF2ONNX_OPSET = 18


def nchw_inputs(options: ConvertOptions) -> tuple[str, ...]:
    """Input names given with --nchw-inputs (comma lists allowed)."""
    names = getattr(options, "nchw_inputs", ()) or ()
    if isinstance(names, str):
        names = (names,)
    return tuple(n for item in names for n in item.split(",") if n)


def dequantize_requested(options: ConvertOptions) -> bool:
    """--dequantize: float graph from a quantised TFLite model."""
    return bool(getattr(options, "dequantize", False))


def _shape_override(source: Source) -> dict[str, list[int | None]] | None:
    override = {i.name: [d if isinstance(d, int) else None for d in i.shape] for i in source.inputs if i.shape is not None}
    return override or None


@EXPORTERS.register(schema.KERAS)
def export_keras(source: Source, opset: int, options: ConvertOptions) -> onnx.ModelProto:
    """Keras model -> tf.function -> tf2onnx.convert.from_keras."""
    tfm = tf()
    signature = None
    if options.inputs:
        signature = tuple(
            tfm.TensorSpec(
                [d if isinstance(d, int) else None for d in info.shape] if info.shape is not None else None,
                tfm.as_dtype(info.dtype),
                name=info.name,
            )
            for info in source.inputs
        )
    model_proto, _ = tf2onnx().convert.from_keras(source.model, input_signature=signature, opset=opset)
    return model_proto


EXPORTERS.register(schema.KERAS_H5, export_keras)


@EXPORTERS.register(schema.SAVED_MODEL)
def export_saved_model(source: Source, opset: int, options: ConvertOptions) -> onnx.ModelProto:
    """SavedModel signature -> frozen graph (tf2onnx.tf_loader) -> ONNX, tensors named by the signature keys."""
    t2o = tf2onnx()
    graph_def, inputs, outputs, tables, renames = t2o.tf_loader.from_saved_model(
        source.path,
        None,
        None,
        signatures=[source.extra["signature"]],
        return_initialized_tables=True,
        return_tensors_to_rename=True,
    )
    reverse = {v: k for k, v in renames.items()}
    overrides = _shape_override(source)
    shape_override = {reverse.get(k, k): v for k, v in overrides.items()} if options.inputs and overrides else None
    model_proto, _ = t2o.convert._convert_common(
        graph_def,
        name=source.extra["signature"],
        opset=opset,
        input_names=inputs,
        output_names=outputs,
        tensors_to_rename=renames,
        initialized_tables=tables,
        shape_override=shape_override,
    )
    return model_proto


@EXPORTERS.register(schema.GRAPHDEF)
def export_graphdef(source: Source, opset: int, options: ConvertOptions) -> onnx.ModelProto:
    """Frozen GraphDef -> tf2onnx.convert.from_graph_def between the chosen inputs and outputs."""
    shape_override = _shape_override(source) if options.inputs else None
    model_proto, _ = tf2onnx().convert.from_graph_def(
        source.model,
        name="graph",
        input_names=[i.name for i in source.inputs],
        output_names=list(source.outputs),
        opset=opset,
        shape_override=shape_override,
    )
    return model_proto


EXPORTERS.register(schema.TFJS + "-graph", export_graphdef)
EXPORTERS.register(schema.TFJS + "-layers", export_keras)


@EXPORTERS.register(schema.TFLITE)
def export_tflite(source: Source, opset: int, options: ConvertOptions) -> onnx.ModelProto:
    """The TFLite flatbuffer as edgecc rewrote it (reader.load_tflite) -> tf2onnx's TFLite reader.

    Quantised tensors stay QuantizeLinear/DequantizeLinear; custom operators are exit 4 before tf2onnx runs.
    """
    import tempfile
    from pathlib import Path

    from edgecc.converters.tensorflow.reader import custom_operator_error

    custom = custom_operator_error(source.extra["flatbuffer"])
    if custom is not None:
        raise custom
    with tempfile.TemporaryDirectory(prefix="edgecc-tflite-") as folder:
        converted = Path(folder) / "model.tflite"
        converted.write_bytes(source.extra["converted"])
        model_proto, _ = tf2onnx().convert._convert_common(
            None,
            tflite_path=str(converted),
            name="tflite",
            opset=opset,
            dequantize=dequantize_requested(options),
        )
    return model_proto


def _state_defaults(model: onnx.ModelProto, states: Sequence[Any]) -> None:
    """Give each state input its initial value as default: an initializer with the input's name (zeros when the
    model stores none)."""
    import numpy as np
    from onnx import helper, numpy_helper

    by_name = {i.name: i for i in model.graph.input}
    for state in states:
        value_info = by_name.get(state.input or "")
        if value_info is None:
            continue
        dtype = helper.tensor_dtype_to_np_dtype(value_info.type.tensor_type.elem_type)
        shape = [d.dim_value for d in value_info.type.tensor_type.shape.dim]
        initial = state.initial if state.initial is not None else np.zeros(shape, dtype=dtype)
        model.graph.initializer.append(numpy_helper.from_array(np.asarray(initial, dtype=dtype).reshape(shape), state.input))


_UNKNOWN_DIM = re.compile(r"^unk__\d+$")


def name_dynamic_dims(model: onnx.ModelProto) -> dict[str, str]:
    """Replace tf2onnx's `unk__N` dimension names by names users can place: `batch` for axis 0 of an input,
    `<input>_dim<axis>` for other input axes, `<tensor>_dim<axis>` elsewhere (the same unk__N gets one name)."""
    graph = model.graph
    chosen: dict[str, str] = {}
    values = list(graph.input) + list(graph.output) + list(graph.value_info)
    for value in values:
        dims = value.type.tensor_type.shape.dim if value.type.HasField("tensor_type") else []
        for axis, dim in enumerate(dims):
            if dim.HasField("dim_param") and _UNKNOWN_DIM.match(dim.dim_param) and dim.dim_param not in chosen:
                base = value.name.split(":")[0]
                chosen[dim.dim_param] = "batch" if axis == 0 else f"{base}_dim{axis}"
    for value in values:
        dims = value.type.tensor_type.shape.dim if value.type.HasField("tensor_type") else []
        for dim in dims:
            if dim.HasField("dim_param") and dim.dim_param in chosen:
                dim.dim_param = chosen[dim.dim_param]
    return chosen


def _unsupported_nodes(model: onnx.ModelProto) -> list[UnsupportedNode]:
    """Nodes tf2onnx left with their TensorFlow/TFLite op type (no ONNX schema)."""
    import onnx

    custom = {o.domain for o in model.opset_import if o.domain not in ("", "ai.onnx")}
    found = []
    for node in model.graph.node:
        domain = node.domain or ""
        if domain in custom:
            continue
        if not onnx.defs.has(node.op_type, domain):
            found.append(UnsupportedNode(node.name, node.op_type, "tf2onnx has no ONNX conversion for it"))
    return found


def _nchw(model: onnx.ModelProto, names: Sequence[str], path: str) -> None:
    """Make the named inputs NCHW: a Transpose to NHWC after each, the input's shape permuted."""
    from onnx import helper

    graph = model.graph
    by_name = {i.name: i for i in graph.input}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise UsageError(
            f"--nchw-inputs names {', '.join(unknown)}, not inputs of the converted model", hint=f"inputs: {', '.join(by_name)}"
        )
    new_nodes = []
    for name in names:
        value = by_name[name]
        dims = value.type.tensor_type.shape.dim
        rank = len(dims)
        if rank < 3:
            raise UsageError(f"--nchw-inputs: input '{name}' has rank {rank}, needs an image-like rank >= 3")
        inner = f"{name}__nhwc"
        for node in graph.node:
            for i, x in enumerate(node.input):
                if x == name:
                    node.input[i] = inner
        for out in graph.output:
            if out.name == name:
                raise UsageError(f"--nchw-inputs: input '{name}' is also an output")
        perm_to_nhwc = [0, *range(2, rank), 1]
        new_nodes.append(helper.make_node("Transpose", [name], [inner], name=f"{name}__to_nhwc", perm=perm_to_nhwc))
        copies = [type(dims[0])() for _ in range(rank)]
        for target, source_index in zip(copies, [0, rank - 1, *range(1, rank - 1)]):
            target.CopyFrom(dims[source_index])
        del dims[:]
        dims.extend(copies)
    for node in reversed(new_nodes):
        graph.node.insert(0, node)


def _set_prop(model: onnx.ModelProto, key: str, value: str) -> None:
    for prop in model.metadata_props:
        if prop.key == key:
            prop.value = value
            return
    entry = model.metadata_props.add()
    entry.key, entry.value = key, value


def export(source: Source, options: ConvertOptions) -> onnx.ModelProto:
    """Convert a loaded Source with tf2onnx; every unsupported op is reported at once (exit 4)."""
    requested = options.opset or DEFAULT_OPSET
    opset = min(requested, MAX_TF2ONNX_OPSET)
    kind = source.kind if source.kind != schema.TFJS else f"{schema.TFJS}-{source.extra['tfjs_format']}"
    if dequantize_requested(options) and source.kind != schema.TFLITE:
        raise UsageError("--dequantize applies to TFLite models only")
    exporter = EXPORTERS.get(kind)
    try:
        with quiet():
            model = exporter(source, opset, options)
    except EdgeccError:
        raise
    except Exception as exc:  # noqa: BLE001 -- TensorFlow, Keras and tf2onnx raise errors of many types
        raise UnsupportedError(
            f"tf2onnx cannot convert this {schema.KIND_NAMES[source.kind]}: {one_line(exc)}",
            path=source.path,
            hint="run with --debug for the full tf2onnx error",
        ) from None
    missing = _unsupported_nodes(model)
    if missing:
        raise UnsupportedOperator(missing, where=schema.KIND_NAMES[source.kind], path=source.path)
    canonicalize(model)
    name_dynamic_dims(model)
    names = nchw_inputs(options)
    if names:
        _nchw(model, names, source.path)
        _set_prop(model, LAYOUT_KEY, ",".join(f"{n}=NCHW" for n in names) + " (transposed from NHWC); others as in the source")
    else:
        _set_prop(model, LAYOUT_KEY, "as in the source model (TensorFlow: NHWC)")
    if source.kind == schema.TFLITE:
        _set_prop(
            model, "edgecc.tflite_quantization", "dequantized (float graph)" if dequantize_requested(options) else "kept as QDQ"
        )
        if source.extra.get("notes"):
            _set_prop(model, "edgecc.tflite_rewrites", "; ".join(source.extra["notes"]))
        states = source.extra["flatbuffer"].states
        if states:
            _state_defaults(model, states)
            _set_prop(
                model,
                "edgecc.tflite_state",
                "; ".join(f"{s.variable}: {s.input or '-'} -> {s.output or '-'}" for s in states)
                + " (each state input defaults to the variable's initial value; feed it the previous step's output)",
            )
    return model


# --- deterministic output ----------------------------------------------------------------------------
# Make tf2onnx's output deterministic: canonical node order and names for the tensors tf2onnx generates.
#
# tf2onnx walks Python sets while it optimises, so node order and the counters in the
# names it invents (`Unsqueeze__55`, `const_fold_opt__160`) change from one process to the
# next. Here nodes are put in a depth-first order from the graph outputs, and every
# generated name is renumbered in that order; TensorFlow's own tensor names and the graph
# inputs and outputs are kept.

_GENERATED = re.compile(r"__\d+")
_PORT = re.compile(r":\d+$")


def _subgraphs(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    from onnx import AttributeProto

    found = []
    for attr in node.attribute:
        if attr.type == AttributeProto.GRAPH:
            found.append(attr.g)
        elif attr.type == AttributeProto.GRAPHS:
            found.extend(attr.graphs)
    return found


def _outer_names(graph: onnx.GraphProto) -> list[str]:
    """Names a subgraph reads from enclosing scopes (in order of use)."""
    local = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    found: list[str] = []
    for node in graph.node:
        for name in list(node.input) + [n for sub in _subgraphs(node) for n in _outer_names(sub)]:
            if name and name not in local and name not in found:
                found.append(name)
        local.update(node.output)
    return found


def _dependencies(node: onnx.NodeProto) -> list[str]:
    return list(node.input) + [n for sub in _subgraphs(node) for n in _outer_names(sub)]


def _order(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """Nodes in depth-first post-order from the outputs (inputs, then names used by subgraphs); unreached nodes last."""
    producer = {}
    for index, node in enumerate(graph.node):
        for name in node.output:
            if name:
                producer[name] = index
    deps = [_dependencies(node) for node in graph.node]
    seen: set[int] = set()
    order: list[int] = []
    for root in [o.name for o in graph.output]:
        if root not in producer:
            continue
        stack = [(producer[root], 0)]
        while stack:
            index, next_input = stack.pop()
            if next_input == 0 and index in seen:
                continue
            seen.add(index)
            inputs = deps[index]
            while next_input < len(inputs):
                name = inputs[next_input]
                next_input += 1
                child = producer.get(name)
                if child is not None and child not in seen:
                    stack.append((index, next_input))
                    stack.append((child, 0))
                    break
            else:
                order.append(index)
    order.extend(i for i in range(len(graph.node)) if i not in seen)  # only dead nodes: -O1 removes them
    return [graph.node[i] for i in order]


def _collect(graph: onnx.GraphProto, names: list[str]) -> None:
    """Every tensor and node name in canonical order (recursing into subgraphs)."""
    ordered = _order(graph)
    copies = [type(n)() for n in ordered]
    for copy, node in zip(copies, ordered):
        copy.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(copies)
    for node in graph.node:
        names.extend(node.input)
        for sub in _subgraphs(node):
            names.extend(i.name for i in sub.input)
            _collect(sub, names)
        names.extend(node.output)
        names.append(node.name)
    first_use = {}
    for position, name in enumerate(names):
        first_use.setdefault(name, position)
    inits = sorted(graph.initializer, key=lambda t: first_use.get(t.name, len(names)))
    copies_init = [type(t)() for t in inits]
    for copy, tensor in zip(copies_init, inits):
        copy.CopyFrom(tensor)
    del graph.initializer[:]
    graph.initializer.extend(copies_init)
    names.extend(t.name for t in graph.initializer)


def _apply(graph: onnx.GraphProto, rename: dict[str, str], node_names: dict[str, str] | None = None) -> None:
    node_names = rename if node_names is None else node_names
    for node in graph.node:
        node.input[:] = [rename.get(n, n) for n in node.input]
        node.output[:] = [rename.get(n, n) for n in node.output]
        node.name = node_names.get(node.name, node.name)
        if not node.domain:
            node.ClearField("domain")  # "" set explicitly or not at all: same meaning, same bytes
        for sub in _subgraphs(node):
            _apply(sub, rename, node_names)
    for tensor in graph.initializer:
        tensor.name = rename.get(tensor.name, tensor.name)
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        value.name = rename.get(value.name, value.name)
    infos = sorted(graph.value_info, key=lambda v: v.name)
    copies = [type(v)() for v in infos]
    for copy, value in zip(copies, infos):
        copy.CopyFrom(value)
    del graph.value_info[:]
    graph.value_info.extend(copies)


_QDQ = ("QuantizeLinear", "DequantizeLinear")


def _nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """Every node, subgraphs included, in canonical order."""
    found = []
    for node in graph.node:
        found.append(node)
        for sub in _subgraphs(node):
            found.extend(_nodes(sub))
    return found


def canonicalize(model: onnx.ModelProto) -> onnx.ModelProto:
    """Reorder and rename in place (and return) so that equal conversions give byte-identical models.

    Nodes tf2onnx made up (their name or an output holds `__N`) and its Q/DQ nodes are renamed
    `<OpType>__P` after their position P in canonical order, outputs `<OpType>__P:K`; initializers
    are merged by content and named after their first consumer. TensorFlow's own names stay.
    """
    graph = model.graph
    _collect(graph, [])
    protected = {v.name for v in list(graph.input) + list(graph.output)}
    rename: dict[str, str] = {}
    node_names: dict[str, str] = {}
    for position, node in enumerate(_nodes(graph)):
        generated = node.op_type in _QDQ or _GENERATED.search(node.name) or any(_GENERATED.search(o) for o in node.output)
        if not generated:
            continue
        node_names[node.name] = f"{node.op_type}__{position}"
        for index, name in enumerate(node.output):
            if name and name not in protected:
                rename[name] = f"{node.op_type}__{position}:{index}"
    _apply(graph, rename, node_names)
    _initializers(graph)
    for node in _nodes(graph):
        for sub in _subgraphs(node):
            _initializers(sub)
    return model


def _initializers(graph: onnx.GraphProto) -> None:
    """Merge initializers with equal content and name each after its first consumer (`node/inputK`).

    Which of two equal constants tf2onnx keeps, and under which name, depends on set order;
    merging by content and naming by the (canonical) consumer removes that choice.
    """
    protected = {v.name for v in list(graph.input) + list(graph.output)}
    first: dict[tuple[int, tuple[int, ...], bytes], str] = {}
    merge: dict[str, str] = {}
    for tensor in graph.initializer:
        if tensor.name in protected:
            continue
        copy = type(tensor)()
        copy.CopyFrom(tensor)
        copy.name = ""
        key = (tensor.data_type, tuple(tensor.dims), copy.SerializeToString())
        if key in first:
            merge[tensor.name] = first[key]
        else:
            first[key] = tensor.name
    if merge:
        kept = [t for t in graph.initializer if t.name not in merge]
        copies = [type(t)() for t in kept]
        for copy, tensor in zip(copies, kept):
            copy.CopyFrom(tensor)
        del graph.initializer[:]
        graph.initializer.extend(copies)
        _apply(graph, merge, {})
    consumer: dict[str, str] = {}
    for node in graph.node:
        for index, name in enumerate(node.input):
            consumer.setdefault(name, f"{node.name}/input{index}")
    taken = {n for node in graph.node for n in node.output} | protected
    rename: dict[str, str] = {}
    for tensor in graph.initializer:
        if tensor.name in protected or tensor.name not in consumer:
            continue
        candidate = consumer[tensor.name]
        while candidate in taken:
            candidate += "_"
        taken.add(candidate)
        rename[tensor.name] = candidate
    _apply(graph, rename, {})
