"""predict_net + init_net -> ONNX ModelProto: initializers, inputs, SSA names, op conversion, checks."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from edgecc.converters.builder import unregistered
from edgecc.converters.caffe2 import ops_int8, ops_nn, ops_tensor  # noqa: F401  (register converters)
from edgecc.converters.caffe2.graph import OPS, Graph, Op, OpInvalid, OpUnsupported
from edgecc.converters.caffe2.ops_fill import FILLS, NeedsRandomWeights, run_fill
from edgecc.converters.caffe2.schema import Caffe2Files
from edgecc.converters.options import ConvertOptions
from edgecc.errors import InvalidInputError, UnsupportedNode, UnsupportedOperator, UsageError

if TYPE_CHECKING:
    import onnx

__all__ = ["build_model", "unsupported_ops"]

log = logging.getLogger(__name__)


def unsupported_ops(files: Caffe2Files) -> list[UnsupportedNode]:
    """Every operator of both nets that has no converter."""
    nodes = unregistered(
        ((Op(i, p).name, p.type) for i, p in enumerate(files.predict.op)), OPS, "no Caffe2 converter for this op type"
    )
    if files.init is not None:
        nodes += unregistered(
            ((Op(i, p).name, p.type) for i, p in enumerate(files.init.op)), FILLS, "init_net operator is not a supported fill"
        )
    return nodes


def _fill_initializers(files: Caffe2Files, options: ConvertOptions, graph: Graph, needed: set[str]) -> set[str]:
    """Run the init_net's fills of the `needed` blobs; returns every blob it defines."""
    if files.init is None:
        return set()
    defined: set[str] = set()
    random_ops: list[str] = []
    unsupported: list[UnsupportedNode] = []
    for index, proto in enumerate(files.init.op):
        op = Op(index, proto)
        if not op.outputs:
            raise InvalidInputError(f"'{files.init_path}': {op.describe()} has no output", path=files.init_path)
        if op.outputs[0] not in needed:  # unused, or a dummy fill of a declared input
            defined.add(op.outputs[0])
            continue
        try:
            blob = run_fill(op, options.random_weights)
        except NeedsRandomWeights:
            random_ops.append(f"{op.outputs[0]} ({op.type})")
            continue
        except OpInvalid as exc:
            raise InvalidInputError(
                f"'{files.init_path}': {op.describe()} filling '{op.outputs[0]}' {exc}", path=files.init_path
            ) from None
        except OpUnsupported as exc:
            unsupported.append(UnsupportedNode(op.name, op.type, str(exc)))
            continue
        name = op.outputs[0]
        defined.add(name)
        if name in needed:
            graph.add_initializer(name, blob.value)
            if blob.quant is not None:
                graph.quant[name] = blob.quant
    if unsupported:
        raise UnsupportedOperator(unsupported, where=str(files.init_path), path=files.init_path)
    if random_ops:
        raise UsageError(
            f"'{files.init_path}' fills {len(random_ops)} blob(s) randomly instead of holding trained weights: "
            + ", ".join(random_ops[:10])
            + (" ..." if len(random_ops) > 10 else ""),
            hint="pass --random-weights to convert it anyway (for testing only)",
        )
    return defined


def _data_inputs(files: Caffe2Files, options: ConvertOptions, weights: set[str]) -> list[str]:
    """External inputs fed at run time: those given by --input, value_info.json, or the first unfilled one."""
    predict = files.predict
    candidates = [b for b in predict.external_input if b not in weights]
    consumed = {b for p in predict.op for b in p.input}
    if options.inputs:
        names = [s.name for s in options.inputs]
        unknown = [n for n in names if n not in consumed]
        if unknown:
            raise UsageError(
                f"--input names {', '.join(unknown)}, which the predict_net does not read",
                hint=f"its external inputs without weights: {', '.join(candidates) or 'none'}",
            )
        return names
    if files.value_info:
        found = [b for b in predict.external_input if b in files.value_info and b in consumed]
        if found:
            return found
    return candidates[:1]


def _declared_inputs(files: Caffe2Files, options: ConvertOptions) -> set[str]:
    """Blobs the user (--input) or value_info.json declares as inputs: an init_net fill of them is a dummy."""
    declared = {s.name for s in options.inputs}
    if not declared and files.value_info:
        declared = {b for b in files.predict.external_input if b in files.value_info}
    return declared


def _check_blobs(files: Caffe2Files, ops: Sequence[Op], available: set[str]) -> None:
    """Every op input must come from the init_net, an input, or an earlier op (exit 3 naming blob and op)."""
    defined = set(available)
    missing: list[str] = []
    for op in ops:
        for blob in op.inputs:
            if blob and blob not in defined:
                missing.append(f"'{blob}' used by {op.describe()}")
        defined.update(o for o in op.outputs if o)
    if missing:
        where = f"init_net '{files.init_path}'" if files.init_path else "the nets"
        raise InvalidInputError(
            f"{where} has no blob {missing[0]}"
            + (f" (and {len(missing) - 1} more: {'; '.join(missing[1:6])})" if len(missing) > 1 else ""),
            path=files.init_path or files.predict_path,
            hint="the init_net does not belong to this predict_net, or it is truncated",
        )
    outputs_missing = [b for b in files.predict.external_output if b not in defined]
    if outputs_missing:
        raise InvalidInputError(
            f"'{files.predict_path}': external output(s) {', '.join(outputs_missing)} are produced by no operator",
            path=files.predict_path,
        )


def _ssa_names(ops: Sequence[Op], inputs: set[str], graph: Graph) -> None:
    """Give every blob version a unique ONNX name; the last version keeps the blob's name (graph inputs keep theirs)."""
    writes: Counter[str] = Counter(o for op in ops for o in op.outputs if o)
    seen: Counter[str] = Counter()
    current: dict[str, str] = {b: b for b in inputs}
    for op in ops:
        op.onnx_inputs = [current.get(b, b) if b else "" for b in op.inputs]
        names: list[str] = []
        for blob in op.outputs:
            if not blob:
                names.append("")
                continue
            seen[blob] += 1
            last = seen[blob] == writes[blob] and blob not in inputs
            name = blob if last else graph.unique(f"{blob}__v{seen[blob]}")
            graph.reserve(name)
            current[blob] = name
            names.append(name)
        op.onnx_outputs = names
    for op in ops:  # reserve final names up front so helper tensors never take them
        for name in op.onnx_outputs:
            if name:
                graph.reserve(name)


def _input_type(files: Caffe2Files, options: ConvertOptions, name: str) -> tuple[int, tuple[Any, ...] | None]:
    from onnx import TensorProto, helper

    spec = options.input_spec(name)
    elem = TensorProto.FLOAT
    shape = None
    if name in files.value_info:
        dims, info_elem = files.value_info[name]
        shape = dims
        elem = info_elem or elem
    if spec is not None:
        if spec.shape is not None:
            shape = spec.shape
        if spec.dtype:
            elem = helper.np_dtype_to_tensor_dtype(np.dtype(spec.dtype))
    if shape is None:
        raise UsageError(
            f"Caffe2 nets carry no input shapes: give the shape of input '{name}'",
            hint=f"--input {name}:DIMS, e.g. --input {name}:1x3x224x224",
        )
    return elem, tuple(shape)


def _finish(graph: Graph, outputs: Sequence[str], name: str, path: str) -> onnx.ModelProto:
    """The model of the nodes `outputs` need, checked by strict shape inference."""
    import onnx
    from onnx import helper

    nodes = graph.prune(outputs)
    used = {i for n in nodes for i in n.input} | set(outputs)
    inputs = [vi for vi in graph.inputs if vi.name in used or vi.name in outputs]
    try:
        inferred = onnx.shape_inference.infer_shapes(
            graph.inference_model(nodes, outputs, whole=True), check_type=True, strict_mode=True, data_prop=True
        )
    except Exception as exc:  # noqa: BLE001 -- onnx raises InferenceError / ValidationError (and more), the node in the text
        message = " ".join(str(exc).split())
        raise InvalidInputError(f"'{path}': shapes or types do not fit: {message[:400]}", path=path) from None
    known = {vi.name: vi for vi in list(inferred.graph.value_info) + list(inferred.graph.input)}
    known.update({vi.name: vi for vi in inferred.graph.output if vi.type.tensor_type.elem_type})
    graph_outputs = []
    for out in outputs:
        vi = known.get(out)
        if vi is None or not vi.type.tensor_type.elem_type:
            init = graph.initializers.get(out)
            elem = init.data_type if init is not None else onnx.TensorProto.FLOAT
            vi = helper.make_tensor_value_info(out, elem, None)
        graph_outputs.append(vi)
    return graph.finish(name or "caffe2", graph_outputs, inputs=inputs, nodes=nodes)


def build_model(files: Caffe2Files, options: ConvertOptions) -> onnx.ModelProto:
    """The ONNX model computing the predict_net with the init_net's weights."""
    missing_ops = unsupported_ops(files)
    if missing_ops:
        raise UnsupportedOperator(missing_ops, where=files.predict_path, path=files.predict_path)
    ops = [Op(i, p) for i, p in enumerate(files.predict.op)]
    needed = {b for op in ops for b in op.inputs} | set(files.predict.external_output)
    consumed = {b for op in ops for b in op.inputs} | set(files.predict.external_output)
    for op in ops:
        op.consumed = consumed
    graph = Graph()
    declared = _declared_inputs(files, options)
    weights = _fill_initializers(files, options, graph, needed - declared) - declared
    files.init = None  # the parsed init_net is no longer needed: free its memory before building the graph
    data = _data_inputs(files, options, weights)
    _check_blobs(files, ops, weights | set(data))
    for name in data:
        elem, shape = _input_type(files, options, name)
        graph.add_input(name, elem, shape)
    _ssa_names(ops, set(data), graph)
    for op in ops:
        if graph.skip(op.onnx_inputs, op.onnx_outputs):
            continue
        try:
            OPS.get(op.type)(graph, op)
        except OpUnsupported as exc:
            graph.fail(op.name, op.type, str(exc), op.onnx_outputs)
        except OpInvalid as exc:
            raise InvalidInputError(f"'{files.predict_path}': {op.describe()}: {exc}", path=files.predict_path) from None
    graph.raise_unsupported(where=files.predict_path, path=files.predict_path)
    outputs = [_final_name(ops, b) for b in files.predict.external_output]
    if not outputs:
        produced = [o for op in ops for o in op.onnx_outputs if o]
        used = {i for op in ops for i in op.onnx_inputs}
        outputs = [o for o in produced if o not in used][-1:]
    return _finish(graph, outputs, files.predict.name, files.predict_path)


def _final_name(ops: Sequence[Op], blob: str) -> str:
    """The ONNX name of the last version of `blob`."""
    for op in reversed(ops):
        for source, name in zip(op.outputs, op.onnx_outputs):
            if source == blob:
                return name
    return blob
