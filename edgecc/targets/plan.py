"""Placement of a model on a target: support check, the partitioning problem and its solution, partition extraction.

The compile driver (`edgecc.pipeline.compile`) optimises, calls these, emits each partition with its target and
verifies the bundle.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecc.errors import UnsupportedError, UsageError
from edgecc.targets.api import BYTES_PER_ELEMENT, CheckResult, Target
from edgecc.targets.graph import ModelGraph, analyse
from edgecc.targets.partition import Breakdown, Device, Plan, Problem, solve

if TYPE_CHECKING:
    import numpy as np
    import onnx


__all__ = [
    "GLUE_OPS",
    "PartitionSpec",
    "boundary_values",
    "build_problem",
    "check_support",
    "constant_nodes",
    "extract_partition",
    "partitions_of",
    "plan_model",
    "precision_of",
    "require_calibration",
    "require_static",
    "sink_constant_nodes",
]

log = logging.getLogger(__name__)


@dataclass
class PartitionSpec:
    """One partition of the plan: device, nodes and boundary tensors."""

    index: int
    device: str
    precision: str
    nodes: list[int]
    inputs: list[str]
    outputs: list[str]
    estimated_us: float
    extract: list[int] = field(default_factory=list)  # nodes of the emitted model: own live nodes + copies of constant producers


def check_support(
    model: onnx.ModelProto,
    target: Target,
    *,
    precision: str | None = None,
    keep_on_cpu: Mapping[str, str] | None = None,
) -> tuple[ModelGraph, list[CheckResult]]:
    """Every node's verdict on `target` at `precision` (all checks run); the `keep_on_cpu` nodes (name -> reason) are
    refused."""
    import dataclasses

    from edgecc.onnxutil import infer_shapes

    graph = analyse(infer_shapes(model))
    kept = keep_on_cpu if keep_on_cpu and target.name != "cpu" else {}
    support = [
        CheckResult(False, (kept[view.name],))
        if view.name in kept
        else target.check(dataclasses.replace(view, precision=precision))
        for view in graph.views
    ]
    if target.maps_prefix_only:
        support = _prefix_only(graph, support, target)
    return graph, support


def _prefix_only(graph: ModelGraph, support: list[CheckResult], target: Target) -> list[CheckResult]:
    """A vendor compiler that stops at the first unsupported node (Edge TPU): every later node stays on the CPU."""
    first = next((i for i, verdict in enumerate(support) if not verdict.supported), None)
    if first is None:
        return support
    stop = graph.views[first]
    reason = (
        f"after '{stop.name}' ({stop.op_type}), the first node {target.name} cannot run, its compiler maps no "
        "further operators (they run on the CPU)"
    )
    return [*support[: first + 1], *(CheckResult(False, (reason,)) for _ in support[first + 1 :])]


def precision_of(target: Target, precision: str | None) -> str:
    """The precision a compile for `target` runs at: `precision` if the target has it (usage
    error otherwise), else its default."""
    if precision is None:
        return target.default_precision
    if precision not in target.precisions:
        raise UsageError(f"target '{target.name}' runs {', '.join(target.precisions)}, not {precision}")
    return precision


#: ops that only move or re-encode data: an accelerator partition of nothing else is pointless
GLUE_OPS = frozenset(
    {"QuantizeLinear", "DequantizeLinear", "Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose"}
)


def build_problem(
    graph: ModelGraph, support: Sequence[CheckResult], target: Target, precision: str, initializers: set[str] | None = None
) -> Problem:
    """The partitioning problem: CPU fallback (device 0) and the target (device 1, unless it is the CPU)."""
    from edgecc.targets import get_target

    constant_producer = constant_nodes(graph.views, initializers or set())
    cpu = get_target("cpu")
    cpu_precision = precision if target.name == "cpu" else "fp32"
    devices = [Device("cpu", cpu.cost.launch_us, cpu.memory, BYTES_PER_ELEMENT[cpu_precision])]
    if target.name != "cpu":
        devices.append(Device(target.name, target.cost.launch_us, target.memory, BYTES_PER_ELEMENT.get(precision, 4)))
    tensors: dict[str, int] = {}
    producer: list[int] = []
    for name in graph.graph_inputs:
        tensors[name] = len(producer)
        producer.append(-1)
    node_inputs: list[list[int]] = []
    node_outputs: list[list[int]] = []
    compute: list[list[float]] = []
    cpu_check = cpu.check
    for index, view in enumerate(graph.views):
        reads = sorted({tensors[t] for t in _reads(view) if t in tensors})
        node_inputs.append(reads)
        outs = []
        for out in view.outputs:
            if out and out not in constant_producer:  # made from constants: copied where read, never transferred
                tensors[out] = len(producer)
                producer.append(index)
                outs.append(tensors[out])
        node_outputs.append(outs)
        if view.op_type == "Constant":  # pure data, copied into each partition that reads it: its reader decides
            compute.append([0.0] * len(devices))
            continue
        row = [
            cpu.cost.node_us(graph.macs[index], graph.node_bytes[index], cpu_precision) if cpu_check(view).supported else math.inf
        ]
        if target.name != "cpu":
            ok = support[index].supported
            row.append(target.cost.node_us(graph.macs[index], graph.node_bytes[index], precision) if ok else math.inf)
        if all(c == math.inf for c in row):
            from edgecc.errors import UnsupportedNode, UnsupportedOperator

            bad = [UnsupportedNode(v.name, v.op_type, cpu_check(v).reason) for v in graph.views if not cpu_check(v).supported]
            raise UnsupportedOperator(bad, where="no device (not even the CPU fallback) can run")
        compute.append(row)
    names = [""] * len(producer)
    for name, tid in tensors.items():
        names[tid] = name
    elements = [graph.elements.get(name, 1) for name in names]
    outputs = {tensors[o] for o in graph.graph_outputs if o in tensors}
    follows = {i for i in set(constant_producer.values()) if i + 1 < len(graph.views)}
    glue = {i for i, view in enumerate(graph.views) if view.op_type in GLUE_OPS}
    return Problem(devices, compute, node_inputs, node_outputs, elements, producer, outputs, names, follows, glue)


def _reads(view: Any) -> list[str]:
    return [t for t in view.inputs if t]


def plan_model(
    model: onnx.ModelProto,
    target: Target,
    *,
    precision: str | None = None,
    partitioner: str = "optimal",
    max_partitions: int | None = None,
    keep_on_cpu: Mapping[str, str] | None = None,
) -> tuple[ModelGraph, list[CheckResult], Problem, Plan, dict[str, Breakdown]]:
    """Support check + partitioning of an (optimised) model; `keep_on_cpu`: node name -> why it must stay on the CPU
    (compile's accuracy repair), whatever the target supports."""
    precision = precision_of(target, precision)
    graph, support = check_support(model, target, precision=precision, keep_on_cpu=keep_on_cpu)
    problem = build_problem(graph, support, target, precision, {i.name for i in model.graph.initializer})
    try:
        plan, scores = solve(problem, partitioner, max_partitions=max_partitions)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return graph, support, problem, plan, scores


def _constant_producers(nodes: Sequence[tuple[str, Sequence[str], Sequence[str]]], initializers: set[str]) -> dict[str, int]:
    """Tensor -> index of the node making it from constants only, for nodes given as (op type, inputs, outputs)."""
    constant = set(initializers)
    producers: dict[str, int] = {}
    for index, (op_type, inputs, outputs) in enumerate(nodes):
        if all(not t or t in constant for t in inputs) and (len(inputs) > 0 or op_type == "Constant"):
            for out in outputs:
                if out:
                    constant.add(out)
                    producers[out] = index
    return producers


def constant_nodes(views: Sequence[Any], initializers: set[str]) -> dict[str, int]:
    """Tensor -> index of the node making it from constants only (Constant, DequantizeLinear of a weight, ...)."""
    return _constant_producers([(v.op_type, v.inputs, v.outputs) for v in views], initializers)


def sink_constant_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same model with every constant-only node moved just before its first consumer (still topological).

    Quantised models list all weight DequantizeLinear nodes first; in execution order they would then belong to the
    first partition and cross every boundary as tensors.
    """
    import onnx

    graph = model.graph
    producers = _constant_producers([(n.op_type, n.input, n.output) for n in graph.node], {i.name for i in graph.initializer})
    is_constant = set(producers.values())
    placed: set[int] = set()
    order: list[int] = []

    def place(index: int) -> None:
        if index in placed:
            return
        placed.add(index)
        for t in graph.node[index].input:
            if t in producers:
                place(producers[t])
        order.append(index)

    for index in range(len(graph.node)):
        if index not in is_constant:
            place(index)  # places the constant producers it reads first
    for index in range(len(graph.node)):  # constants nobody reads (or only graph outputs) keep their place at the end
        place(index)
    if order == list(range(len(graph.node))):
        return model
    result = onnx.ModelProto()
    result.CopyFrom(model)
    del result.graph.node[:]
    result.graph.node.extend(graph.node[i] for i in order)
    return result


def partitions_of(
    graph: ModelGraph, problem: Problem, plan: Plan, target: Target, precision: str, initializers: set[str] | None = None
) -> list[PartitionSpec]:
    """Partition boundaries: inputs read from outside, outputs read outside or graph outputs.

    Tensors made from constants only never cross a boundary: each partition that reads one gets its own copy of the
    nodes that make it (`extract`).
    """
    runs = plan.cost.runs
    constant_producer = constant_nodes(graph.views, initializers or set())
    produced_in: dict[str, int] = {}
    for r, (_, first, last) in enumerate(runs):
        for i in range(first, last + 1):
            for out in graph.views[i].outputs:
                if out:
                    produced_in[out] = r
    read_by: dict[str, set[int]] = {}
    for r, (_, first, last) in enumerate(runs):
        for i in range(first, last + 1):
            for t in _reads(graph.views[i]):
                read_by.setdefault(t, set()).add(r)
    specs = []
    graph_outputs = set(graph.graph_outputs)
    for r, (device, first, last) in enumerate(runs):
        nodes = list(range(first, last + 1))
        inputs: list[str] = []
        for i in nodes:
            for t in _reads(graph.views[i]):
                if t in constant_producer:
                    continue
                if t not in inputs and produced_in.get(t, -1) != r and (t in produced_in or t in graph.graph_inputs):
                    inputs.append(t)
        outputs = []
        for i in nodes:
            for t in graph.views[i].outputs:
                if t and (t in graph_outputs or (t not in constant_producer and read_by.get(t, set()) - {r})):
                    outputs.append(t)
        extract = _live_nodes(graph, nodes, outputs, constant_producer)
        device_name = problem.devices[device].name
        part_precision = precision if device_name == target.name else "fp32"
        estimate = sum(problem.compute[i][device] for i in nodes) + problem.devices[device].launch_us
        specs.append(PartitionSpec(r, device_name, part_precision, nodes, inputs, outputs, estimate, extract))
    return specs


def _live_nodes(
    graph: ModelGraph, nodes: Sequence[int], outputs: Sequence[str], constant_producer: Mapping[str, int]
) -> list[int]:
    """The partition's nodes that feed its outputs, plus the constant-only nodes (wherever placed) they read."""
    own = set(nodes)
    needed = set(outputs)
    keep: set[int] = set()
    for i in sorted(own, reverse=True):
        view = graph.views[i]
        if any(o in needed for o in view.outputs if o):
            keep.add(i)
            needed.update(t for t in view.inputs if t)
    stack = [t for i in keep for t in graph.views[i].inputs if t in constant_producer]
    while stack:
        producer = constant_producer[stack.pop()]
        if producer not in keep:
            keep.add(producer)
            stack.extend(t for t in graph.views[producer].inputs if t in constant_producer)
    return sorted(keep)


def extract_partition(
    model: onnx.ModelProto, nodes: Sequence[int], inputs: Sequence[str], outputs: Sequence[str], name: str
) -> onnx.ModelProto:
    """A standalone ONNX model of some nodes of `model` (shape-inferred), with the weights they use."""
    import onnx
    from onnx import helper

    graph = model.graph
    value_infos = {vi.name: vi for vi in [*graph.input, *graph.value_info, *graph.output]}
    picked = [graph.node[i] for i in nodes]
    used = {t for n in picked for t in n.input if t}
    initializers = [init for init in graph.initializer if init.name in used]

    def info(tensor: str) -> onnx.ValueInfoProto:
        if tensor in value_infos:
            vi = onnx.ValueInfoProto()
            vi.CopyFrom(value_infos[tensor])
            return vi
        return helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None)

    internal = {t for n in picked for t in n.output if t} - set(outputs)
    sub = helper.make_graph(
        picked,
        name,
        [info(t) for t in inputs],
        [info(t) for t in outputs],
        initializer=initializers,
        value_info=[value_infos[t] for t in sorted(internal) if t in value_infos],
    )
    result = helper.make_model(sub, opset_imports=list(model.opset_import), ir_version=model.ir_version, producer_name="edgecc")
    return result


def boundary_values(
    model: onnx.ModelProto, names: Sequence[str], feeds: Sequence[Mapping[str, np.ndarray]]
) -> list[dict[str, np.ndarray]]:
    """The float values of intermediate tensors `names` for every feed (calibration data of later partitions)."""
    from edgecc.onnxutil import with_outputs
    from edgecc.ortrun import OrtRunner

    inputs = {i.name for i in model.graph.input}
    wanted = [n for n in names if n not in inputs]
    runner = OrtRunner(with_outputs(model, wanted), name="float model", optimize=False) if wanted else None
    values = []
    for feed in feeds:
        result = dict(runner.run(feed, wanted)) if runner else {}
        result.update({k: v for k, v in feed.items() if k in names})
        values.append(result)
    return values


def require_static(model: onnx.ModelProto, target: Target, path: str) -> None:
    """Targets that need static shapes reject dynamic inputs, naming them (exit 4)."""
    from edgecc.onnxutil import graph_inputs

    dynamic = [i for i in graph_inputs(model) if not i.is_static()]
    if target.static_shapes and dynamic:
        names = ", ".join(f"'{i.name}' ({i.shape_text()})" for i in dynamic)
        fix = " ".join(
            f"--input {i.name}:{'x'.join(str(d) if isinstance(d, int) and d >= 0 else '1' for d in (i.shape or ()))}"
            for i in dynamic
        )
        raise UnsupportedError(
            f"target '{target.name}' needs static shapes, but input(s) {names} of {path} are dynamic",
            hint=f"fix them, e.g. {fix}",
            path=path,
        )


def require_calibration(
    model: onnx.ModelProto, target: Target, precision: str, calibration: Sequence[Mapping[str, np.ndarray]], path: str
) -> None:
    """Targets whose integer artifacts must carry real scales refuse to quantise a float model on random samples (exit 3)."""
    from edgecc.targets.precision import is_quantized

    if target.requires_calibration and precision in ("int8", "int16") and not calibration and not is_quantized(model):
        from edgecc.errors import InvalidInputError

        raise InvalidInputError(
            f"target '{target.name}' runs {precision} only, and {Path(path).name} is a float model: its "
            "quantisation scales need calibration data",
            path=path,
            hint="give --calibration DATA (NAME=FILE.npy|.npz or a folder of samples), or compile a model "
            "quantised by 'edgecc quantize'",
        )
