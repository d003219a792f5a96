"""Loading, checking, reshaping, cutting, opset conversion and saving of ONNX models."""

from __future__ import annotations

import copy
import difflib
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from edgecc.errors import InvalidInputError, UnsupportedError, UsageError
from edgecc.fileio import atomic_output, check_input_file
from edgecc.inputs import Dim, InputSpec, TensorInfo

if TYPE_CHECKING:
    import onnx

__all__ = [
    "PROTOBUF_LIMIT",
    "load_onnx",
    "parse_onnx_bytes",
    "check_model",
    "infer_shapes",
    "graph_inputs",
    "graph_outputs",
    "ir_version_for",
    "apply_input_specs",
    "extract_outputs",
    "default_opset",
    "save_onnx",
    "serialize_onnx",
    "with_outputs",
    "name_unnamed_nodes",
    "node_output_names",
    "all_graphs",
    "dynamic_negative_dims",
]

log = logging.getLogger(__name__)

PROTOBUF_LIMIT = 2**31 - 1  # protobuf cannot serialise messages of 2 GiB or more
_SHAPE_DATA_LIMIT = 4096  # initializers up to this many elements keep their values (shape tensors)


def _np_dtype_name(elem_type: int) -> str:
    import onnx

    if elem_type == onnx.TensorProto.BFLOAT16:
        return "bfloat16"
    try:
        return str(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except KeyError:  # a data type onnx's dtype table does not know
        return onnx.TensorProto.DataType.Name(elem_type).lower()


def _shape_of(value_info: "onnx.ValueInfoProto") -> tuple[Dim, ...] | None:
    tensor_type = value_info.type.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    dims: list[Dim] = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value") and dim.dim_value >= 0:
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param"):
            dims.append(dim.dim_param)
        else:
            dims.append(None)
    return tuple(dims)


def _info(value_info: "onnx.ValueInfoProto") -> TensorInfo:
    return TensorInfo(value_info.name, _shape_of(value_info), _np_dtype_name(value_info.type.tensor_type.elem_type))


def ir_version_for(opset: int) -> int:
    """The lowest IR version that an ai.onnx opset needs (IR 8 for opset 17, as onnx's helper says)."""
    from onnx import helper

    return int(helper.find_min_ir_version_for([helper.make_opsetid("", opset)]))


def graph_inputs(model: "onnx.ModelProto") -> list[TensorInfo]:
    """The model's real inputs (graph inputs that are not initializers)."""
    initializers = {init.name for init in model.graph.initializer}
    return [_info(vi) for vi in model.graph.input if vi.name not in initializers]


def graph_outputs(model: "onnx.ModelProto") -> list[TensorInfo]:
    """The model's outputs."""
    return [_info(vi) for vi in model.graph.output]


def _check_external_locations(model: "onnx.ModelProto", base_dir: Path, path: Path) -> None:
    import onnx

    from edgecc.fileio import resolve_named_path

    for tensor in _all_tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = resolve_named_path(base_dir, location, named_in=path, what=f"initializer '{tensor.name}' external data")
        if not target.is_file():
            raise InvalidInputError(
                f"initializer '{tensor.name}' needs external data file '{location}', which does not exist",
                path=path,
                hint="copy the .data file next to the model",
            )


def _all_tensors(graph: "onnx.GraphProto") -> Iterable["onnx.TensorProto"]:
    for each in all_graphs(graph):
        yield from each.initializer
        for node in each.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors


def parse_onnx_bytes(data: bytes, *, path: str | Path = "<bytes>") -> "onnx.ModelProto":
    """Parse serialised ONNX, turning protobuf errors into InvalidInputError."""
    import onnx

    from edgecc.protowire import parse_message

    model = parse_message(
        onnx.ModelProto(), data, path=path, what="ONNX model", hint="the file is truncated, corrupt or not ONNX"
    )
    if not model.HasField("graph") or model.ir_version <= 0:
        raise InvalidInputError(f"'{path}' is not an ONNX model (no graph or IR version)", path=path)
    return model


def load_onnx(path: str | Path, *, load_external_data: bool = True, check: bool = True) -> "onnx.ModelProto":
    """Load an ONNX file (and its external data), validated; bad files raise InvalidInputError."""
    path = check_input_file(path)
    model = parse_onnx_bytes(path.read_bytes(), path=path)
    if load_external_data:
        _check_external_locations(model, path.parent, path)
        import onnx.external_data_helper as edh

        try:
            edh.load_external_data_for_model(model, str(path.parent))
        except Exception as exc:  # noqa: BLE001 -- onnx's external-data loader has no single error type
            raise InvalidInputError(f"cannot load external data of '{path}': {exc}", path=path) from None
    if check:
        check_model(model, path=path)
    return model


def check_model(model: "onnx.ModelProto", *, path: str | Path = "<model>") -> None:
    """Run the ONNX checker; failures become InvalidInputError naming the file."""
    import onnx

    light = _light_copy(model)
    _declare_unknown_shapes(light)
    try:
        onnx.checker.check_model(light)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid model"
        context = " ".join(str(exc).split())
        raise InvalidInputError(
            f"'{path}' is not a valid ONNX model: {first}" + (f" [{context[:300]}]" if context != first else ""),
            path=path,
        ) from None
    _check_tensor_sizes(model, path)


def _declare_unknown_shapes(model: "onnx.ModelProto") -> None:
    """Give the checker a shape field on main-graph inputs/outputs that declare a tensor type without one.

    A tensor type without `shape` means "rank unknown" (onnxruntime runs such files, and exporters write outputs
    that way), but onnx's checker insists on the field. Only the copy the checker sees is changed, never the model,
    and shape inference never reads it.
    """
    for value in [*model.graph.input, *model.graph.output]:
        tensor_type = value.type.tensor_type
        if value.type.HasField("tensor_type") and not tensor_type.HasField("shape"):
            tensor_type.shape.SetInParent()


def _elements(tensor: "onnx.TensorProto") -> int:
    count = 1
    for dim in tensor.dims:
        count *= dim
    return count


def _light_copy(model: "onnx.ModelProto") -> "onnx.ModelProto":
    """The model without the bytes of its large initializers, which become typed graph inputs.

    Shape inference and the checker see the same graph at a fraction of the memory and time.
    """
    import onnx

    light = onnx.ModelProto()
    light.ir_version = max(model.ir_version, 4)
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    graph = light.graph
    graph.name = model.graph.name
    graph.node.extend(model.graph.node)
    graph.input.extend(model.graph.input)
    graph.output.extend(model.graph.output)
    graph.value_info.extend(model.graph.value_info)
    declared = {vi.name for vi in model.graph.input}
    for init in model.graph.initializer:
        if _elements(init) <= _SHAPE_DATA_LIMIT and init.data_location != onnx.TensorProto.EXTERNAL:
            graph.initializer.append(init)
        elif init.name not in declared:
            graph.input.append(onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    return light


def _check_tensor_sizes(model: "onnx.ModelProto", path: str | Path) -> None:
    """Raw initializer bytes must match dims x element size (what the checker would verify on the full model)."""
    import onnx

    for init in model.graph.initializer:
        if not init.raw_data or init.data_type in (onnx.TensorProto.STRING, onnx.TensorProto.INT4, onnx.TensorProto.UINT4):
            continue
        try:
            itemsize = onnx.helper.tensor_dtype_to_np_dtype(init.data_type).itemsize
        except KeyError:  # a data type onnx's dtype table does not know
            continue
        if len(init.raw_data) != _elements(init) * itemsize:
            raise InvalidInputError(
                f"'{path}': initializer '{init.name}' holds {len(init.raw_data)} bytes, its shape {list(init.dims)} needs "
                f"{_elements(init) * itemsize}",
                path=path,
            )


def _has_shape(value_info: "onnx.ValueInfoProto") -> bool:
    return not value_info.type.HasField("tensor_type") or value_info.type.tensor_type.HasField("shape")


def all_graphs(graph: "onnx.GraphProto") -> Iterable["onnx.GraphProto"]:
    """The graph and every subgraph in it (If branches, Loop and Scan bodies), outermost first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from all_graphs(attr.g)
            for sub in attr.graphs:
                yield from all_graphs(sub)


def dynamic_negative_dims(model: "onnx.ModelProto") -> int:
    """Make `dim_value: -1` (how Paddle and others write a dynamic dimension) a dynamic dimension, in place.

    Returns how many dimensions were changed. Every graph's inputs, outputs and value-info are covered.
    """
    changed = 0
    for graph in all_graphs(model.graph):
        for vi in (*graph.input, *graph.output, *graph.value_info):
            if not vi.type.HasField("tensor_type"):
                continue
            for dim in vi.type.tensor_type.shape.dim:
                if dim.HasField("dim_value") and dim.dim_value < 0:
                    dim.Clear()
                    changed += 1
    return changed


def infer_shapes(model: "onnx.ModelProto") -> "onnx.ModelProto":
    """The model with every tensor's shape and type filled in (ONNX inference with data propagation).

    Inference runs on a light copy whose large initializers are declared as typed
    inputs instead of carrying their bytes, so memory stays near the model's size.
    Best effort: if inference fails the model is returned unchanged.
    """
    import onnx

    light = _light_copy(model)
    try:
        inferred = onnx.shape_inference.infer_shapes(light, check_type=False, strict_mode=False, data_prop=True)
    except Exception as exc:  # noqa: BLE001 -- inference is best effort: a model ORT runs may still confuse it
        log.warning("shape inference failed: %s", exc)
        return model
    result = model  # filled in place: copying would double the weights in memory
    del result.graph.value_info[:]
    # entries with a dtype but no shape say nothing the graph does not, and the checker refuses them
    result.graph.value_info.extend(vi for vi in inferred.graph.value_info if _has_shape(vi))
    outputs = {vi.name: vi for vi in inferred.graph.output}
    for output in result.graph.output:
        better = outputs.get(output.name)
        if better is not None and better.type.HasField("tensor_type") and better.type.tensor_type.HasField("shape"):
            output.type.CopyFrom(better.type)
    return result


def apply_input_specs(model: "onnx.ModelProto", specs: Sequence[InputSpec], *, path: str | Path = "<model>") -> "onnx.ModelProto":
    """Fix input shapes from `--input` specs and re-infer the shapes that follow."""
    if not specs:
        return model
    model = copy.deepcopy(model)
    initializers = {init.name for init in model.graph.initializer}
    by_name = {vi.name: vi for vi in model.graph.input if vi.name not in initializers}
    for spec in specs:
        if spec.name not in by_name:
            raise UsageError(f"--input '{spec.name}' is not an input of '{path}' (inputs: {', '.join(by_name) or 'none'})")
        tensor_type = by_name[spec.name].type.tensor_type
        if spec.dtype is not None and spec.dtype != _np_dtype_name(tensor_type.elem_type):
            raise UsageError(
                f"--input '{spec.text()}' asks for {spec.dtype}, but the model's input '{spec.name}' is "
                f"{_np_dtype_name(tensor_type.elem_type)}",
                hint="leave the dtype out or give the model's dtype",
            )
        if spec.shape is None:
            continue
        old = _shape_of(by_name[spec.name])
        if old is not None and len(old) != len(spec.shape):
            raise UsageError(
                f"--input '{spec.text()}' has rank {len(spec.shape)}, the model's input '{spec.name}' has rank {len(old)} "
                f"({'x'.join('?' if d is None else str(d) for d in old)})"
            )
        if old is not None:
            for index, (was, new) in enumerate(zip(old, spec.shape)):
                if isinstance(was, int) and isinstance(new, int) and was != new:
                    raise UsageError(f"--input '{spec.text()}' sets dimension {index} to {new}, but the model fixes it to {was}")
        tensor_type.ClearField("shape")
        shape = tensor_type.shape
        for index, dim in enumerate(spec.shape):
            if dim is None and old is not None and isinstance(old[index], (int, str)):
                dim = old[index]  # `?` keeps what the model says
            entry = shape.dim.add()
            if isinstance(dim, int):
                entry.dim_value = dim
            elif isinstance(dim, str):
                entry.dim_param = dim
    del model.graph.value_info[:]
    declared = {}
    for output in model.graph.output:
        tensor_type = output.type.tensor_type
        if tensor_type.HasField("shape") and any(not d.HasField("dim_value") for d in tensor_type.shape.dim):
            declared[output.name] = copy.deepcopy(tensor_type.shape)
            tensor_type.ClearField("shape")
    model = infer_shapes(model)
    for output in model.graph.output:
        # where inference cannot say (e.g. after control flow), the declared symbolic shape still holds
        if output.name in declared and not output.type.tensor_type.HasField("shape"):
            output.type.tensor_type.shape.CopyFrom(declared[output.name])
    return model


def node_output_names(model: "onnx.ModelProto") -> list[str]:
    """Every tensor produced by a node, in graph order."""
    return [name for node in model.graph.node for name in node.output if name]


def extract_outputs(model: "onnx.ModelProto", outputs: Sequence[str], *, path: str | Path = "<model>") -> "onnx.ModelProto":
    """Cut the model so that it ends at the named tensors (`--output`)."""
    import onnx.utils

    if not outputs:
        return model
    available = set(node_output_names(model)) | {o.name for o in model.graph.output} | {i.name for i in model.graph.input}
    missing = [name for name in outputs if name not in available]
    if missing:
        suggestions = []
        for name in missing:
            close = difflib.get_close_matches(name, sorted(available), n=3)
            suggestions.append(f"'{name}'" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        raise UsageError(f"--output names tensor(s) not in '{path}': {'; '.join(suggestions)}")
    model = infer_shapes(model)
    inputs = [info.name for info in graph_inputs(model)]
    try:
        extracted = onnx.utils.Extractor(model).extract_model(inputs, list(outputs))
    except Exception as exc:  # noqa: BLE001 -- onnx's Extractor has no single error type; all become UnsupportedError
        raise UnsupportedError(f"cannot cut '{path}' at {', '.join(outputs)}: {exc}", path=path) from None
    extracted.ir_version = model.ir_version
    extracted.producer_name = model.producer_name
    extracted.producer_version = model.producer_version
    del extracted.metadata_props[:]
    extracted.metadata_props.extend(model.metadata_props)
    used_inputs = {name for node in extracted.graph.node for name in node.input}
    keep = [vi for vi in extracted.graph.input if vi.name in used_inputs or vi.name in outputs]
    del extracted.graph.input[:]
    extracted.graph.input.extend(keep)
    return extracted


def default_opset(model: "onnx.ModelProto") -> int:
    """The model's ai.onnx opset version (0 when it imports none)."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 0


def serialize_onnx(model: "onnx.ModelProto") -> bytes:
    """Deterministic serialisation of a model below the protobuf limit."""
    return model.SerializeToString(deterministic=True)


def _external_bytes(model: "onnx.ModelProto") -> int:
    return sum(len(t.raw_data) for t in _all_tensors(model.graph))


def save_onnx(model: "onnx.ModelProto", path: str | Path) -> list[Path]:
    """Write the model atomically as one self-contained file; above 2 GiB the weights go to `<name>.data`.

    Returns the files written.
    """
    import onnx
    import onnx.external_data_helper as edh

    path = Path(path)
    if _external_bytes(model) < PROTOBUF_LIMIT - 64 * 1024**2:
        with atomic_output(path) as tmp:
            tmp.write_bytes(serialize_onnx(model))
        return [path]
    data_name = f"{path.name}.data"
    model = copy.deepcopy(model)
    with atomic_output(path.parent / data_name) as tmp_data:
        edh.convert_model_to_external_data(model, all_tensors_to_one_file=True, location=tmp_data.name, size_threshold=1024)
        edh.write_external_data_tensors(model, str(path.parent))
        for tensor in _all_tensors(model.graph):
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = data_name
        with atomic_output(path) as tmp:
            onnx.save_model(model, str(tmp))
    return [path, path.parent / data_name]


def with_outputs(model: "onnx.ModelProto", names: Sequence[str]) -> "onnx.ModelProto":
    """A copy of the model that also outputs the named intermediate tensors."""
    import onnx

    model = copy.deepcopy(model)
    existing = {o.name for o in model.graph.output}
    typed = {vi.name: vi for vi in model.graph.value_info}
    for name in names:
        if name in existing:
            continue
        model.graph.output.append(copy.deepcopy(typed[name]) if name in typed else onnx.ValueInfoProto(name=name))
        existing.add(name)
    return model


def name_unnamed_nodes(model: "onnx.ModelProto") -> "onnx.ModelProto":
    """`model` (changed in place) with every unnamed main-graph node named `<OpType>_<index>`, kept unique: placement,
    the manifest, layer reports and --exclude refer to nodes by name."""
    used = {n.name for n in model.graph.node if n.name}
    if len(used) == len(model.graph.node):
        return model
    for index, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{index}"
            while name in used:
                name += "_"
            node.name = name
            used.add(name)
    return model
