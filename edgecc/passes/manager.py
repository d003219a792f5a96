"""The pass manager: runs a pipeline of named passes until nothing changes, and records what each pass did."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from edgecc.passes import PassContext, load_passes

if TYPE_CHECKING:
    import onnx

__all__ = ["PassRecord", "OptimizeReport", "run_passes", "DEFAULT_MAX_ITERATIONS"]

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
    for iteration in range(max_iterations):
        report.iterations = iteration + 1
        changed = False
        for name in names:
            entry = registry.get(name)
            before = set(ir_model.graph.all_nodes())
            start = time.perf_counter()
            outcome = entry.run(ir_model, context)
            if isinstance(outcome, tuple):  # a pass that rebuilds the model (opset conversion)
                ir_model, rewrites = outcome
            else:
                rewrites = outcome
            record = records[name]
            record.seconds += time.perf_counter() - start
            after = set(ir_model.graph.all_nodes())
            removed, added = len(before - after), len(after - before)
            record.runs += 1
            record.rewrites += rewrites
            record.nodes_removed += removed
            record.nodes_added += added
            if rewrites or removed or added:
                changed = True
                log.info("pass %s: %d rewrites, -%d/+%d nodes", name, rewrites, removed, added)
        if not changed:
            report.reached_fixed_point = True
            break
    result = ir.to_proto(ir_model)
    report.nodes_after = len(result.graph.node)
    report.ops_after = _histogram(result)
    return result, report
