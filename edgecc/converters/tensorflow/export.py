"""tf2onnx calls, one per source kind, then edgecc's checks: unsupported ops, NCHW inputs, layout metadata."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from edgecc.converters.options import DEFAULT_OPSET, ConvertOptions
from edgecc.converters.tensorflow import formats
from edgecc.converters.tensorflow.canonical import canonicalize
from edgecc.converters.tensorflow.loading import Source, one_line
from edgecc.converters.tensorflow.runtime import quiet, tf, tf2onnx
from edgecc.errors import EdgeccError, UnsupportedError, UnsupportedNode, UnsupportedOperator, UsageError
from edgecc.registry import Registry

if TYPE_CHECKING:
    import onnx

__all__ = ["EXPORTERS", "LAYOUT_KEY", "MAX_TF2ONNX_OPSET", "dequantize_requested", "export", "nchw_inputs"]

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


@EXPORTERS.register(formats.KERAS)
def export_keras(source: Source, opset: int, options: ConvertOptions) -> onnx.ModelProto:
    """Keras model -> tf.function -> tf2onnx.convert.from_keras."""
    tfm = tf()
    signature = None
    if options.inputs:
        signature = tuple(
            tfm.TensorSpec([d if isinstance(d, int) else None for d in info.shape] if info.shape is not None else None,
                           tfm.as_dtype(info.dtype), name=info.name)
            for info in source.inputs
        )
    model_proto, _ = tf2onnx().convert.from_keras(source.model, input_signature=signature, opset=opset)
    return model_proto


EXPORTERS.register(formats.KERAS_H5, export_keras)


@EXPORTERS.register(formats.SAVED_MODEL)
def export_saved_model(source: Source, opset: int, options: ConvertOptions) -> onnx.ModelProto:
    """SavedModel signature -> frozen graph (tf2onnx.tf_loader) -> ONNX, tensors named by the signature keys."""
    t2o = tf2onnx()
    graph_def, inputs, outputs, tables, renames = t2o.tf_loader.from_saved_model(
        source.path, None, None, signatures=[source.extra["signature"]],
        return_initialized_tables=True, return_tensors_to_rename=True,
    )
    reverse = {v: k for k, v in renames.items()}
    overrides = _shape_override(source)
    shape_override = {reverse.get(k, k): v for k, v in overrides.items()} if options.inputs and overrides else None
    model_proto, _ = t2o.convert._convert_common(
        graph_def, name=source.extra["signature"], opset=opset, input_names=inputs, output_names=outputs,
        tensors_to_rename=renames, initialized_tables=tables, shape_override=shape_override,
    )
    return model_proto


@EXPORTERS.register(formats.GRAPHDEF)
def export_graphdef(source: Source, opset: int, options: ConvertOptions) -> onnx.ModelProto:
    """Frozen GraphDef -> tf2onnx.convert.from_graph_def between the chosen inputs and outputs."""
    shape_override = _shape_override(source) if options.inputs else None
    model_proto, _ = tf2onnx().convert.from_graph_def(
        source.model, name="graph", input_names=[i.name for i in source.inputs], output_names=list(source.outputs),
        opset=opset, shape_override=shape_override,
    )
    return model_proto


EXPORTERS.register(formats.TFJS + "-graph", export_graphdef)
EXPORTERS.register(formats.TFJS + "-layers", export_keras)


@EXPORTERS.register(formats.TFLITE)
def export_tflite(source: Source, opset: int, options: ConvertOptions) -> onnx.ModelProto:
    """TFLite flatbuffer -> tf2onnx's TFLite reader; quantised tensors stay QuantizeLinear/DequantizeLinear."""
    shape_override = _shape_override(source) if options.inputs else None
    model_proto, _ = tf2onnx().convert._convert_common(
        None, tflite_path=source.path, name="tflite", opset=opset, shape_override=shape_override,
        dequantize=dequantize_requested(options),
    )
    return model_proto


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
        raise UsageError(f"--nchw-inputs names {', '.join(unknown)}, not inputs of the converted model",
                         hint=f"inputs: {', '.join(by_name)}")
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
    kind = source.kind if source.kind != formats.TFJS else f"{formats.TFJS}-{source.extra['tfjs_format']}"
    if dequantize_requested(options) and source.kind != formats.TFLITE:
        raise UsageError("--dequantize applies to TFLite models only")
    exporter = EXPORTERS.get(kind)
    try:
        with quiet():
            model = exporter(source, opset, options)
    except EdgeccError:
        raise
    except Exception as exc:  # noqa: BLE001 -- TensorFlow, Keras and tf2onnx raise errors of many types
        raise UnsupportedError(
            f"tf2onnx cannot convert this {formats.KIND_NAMES[source.kind]}: {one_line(exc)}", path=source.path,
            hint="run with --debug for the full tf2onnx error",
        ) from None
    missing = _unsupported_nodes(model)
    if missing:
        raise UnsupportedOperator(missing, where=formats.KIND_NAMES[source.kind], path=source.path)
    canonicalize(model)
    names = nchw_inputs(options)
    if names:
        _nchw(model, names, source.path)
        _set_prop(model, LAYOUT_KEY, ",".join(f"{n}=NCHW" for n in names) + " (transposed from NHWC); others as in the source")
    else:
        _set_prop(model, LAYOUT_KEY, "as in the source model (TensorFlow: NHWC)")
    if source.kind == formats.TFLITE:
        _set_prop(model, "edgecc.tflite_quantization", "dequantized (float graph)" if dequantize_requested(options) else "kept as QDQ")
    return model
