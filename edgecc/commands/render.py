"""The CLI's rendering of edgecc reports (verification, per-layer, model info, passes, quantisation) as tables through a Ui."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from edgecc.modelinfo import format_bytes, format_count

if TYPE_CHECKING:
    from edgecc.modelinfo import ModelInfo
    from edgecc.passes import OptimizeReport
    from edgecc.quantization.report import QuantReport
    from edgecc.ui import Ui
    from edgecc.verify import PerLayerReport, VerificationReport

__all__ = ["show_verification", "show_per_layer", "show_model_info", "show_optimize_report", "show_quant_report"]


def _num(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return f"{value:.{digits}g}"


def show_verification(ui: "Ui", report: "VerificationReport") -> None:
    """The metrics table of a verification, one row per output."""
    rows = []
    for o in report.outputs:
        rows.append(
            [
                o.name,
                "x".join(map(str, o.shape)),
                _num(o.max_abs),
                _num(o.mean_abs),
                _num(o.rel_l2),
                f"{o.cosine:.6f}" if not math.isnan(o.cosine) else "nan",
                _num(o.sqnr_db, 4),
                "-" if o.top1 is None else f"{o.top1:.0%}",
                "[green]ok[/green]" if o.passed else f"[red]FAIL[/red] {o.reason}",
            ]
        )
    notes = f" ({'; '.join(report.notes)})" if report.notes else ""
    title = f"verification: {report.candidate} vs {report.reference}, {report.samples} sample(s){notes}"
    ui.table(
        title,
        ["output", "shape", "max abs", "mean abs", "rel L2", "cosine", "SQNR dB", "top-1", "result"],
        rows,
        justify=["left", "left", "right", "right", "right", "right", "right", "right", "left"],
    )


def show_per_layer(ui: "Ui", report: "PerLayerReport", *, limit: int = 40) -> None:
    """Shared tensors in graph order, stopping a few rows after the first divergence."""
    rows = []
    for index, layer in enumerate(report.layers):
        m = layer.metrics
        rows.append(
            [
                layer.tensor,
                f"{layer.node} ({layer.op_type})",
                _num(m.max_abs),
                f"{m.cosine:.6f}",
                "[green]ok[/green]" if m.passed else "[red]diverges[/red]",
            ]
        )
        if report.first_divergence is layer or index + 1 >= limit:
            break
    ui.table(
        f"per-layer comparison ({len(report.layers)} shared tensors)", ["tensor", "node", "max abs", "cosine", "result"], rows
    )
    if report.first_divergence is not None:
        layer = report.first_divergence
        ui.message(
            f"first divergence: tensor '{layer.tensor}' from node '{layer.node}' ({layer.op_type}): {layer.metrics.reason}"
        )
    elif report.layers:
        ui.message("no shared tensor diverges")
    else:
        ui.message("the two graphs share no intermediate tensor names")


def show_model_info(ui: "Ui", info: "ModelInfo", title: str) -> None:
    """Inputs/outputs, summary numbers and the op histogram."""
    io_rows = [["input", i.name, i.shape_text(), i.dtype] for i in info.inputs]
    io_rows += [["output", o.name, o.shape_text(), o.dtype] for o in info.outputs]
    ui.table(title, ["", "name", "shape", "dtype"], io_rows)
    opsets = ", ".join(f"{d} {v}" for d, v in info.opsets.items())
    summary = [
        ["opsets", opsets],
        ["IR version", info.ir_version],
        ["producer", info.producer or "-"],
        ["nodes", info.nodes],
        ["parameters", f"{format_count(info.parameters)} ({info.parameters})"],
        ["parameter bytes", format_bytes(info.parameter_bytes)],
        [
            "MACs",
            f"{format_count(info.macs)} ({info.macs})"
            + (f", {len(info.macs_unknown_nodes)} node(s) with unknown shapes" if info.macs_unknown_nodes else ""),
        ],
    ]
    for key, value in info.source.items():
        summary.append([f"source {key}", value if not isinstance(value, list) else ", ".join(map(str, value))])
    ui.table(None, ["", ""], summary)
    ui.table(
        "operators",
        ["op type", "count", "MACs"],
        [[op, count, format_count(info.macs_by_op[op]) if op in info.macs_by_op else ""] for op, count in info.op_histogram],
        justify=["left", "right", "right"],
    )


def show_optimize_report(ui: "Ui", report: "OptimizeReport") -> None:
    """Per-pass rewrites and node changes, and the totals."""
    rows = [[p.name, p.rewrites, p.nodes_removed, p.nodes_added, f"{p.seconds * 1000:.0f} ms"] for p in report.passes]
    title = f"passes: {report.nodes_before} -> {report.nodes_after} nodes in {report.iterations} iteration(s)" + (
        "" if report.reached_fixed_point else " (stopped at the iteration limit)"
    )
    ui.table(
        title,
        ["pass", "rewrites", "nodes removed", "nodes added", "time"],
        rows,
        justify=["left", "right", "right", "right", "right"],
    )


def show_quant_report(ui: "Ui", report: "QuantReport", *, layer_limit: int = 15) -> None:
    """Rich tables: output agreement, the worst layers, sizes and the settings."""
    if not report.outputs:
        ui.message("accuracy not measured: no samples (give --calibration DATA to get the comparison with the float model)")
    rows = []
    for o in report.outputs:
        rows.append(
            [
                o.name,
                f"{o.cosine:.6f}" if math.isfinite(o.cosine) else "nan",
                _num(o.sqnr_db, 4),
                "-" if o.top1 is None else f"{o.top1:.1%}",
                _num(o.max_abs),
            ]
        )
    if rows:
        ui.table(
            f"quantised ({report.scheme}) vs float, {report.evaluation_samples} held-out sample(s)",
            ["output", "cosine", "SQNR dB", "top-1 agree", "max abs"],
            rows,
            justify=["left", "right", "right", "right", "right"],
        )
    if report.layers:
        worst = sorted(report.layers, key=lambda layer: -layer.drop_db if math.isfinite(layer.drop_db) else float("-inf"))[
            :layer_limit
        ]
        ui.table(
            f"layers with the largest SQNR drop (of {len(report.layers)})",
            ["node", "op", "SQNR dB", "drop dB", "quantised"],
            [[x.node, x.op_type, _num(x.sqnr_db, 4), _num(x.drop_db, 3), "yes" if x.quantized else "float"] for x in worst],
            justify=["left", "left", "right", "right", "left"],
        )
    ui.message(f"size: {report.size_before:,} -> {report.size_after:,} bytes ({report.size_ratio:.2f}x)")
    if report.float_layers:
        ui.message(f"kept in float to reach the accuracy goal: {', '.join(report.float_layers)}")
    if report.goal is not None:
        ui.message(
            f"accuracy goal {report.goal['metric']} >= {report.goal['target']}: reached {report.goal['value']:.6g} "
            f"({'met' if report.goal['met'] else '[red]not met[/red]'})"
        )
    for note in report.notes:
        ui.message(f"note: {note}")
