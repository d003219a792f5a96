"""The pass manager: runs a pipeline of named passes until nothing changes, and records what each pass did."""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from edgecc.logs import quiet_loggers
from edgecc.passes.api import PassContext, PassResult, load_passes

if TYPE_CHECKING:
    import onnx
    import onnx_ir as ir

__all__ = ["PassRecord", "OptimizeReport", "PassClaimError", "run_passes", "quiet_loggers", "DEFAULT_MAX_ITERATIONS"]

log = logging.getLogger(__name__)

DEFAULT_MAX_ITERATIONS = 4


@dataclass
class PassRecord:
    """What one pass changed over all iterations."""

    name: str
    runs: int = 0
    rewrites: int = 0
    nodes_removed: int = 0
    nodes_added: int = 0
    seconds: float = 0.0


@dataclass
class OptimizeReport:
    """The pipeline, its iterations, per-pass records and the node counts before and after."""

    pipeline: list[str]
    iterations: int = 0
    reached_fixed_point: bool = False
    nodes_before: int = 0
    nodes_after: int = 0
    ops_before: dict[str, int] = field(default_factory=dict)
    ops_after: dict[str, int] = field(default_factory=dict)
    passes: list[PassRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready report."""
        data = asdict(self)
        data["passes"] = [asdict(p) for p in self.passes]
        return data


class PassClaimError(RuntimeError):
    """A pass returned something other than a PassResult, or said modified=False but changed the model (a bug in the pass)."""


def _histogram(model: "onnx.ModelProto") -> dict[str, int]:
    return dict(sorted(Counter(n.op_type for n in model.graph.node).items()))


def run_passes(
    model: "onnx.ModelProto",
    names: Sequence[str],
    *,
    context: PassContext | None = None,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
) -> tuple["onnx.ModelProto", OptimizeReport]:
    """Run the named passes in order, repeating the pipeline until a fixed point (at most `max_iterations`)."""
    import onnx_ir as ir

    registry = load_passes()
    context = context or PassContext()
    report = OptimizeReport(pipeline=list(names), nodes_before=len(model.graph.node), ops_before=_histogram(model))
    records = {name: PassRecord(name) for name in names}
    report.passes = list(records.values())
    if not names:
        report.nodes_after, report.ops_after, report.reached_fixed_point = report.nodes_before, report.ops_before, True
        return model, report
    ir_model = ir.from_proto(model)
    # onnx_ir and onnxscript warn about every rule that does not apply; show that only when debugging the passes
    quiet = contextlib.nullcontext() if log.isEnabledFor(logging.DEBUG) else quiet_loggers("onnx_ir", "onnxscript")
    with quiet:
        return _iterate(ir_model, names, registry, context, max_iterations, report, records)


_SHAPE_DATA_LIMIT = 4096  # initializers up to this many elements keep their values (shape tensors)


def _light_proto(ir_model):  # noqa: ANN001, ANN202
    """The main graph as a ModelProto whose large initializers are typed inputs without their bytes."""
    import onnx
    import onnx_ir as ir

    model = onnx.ModelProto(ir_version=max(ir_model.ir_version, 4))
    for domain, version in ir_model.opset_imports.items():
        model.opset_import.add(domain=domain, version=version)
    graph = model.graph
    for node in ir_model.graph:
        graph.node.append(ir.serde.serialize_node(node))
    for value in ir_model.graph.inputs:
        graph.input.append(ir.serde.serialize_value(value))
    for value in ir_model.graph.outputs:
        graph.output.append(ir.serde.serialize_value(value))
    inputs = {v.name for v in ir_model.graph.inputs}
    for name, value in ir_model.graph.initializers.items():
        tensor = value.const_value
        if tensor is not None and tensor.size <= _SHAPE_DATA_LIMIT:
            graph.initializer.append(ir.serde.serialize_tensor(tensor))
            graph.initializer[-1].name = name
        elif name not in inputs:
            graph.input.append(ir.serde.serialize_value(value))
    return model


def _annotate_shapes(ir_model) -> None:  # noqa: ANN001
    """Refresh the main graph's tensor shapes with ONNX shape inference (best effort).

    Faster and lighter than onnx_ir's ShapeInferencePass on large graphs: inference
    runs on a copy without the weights' bytes.
    """
    import onnx
    import onnx_ir as ir

    try:
        proto = _light_proto(ir_model)
        inferred = onnx.shape_inference.infer_shapes(proto, check_type=False, strict_mode=False, data_prop=True)
    except Exception as exc:  # noqa: BLE001 -- inference is an aid to the rules, not a requirement
        log.debug("shape inference failed: %s", exc)
        return
    values = {v.name: v for node in ir_model.graph for v in node.outputs if v.name}
    for info in inferred.graph.value_info:
        value = values.get(info.name)
        tensor_type = info.type.tensor_type
        if value is None or not info.type.HasField("tensor_type"):
            continue
        if value.dtype is None and tensor_type.elem_type:
            value.dtype = ir.DataType(tensor_type.elem_type)
        if tensor_type.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor_type.shape.dim]
            value.shape = ir.Shape(dims)


@dataclass(frozen=True)
class _Snapshot:
    """What a pass that says modified=False must leave as it was: the model object, its nodes, initializers and outputs.

    Initializers are compared as a set of names: their order carries no meaning
    (onnx_ir's ShapeInferencePass re-adds large ones at the end and rightly says
    modified=False).
    """

    model: "ir.Model"
    nodes: frozenset["ir.Node"]
    initializers: frozenset[str]
    outputs: tuple["ir.Value", ...]

    @classmethod
    def of(cls, model: "ir.Model") -> "_Snapshot":
        graph = model.graph
        return cls(model, frozenset(graph.all_nodes()), frozenset(graph.initializers), tuple(graph.outputs))

    def changes(self, other: "_Snapshot") -> list[str]:
        """What differs in `other`, in words (empty when nothing does)."""
        checks = {
            "returned another model": self.model is not other.model,
            "changed the nodes": self.nodes != other.nodes,
            "changed the initializers": self.initializers != other.initializers,
            "changed the graph outputs": self.outputs != other.outputs,
        }
        return [what for what, differs in checks.items() if differs]


def _run_one(ir_model, name, registry, context, records) -> PassResult:  # noqa: ANN001
    """Run one pass, check its claim and record it."""
    entry = registry.get(name)
    before = _Snapshot.of(ir_model)
    start = time.perf_counter()
    result = entry.run(ir_model, context)
    record = records[name]
    record.seconds += time.perf_counter() - start
    if not isinstance(result, PassResult):
        raise PassClaimError(f"pass {name} returned {type(result).__name__}, not a PassResult")
    after = _Snapshot.of(result.model)
    if not result.modified and (changes := before.changes(after)):
        raise PassClaimError(f"pass {name} said it did not modify the model but {', '.join(changes)}")
    removed, added = len(before.nodes - after.nodes), len(after.nodes - before.nodes)
    record.runs += 1
    record.rewrites += result.rewrites
    record.nodes_removed += removed
    record.nodes_added += added
    if result.modified:
        log.info("pass %s: %d rewrites, -%d/+%d nodes", name, result.rewrites, removed, added)
    return result


def _iterate(ir_model, names, registry, context, max_iterations, report, records):  # noqa: ANN001, ANN202
    """Repeat the rewriting passes until none changes the model, then run the run-once passes."""
    import onnx_ir as ir

    repeated = [n for n in names if not registry.get(n).once]
    first = [n for n in names if n == "normalize-opset"]  # convert first: rewrites then target the final opset
    for name in first:
        ir_model = _run_one(ir_model, name, registry, context, records).model
    for iteration in range(max_iterations):
        report.iterations = iteration + 1
        _annotate_shapes(ir_model)  # rewrites check ranks and shapes
        changed = False
        for name in repeated:
            result = _run_one(ir_model, name, registry, context, records)
            ir_model, changed = result.model, changed or result.modified
        if not changed:
            report.reached_fixed_point = True
            break
    for name in names:
        if registry.get(name).once and name not in first:
            ir_model = _run_one(ir_model, name, registry, context, records).model
    result = ir.to_proto(ir_model)
    report.nodes_after = len(result.graph.node)
    report.ops_after = _histogram(result)
    return result, report
