"""ai.onnx opset conversion: onnx's version converter, completed by edgecc's own downgrade adapters.

onnx's converter has no down-adapters for several operators that changed in
opset 18 (Pad, Split, Resize, ...), which every torch.export-based export uses.
edgecc downgrades those itself: a node whose older schema accepts it unchanged
(only optional inputs or attributes it does not use were added) is kept, and
registered adapters rewrite the rest (Reduce* axes input -> attribute, Split
num_outputs -> split sizes), in subgraphs (If, Loop, Scan) as in the main graph.
Every node that cannot be downgraded is reported at once.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from edgecc.errors import UnsupportedError, UnsupportedNode, UnsupportedOperator, UsageError
from edgecc.registry import Registry

if TYPE_CHECKING:
    import onnx

__all__ = ["DOWNGRADE_ADAPTERS", "convert_opset", "downgrade"]

log = logging.getLogger(__name__)

#: adapter(node, context) -> None on success or a reason string; registered per op type
DOWNGRADE_ADAPTERS: Registry[Callable[["onnx.NodeProto", "_Context"], "str | None"]] = Registry("downgrade adapter")

_REDUCE_OPS = (
    "ReduceMean",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceSumSquare",
    "ReduceSum",
)


def _inferred_with_subgraphs(model: "onnx.ModelProto") -> "onnx.ModelProto":
    """The model with shapes inferred in every graph (edgecc's `infer_shapes` fills the main graph only)."""
    import onnx

    from edgecc.onnxutil import infer_shapes

    try:
        return onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
    except Exception as exc:  # noqa: BLE001 -- inference is best effort; the main graph's shapes may still come
        log.debug("shape inference with subgraphs failed: %s", exc)
        return infer_shapes(copy.deepcopy(model))


class _Context:
    """Constants and shapes of the graph being downgraded, and the versions involved."""

    def __init__(self, model: "onnx.ModelProto", source: int, target: int) -> None:
        from onnx import numpy_helper

        from edgecc.onnxutil import all_graphs

        self.source, self.target = source, target
        self.new_initializers: list[tuple[str, list[int]]] = []
        self.constants = {}
        self.ranks: dict[str, tuple[int | None, ...]] = {}
        # names are unique across a graph and its subgraphs (SSA), so one table serves every scope
        for graph in all_graphs(model.graph):
            self.constants.update({t.name: numpy_helper.to_array(t) for t in graph.initializer})
            for node in graph.node:
                if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                    self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        for graph in all_graphs(_inferred_with_subgraphs(model).graph):
            for vi in list(graph.value_info) + list(graph.input) + list(graph.output):
                shape = vi.type.tensor_type.shape
                if vi.type.tensor_type.HasField("shape"):
                    self.ranks[vi.name] = tuple(
                        d.dim_value if d.HasField("dim_value") and d.dim_value >= 0 else None for d in shape.dim
                    )

    def shape(self, name: str) -> tuple[int | None, ...] | None:
        """Inferred shape of a tensor (None entries for unknown dims), or None."""
        return self.ranks.get(name)


def _attr_value(attr: "onnx.AttributeProto") -> object:
    from onnx import helper

    return helper.get_attribute_value(attr)


def _signature_compatible(node: "onnx.NodeProto", context: _Context) -> str | None:
    """None when the older schema accepts this node as it is (new features unused), else why not."""
    from onnx import defs

    new = defs.get_schema(node.op_type, context.source, "")
    old = defs.get_schema(node.op_type, context.target, "")
    used_inputs = [i for i, name in enumerate(node.input) if name]
    if used_inputs and used_inputs[-1] >= len(old.inputs):
        return f"uses input '{new.inputs[used_inputs[-1]].name}', which opset {context.target} does not have"
    for index in used_inputs:
        if new.inputs[index].name != old.inputs[index].name:
            return f"input {index} changed meaning ({new.inputs[index].name} vs {old.inputs[index].name})"
    keep = []
    for attr in node.attribute:
        if attr.name in old.attributes:
            keep.append(attr)
            continue
        default = new.attributes.get(attr.name)
        if default is None or not default.default_value.name or _attr_value(default.default_value) != _attr_value(attr):
            return f"uses attribute {attr.name}={_attr_value(attr)!r}, which opset {context.target} does not have"
    del node.attribute[:]
    node.attribute.extend(keep)
    return None


def _reduce_axes_to_attribute(node: "onnx.NodeProto", context: _Context) -> str | None:
    """Reduce* with an `axes` input (opset 18) -> `axes` attribute (opset 13)."""
    from onnx import helper

    axes_as_input_since = 13 if node.op_type == "ReduceSum" else 18
    if context.target >= axes_as_input_since:
        return _signature_compatible(node, context)
    noop = next((int(_attr_value(a)) for a in node.attribute if a.name == "noop_with_empty_axes"), 0)
    axes = None
    if len(node.input) > 1 and node.input[1]:
        if node.input[1] not in context.constants:
            return "its axes input is computed at run time"
        axes = [int(a) for a in context.constants[node.input[1]].reshape(-1)]
    if noop and not axes:
        return "noop_with_empty_axes=1 with no axes"
    attrs = [a for a in node.attribute if a.name not in ("noop_with_empty_axes", "axes")]
    if axes:
        attrs.append(helper.make_attribute("axes", axes))
    del node.attribute[:]
    node.attribute.extend(attrs)
    del node.input[1:]
    return None


for _op in _REDUCE_OPS:  # ReduceSum took its axes as an input from opset 13 on, the others from 18
    DOWNGRADE_ADAPTERS.register(_op, _reduce_axes_to_attribute)


@DOWNGRADE_ADAPTERS.register("BatchNormalization")
def _batchnorm_inference(node: "onnx.NodeProto", context: _Context) -> str | None:
    """BatchNormalization-15/14 -> 9: same inputs (renamed), inference form only (training_mode=0, one output)."""
    if context.target >= 14:
        return _signature_compatible(node, context)
    if any(a.name == "training_mode" and int(_attr_value(a)) for a in node.attribute) or len([o for o in node.output if o]) > 1:
        return "training mode (running statistics outputs) has no opset-9 form"
    attrs = [a for a in node.attribute if a.name != "training_mode"]
    del node.attribute[:]
    node.attribute.extend(attrs)
    return None


@DOWNGRADE_ADAPTERS.register("Split")
def _split_num_outputs(node: "onnx.NodeProto", context: _Context) -> str | None:
    """Split with `num_outputs` (opset 18) -> explicit `split` sizes (opset 13)."""
    if not any(a.name == "num_outputs" for a in node.attribute):
        return _signature_compatible(node, context)
    if context.target < 13:
        return "needs opset 13 or later"
    axis = next((int(_attr_value(a)) for a in node.attribute if a.name == "axis"), 0)
    shape = context.shape(node.input[0])
    if shape is None or shape[axis] is None:
        return "the size of the split axis is not known statically"
    count = len(node.output)
    size = shape[axis]
    chunk = -(-size // count)
    sizes = [chunk] * (count - 1) + [size - chunk * (count - 1)]
    name = f"{node.name or node.output[0]}_split_sizes"
    context.new_initializers.append((name, sizes))
    attrs = [a for a in node.attribute if a.name != "num_outputs"]
    del node.attribute[:]
    node.attribute.extend(attrs)
    del node.input[1:]
    node.input.append(name)
    return None


def _softmax_axis(node: "onnx.NodeProto", context: _Context) -> str | None:
    """Softmax/LogSoftmax/Hardmax-13 -> 11: only when `axis` is the last axis (older ones flatten from `axis` on)."""
    from onnx import helper

    if context.target >= 13:
        return _signature_compatible(node, context)
    shape = context.shape(node.input[0])
    axis = next((int(_attr_value(a)) for a in node.attribute if a.name == "axis"), -1)
    if shape is None:
        return "the input rank is unknown, and the older operator flattens from `axis` on"
    if axis % max(len(shape), 1) != len(shape) - 1:
        return f"axis {axis} is not the last axis, and opset {context.target} flattens from it on"
    attrs = [a for a in node.attribute if a.name != "axis"] + [helper.make_attribute("axis", len(shape) - 1)]
    del node.attribute[:]
    node.attribute.extend(attrs)
    return None


for _op in ("Softmax", "LogSoftmax", "Hardmax"):
    DOWNGRADE_ADAPTERS.register(_op, _softmax_axis)


@DOWNGRADE_ADAPTERS.register("Reshape")
def _reshape_allowzero(node: "onnx.NodeProto", context: _Context) -> str | None:
    """Reshape-14 `allowzero=1` means nothing when the constant shape holds no 0: drop it for opset 13."""
    allowzero = next((int(_attr_value(a)) for a in node.attribute if a.name == "allowzero"), 0)
    if allowzero:
        shape = context.constants.get(node.input[1]) if len(node.input) > 1 else None
        if shape is None:
            return "allowzero=1 with a shape computed at run time"
        if (shape == 0).any():
            return "allowzero=1 with a 0 in the shape"
        attrs = [a for a in node.attribute if a.name != "allowzero"]
        del node.attribute[:]
        node.attribute.extend(attrs)
    return _signature_compatible(node, context)


def downgrade(model: "onnx.ModelProto", target: int, *, path: str | Path = "<model>") -> "onnx.ModelProto":
    """Lower the ai.onnx opset of `model` to `target` with edgecc's adapters; raises listing every blocker."""
    import numpy as np
    from onnx import defs, numpy_helper

    from edgecc.onnxutil import all_graphs, default_opset

    source = default_opset(model)
    model = copy.deepcopy(model)
    context = _Context(model, source, target)
    problems: list[UnsupportedNode] = []
    # every graph: If branches, Loop and Scan bodies are lowered like the main graph (the control-flow node itself
    # only needs its older schema to accept it)
    for node in (n for graph in all_graphs(model.graph) for n in graph.node):
        if node.domain not in ("", "ai.onnx"):
            continue
        try:
            new = defs.get_schema(node.op_type, source, "")
        except defs.SchemaError:
            continue
        try:
            old = defs.get_schema(node.op_type, target, "")
        except defs.SchemaError:
            problems.append(UnsupportedNode(node.name, node.op_type, f"does not exist in opset {target}"))
            continue
        if old.since_version == new.since_version:
            continue
        adapter = DOWNGRADE_ADAPTERS.get(node.op_type) if node.op_type in DOWNGRADE_ADAPTERS else _signature_compatible
        reason = adapter(node, context)
        if reason:
            problems.append(
                UnsupportedNode(node.name, node.op_type, f"{node.op_type}-{new.since_version} -> opset {target}: {reason}")
            )
    if problems:
        raise UnsupportedOperator(
            problems,
            where=f"cannot lower '{path}' from opset {source} to {target}",
            hint=f"keep the model's opset with --opset {source}",
        )
    for name, values in context.new_initializers:
        model.graph.initializer.append(numpy_helper.from_array(np.asarray(values, dtype=np.int64), name))
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = target
    return model


def convert_opset(model: "onnx.ModelProto", target: int, *, path: str | Path = "<model>") -> "onnx.ModelProto":
    """Up- or down-grade the ai.onnx opset; the result is checked, failures are exit-4 errors."""
    import onnx
    from onnx import version_converter

    from edgecc.onnxutil import default_opset

    source = default_opset(model)
    if source == target or source == 0:
        return model
    if not 7 <= target <= onnx.defs.onnx_opset_version():
        raise UsageError(f"--opset {target} is outside the range onnx supports (7..{onnx.defs.onnx_opset_version()})")
    try:
        converted = version_converter.convert_version(model, target)
        _drop_attributes_unknown_to_target(converted, source, target)
        _ir_version_of_opset(converted, target)
        onnx.checker.check_model(converted)
        return converted
    except Exception as exc:  # noqa: BLE001 -- onnx's version converter (RuntimeError) or checker (ValidationError), and more
        onnx_reason = " ".join(str(exc).split())[:300]
        if target > source:
            raise UnsupportedError(
                f"cannot convert '{path}' from opset {source} to {target}: {onnx_reason}",
                path=path,
                hint=f"keep the model's opset with --opset {source}",
            ) from None
        log.info("onnx's version converter failed (%s); using edgecc's downgrade adapters", onnx_reason)
    converted = downgrade(model, target, path=path)
    _ir_version_of_opset(converted, target)
    try:
        onnx.checker.check_model(converted)
    except onnx.checker.ValidationError as exc:
        raise UnsupportedError(
            f"lowering '{path}' from opset {source} to {target} gave an invalid model: {' '.join(str(exc).split())[:300]}",
            path=path,
            hint=f"keep the model's opset with --opset {source}",
        ) from None
    return converted


def _ir_version_of_opset(model: "onnx.ModelProto", opset: int) -> None:
    """Give a converted model the IR version of its new opset (onnx's converter keeps the old one: IR 4 at opset 17).

    Raised only: a lower IR version is never written over a higher one the model already declares."""
    from edgecc.onnxutil import ir_version_for

    model.ir_version = max(model.ir_version, ir_version_for(opset))


def _drop_attributes_unknown_to_target(model: "onnx.ModelProto", source: int, target: int) -> None:
    """Remove attributes onnx's converter left behind that the target schema lacks, when they hold the default."""
    from onnx import defs, helper

    from edgecc.onnxutil import all_graphs

    for node in (n for graph in all_graphs(model.graph) for n in graph.node):
        if node.domain not in ("", "ai.onnx"):
            continue
        try:
            target_schema = defs.get_schema(node.op_type, target, "")
            source_schema = defs.get_schema(node.op_type, source, "")
        except defs.SchemaError:
            continue
        keep = []
        for attr in node.attribute:
            default = source_schema.attributes.get(attr.name)
            if (
                attr.name not in target_schema.attributes
                and default is not None
                and default.default_value.name
                and helper.get_attribute_value(default.default_value) == helper.get_attribute_value(attr)
            ):
                continue
            keep.append(attr)
        if len(keep) != len(node.attribute):
            del node.attribute[:]
            node.attribute.extend(keep)
