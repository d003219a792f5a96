"""The manifest of a compiled bundle: partitions, transfers, estimates and the per-node placement with its reason.

The placement-reason policy lives here: a node on the accelerator is "supported"; a node the target cannot run
carries every failed constraint; a supported node left on the CPU was cheaper there; a node the vendor compiler
(e.g. Vela) still runs on the CPU is marked with the vendor's reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecc.bundle import FORMAT, SCHEMA_VERSION

if TYPE_CHECKING:
    import onnx

    from edgecc.pipeline.result import CompileResult
    from edgecc.targets.graph import ModelGraph
    from edgecc.targets.plan import PartitionSpec

__all__ = ["make_manifest", "placement_reason"]


def _tensor_entry(name: str, graph: ModelGraph) -> dict[str, Any]:
    shape = graph.shapes.get(name)
    dims = [d if isinstance(d, (int, str)) else None for d in shape] if shape is not None else None
    return {
        "name": name,
        "dtype": graph.dtypes.get(name, "float32"),
        "shape": dims,
        "layout": "NCHW" if dims is not None and len(dims) == 4 else "",
    }


def placement_reason(result: CompileResult, index: int, device: str) -> str:
    """Why node `index` runs on `device`."""
    verdict = result.support[index]
    if device == result.target.name:
        return "supported"
    if result.target.name == "cpu":
        return "cpu target"
    if not verdict.supported:
        return verdict.reason
    return "supported, but cheaper on the CPU (fewer switches/transfers)"


def _vendor_fallback(
    graph: ModelGraph, partitions: Sequence[PartitionSpec], vendor: Sequence[Mapping[str, Any]]
) -> dict[tuple[int, int], str]:
    """(partition, node index) -> why the vendor compiler left the operator writing that node's output on the CPU."""
    producer = {out: i for i, view in enumerate(graph.views) for out in view.outputs if out}
    found: dict[tuple[int, int], str] = {}
    for part, info in zip(partitions, vendor):
        for entry in info.get("cpu_fallback", ()) if info else ():
            index = producer.get(entry.get("tensor", ""))
            if index is not None and index in part.nodes:
                text = f"{entry.get('op', '?')} left on the CPU by the vendor compiler"
                found[(part.index, index)] = text + (f": {entry['reason']}" if entry.get("reason") else "")
    return found


def make_manifest(
    result: CompileResult,
    *,
    source: onnx.ModelProto,
    source_path: str,
    stage: Path,
    artifacts: Sequence[Sequence[Path]],
    vendor: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The manifest of a compiled bundle (its verification is filled in afterwards)."""
    from edgecc import __version__
    from edgecc.fileio import sha256_of
    from edgecc.onnxutil import serialize_onnx
    from edgecc.targets import get_target

    graph = result.graph
    partitions = []
    vendor = list(vendor) or [{} for _ in artifacts]
    for part, files, info in zip(result.partitions, artifacts, vendor):
        device = result.target if part.device == result.target.name else get_target(part.device)
        entry = {
            "index": part.index,
            "name": f"p{part.index}",
            "device": part.device,
            "precision": part.precision,
            "artifact": files[0].relative_to(stage).as_posix(),
            "files": [
                {"path": f.relative_to(stage).as_posix(), "sha256": sha256_of(f), "bytes": f.stat().st_size} for f in files
            ],
            "inputs": [_tensor_entry(t, graph) for t in part.inputs],
            "outputs": [_tensor_entry(t, graph) for t in part.outputs],
            "nodes": len(part.nodes),
            "estimated_us": round(part.estimated_us, 3),
            "conversions": list(info.get("conversions", [])),
            "execution": device.execution(part.precision),
        }
        if info:
            entry["vendor"] = {k: v for k, v in info.items() if k != "conversions"}
        partitions.append(entry)
    run_of = {i: p.index for p in result.partitions for i in p.nodes}
    vendor_fallback = _vendor_fallback(graph, result.partitions, vendor)
    placement = []
    for index, view in enumerate(graph.views):
        part = result.partitions[run_of[index]]
        entry = {
            "node": view.name,
            "op_type": view.op_type,
            "device": part.device,
            "partition": part.index,
            "reason": placement_reason(result, index, part.device),
        }
        fallback = vendor_fallback.get((part.index, index))
        if fallback:
            entry["vendor_fallback"] = fallback
        placement.append(entry)
    from edgecc.pipeline.offload import offload_summary

    offload = offload_summary(graph, result.partitions, result.target.name, vendor_fallback)
    estimates = {"partitioner": result.plan.strategy, "chosen_from": result.plan.chosen_from, "exact": result.plan.exact}
    for name, breakdown in result.scores.items():
        estimates[name] = breakdown.to_dict()
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "edgecc_version": __version__,
        "target": {
            "name": result.target.name,
            "precision": result.precision,
            "description": result.target.description,
            "source": result.target.source,
        },
        "source_model": {"path": Path(source_path).name, "sha256": hashlib.sha256(serialize_onnx(source)).hexdigest()},
        "preparation": dict(result.preparation),
        "inputs": [_tensor_entry(t, graph) for t in graph.graph_inputs],
        "outputs": [_tensor_entry(t, graph) for t in graph.graph_outputs],
        "partitions": partitions,
        "transfers": [
            {k: (round(v, 3) if isinstance(v, float) else v) for k, v in t.items()} for t in result.plan.cost.transfers
        ],
        "placement": placement,
        "offload": offload,
        "estimates": estimates,
        "reference": {"inputs": "reference/inputs.npz", "outputs": "reference/outputs.npz", "samples": 0},
        "verification": None,
    }
