"""`edgecc compile in.onnx --target T -o out.edgecc`: partition by cost, emit per-device artifacts, verify, bundle."""

from __future__ import annotations

from typing import Any

import click

from edgecc.commands.common import (
    SEED,
    common_options,
    data_option,
    image_options,
    keep_initializer_inputs_option,
    tolerance_options,
)
from edgecc.ui import Ui

__all__ = ["command", "parse_vendor_options", "show_placement"]


def show_vendor_fallback(ui: Ui, manifest: dict[str, Any]) -> None:
    """Nodes placed on the accelerator whose operator its vendor compiler still left on the CPU (e.g. Vela)."""
    entries = [p for p in manifest.get("placement", []) if p.get("vendor_fallback")]
    if entries:
        ui.message(
            f"{len(entries)} node(s) the vendor compiler runs on the CPU: "
            + "; ".join(f"{p['node']} ({p['op_type']}): {p['vendor_fallback']}" for p in entries[:8])
            + (" ..." if len(entries) > 8 else "")
        )


def show_placement(ui: Ui, result: Any) -> None:
    """The placement summary: partitions, devices, node counts, estimates, transfers, strategy totals."""
    rows = []
    by_part: dict[int, list[dict[str, Any]]] = {}
    for transfer in result.plan.cost.transfers:
        part = transfer.get("to_partition", transfer.get("from_partition"))
        by_part.setdefault(part, []).append(transfer)
    for part in result.partitions:
        moved = by_part.get(part.index, [])
        ops = sorted({result.graph.views[i].op_type for i in part.nodes})
        rows.append(
            [
                f"p{part.index}",
                part.device,
                part.precision,
                len(part.nodes),
                ", ".join(ops)[:48],
                f"{part.estimated_us:.1f}",
                f"{len(moved)} / {sum(t['bytes'] for t in moved)} B / {sum(t['estimated_us'] for t in moved):.1f}",
            ]
        )
    ui.table(
        f"placement on {result.target.name} ({result.precision})",
        ["partition", "device", "precision", "nodes", "ops", "est. us", "transfers (n / bytes / us)"],
        rows,
        justify=["left", "left", "left", "right", "left", "right", "right"],
    )
    strategy_rows = []
    best = result.scores["optimal"].total_us
    for name in ("optimal", "greedy", "first-split", "all-cpu"):
        cost = result.scores[name]
        strategy_rows.append(
            [
                name + (" *" if name == result.plan.strategy else ""),
                cost.partitions,
                f"{cost.compute_us:.1f}",
                f"{cost.launch_us:.1f}",
                f"{cost.transfer_us:.1f}",
                f"{cost.total_us:.1f}",
                f"{cost.total_us / best:.2f}x" if best else "-",
            ]
        )
    ui.table(
        "estimated latency by partitioner (us)",
        ["strategy", "partitions", "compute", "launch", "transfer", "total", "vs optimal"],
        strategy_rows,
        justify=["left", "right", "right", "right", "right", "right", "right"],
    )
    fallback = [(v.name, v.op_type, s.reason) for v, s in zip(result.graph.views, result.support) if not s.supported]
    if fallback and result.target.name != "cpu":
        ui.message(
            f"{len(fallback)} node(s) not supported by {result.target.name}: "
            + "; ".join(f"{n} ({o}): {r}" for n, o, r in fallback[:8])
            + (" ..." if len(fallback) > 8 else "")
        )


def parse_vendor_options(args: tuple[str, ...]) -> dict[str, str]:
    """`KEY=VALUE` pairs of --vendor-option (a malformed one is a usage error, exit 2)."""
    from edgecc.errors import UsageError

    options: dict[str, str] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--vendor-option '{arg}' is not KEY=VALUE", hint="e.g. --vendor-option memory-mode=Shared_Sram")
        options[key.strip()] = value.strip()
    return options


@click.command("compile")
@click.argument("model")
@click.option("--target", "target_name", required=True, help="Target name (`edgecc targets`) or a target description .toml file.")
@click.option("-o", "--out", "out_path", default=None, type=click.Path(), help="Bundle to write (default: MODEL with .edgecc).")
@click.option("--precision", default=None, help="One of the target's precisions (default: its first).")
@data_option("--calibration", "calibration_args", what="Calibration and verification samples")
@click.option(
    "--partitioner",
    type=click.Choice(["optimal", "greedy", "first-split"]),
    default="optimal",
    show_default=True,
    help="Placement strategy.",
)
@click.option("--max-partitions", type=click.IntRange(1), default=None, help="At most this many partitions.")
@click.option(
    "--input",
    "input_specs",
    multiple=True,
    metavar="NAME:DIMS[:DTYPE]",
    help="Fix dynamic input shapes (static targets need them).",
)
@click.option(
    "-O", "--level", type=click.IntRange(0, 3), default=2, show_default=True, help="Optimisation level before partitioning."
)
@click.option(
    "--samples",
    type=click.IntRange(1, 1000),
    default=4,
    show_default=True,
    help="Random samples when no --calibration is given (and with --calibration random).",
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the random samples.")
@click.option("--archive", is_flag=True, help="Write a single .edgecc zip instead of a directory.")
@click.option(
    "--no-vendor-compile",
    "no_vendor_compile",
    is_flag=True,
    help="Do not run the target's vendor compiler (e.g. Vela): the bundle holds the artifact ready for it.",
)
@click.option(
    "--vendor-option",
    "vendor_option_args",
    multiple=True,
    metavar="KEY=VALUE",
    help="Option passed through to the target's vendor compiler (e.g. system-config=Ethos_U55_High_End_Embedded).",
)
@click.option(
    "--min-offload",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    metavar="FRACTION",
    help="Fail (exit 5, nothing written) when the target runs less than this share of the MACs (of the nodes for "
    "a model without MACs).",
)
@click.option(
    "--repair-budget",
    type=click.IntRange(0, 1000),
    default=8,
    show_default=True,
    help="Most layers an integer bundle that misses its tolerance keeps on the CPU in float (0: no repair).",
)
@keep_initializer_inputs_option
@tolerance_options
@image_options
@common_options
def command(
    model: str,
    target_name: str,
    out_path: str | None,
    precision: str | None,
    calibration_args: tuple[str, ...],
    partitioner: str,
    max_partitions: int | None,
    input_specs: tuple[str, ...],
    level: int,
    samples: int,
    seed: int,
    archive: bool,
    no_vendor_compile: bool,
    vendor_option_args: tuple[str, ...],
    min_offload: float | None,
    repair_budget: int,
    keep_initializer_inputs: bool,
    atol: float | None,
    rtol: float | None,
    min_cosine: float | None,
    images: Any,
    ui: Ui,
) -> None:
    """Compile MODEL (ONNX) for an accelerator: partition by estimated cost, emit, verify and bundle.

    \b
    Examples:
      edgecc compile model.onnx --target hisilicon-npu --calibration data/ -o model.edgecc
      edgecc compile model.onnx --target mali-gpu --input data:1x3x224x224 --archive -o model.edgecc
      edgecc compile model.onnx --target my_npu.toml --partitioner greedy -o out.edgecc
    """
    from pathlib import Path

    from edgecc.data import DataOptions, parse_data_values
    from edgecc.inputs import parse_input_specs
    from edgecc.onnxutil import load_onnx
    from edgecc.pipeline.compile import CompileOptions, compile_model
    from edgecc.pipeline.offload import describe_offload, low_offload_warning
    from edgecc.targets import get_target
    from edgecc.verify import tolerance_for

    target = get_target(target_name)
    specs = parse_input_specs(input_specs)
    calibration = parse_data_values(calibration_args, "--calibration")
    if any(s.kind == "random" for s in calibration):
        ui.warn("calibrating on random data: ranges will not match real inputs; use real samples for a deployable model")
    source = load_onnx(model)
    chosen = precision or target.default_precision
    tolerance = None
    if atol is not None or rtol is not None or min_cosine is not None:
        tolerance = tolerance_for(chosen).with_overrides(atol=atol, rtol=rtol, min_cosine=min_cosine)
    options = CompileOptions(
        precision=precision,
        partitioner=partitioner,
        max_partitions=max_partitions,
        level=level,
        keep_initializer_inputs=keep_initializer_inputs,
        min_offload=min_offload,
        repair_budget=repair_budget,
        samples=samples,
        seed=seed,
        tolerance=tolerance,
        vendor_compile=not no_vendor_compile,
        vendor_options=parse_vendor_options(vendor_option_args),
        data=DataOptions(option="--calibration", images=images, finite=True),
    )
    out = out_path or str(Path(model).with_suffix(".edgecc"))
    with ui.status(f"compiling {model} for {target.name}"):
        result = compile_model(
            source,
            target,
            out,
            options=options,
            path=model,
            specs=specs,
            calibration=calibration,
            archive=archive,
            on_plan=lambda r: show_placement(ui, r),
        )
    show_vendor_fallback(ui, result.manifest)
    repair = result.manifest.get("accuracy_repair")
    if repair:
        kept = ", ".join(f"{k['node']} ({k['op_type']}, {k['drop_db']:.1f} dB)" for k in repair["kept_on_cpu"])
        ui.warn(f"accuracy repair: kept {len(repair['kept_on_cpu'])} layer(s) on the CPU in float to meet the tolerance: {kept}")
    for part in result.manifest["partitions"]:
        summary = part.get("vendor", {}).get("summary")
        if summary:
            ui.message(f"{part['name']} ({part['device']}): {summary}")
    offload = result.manifest["offload"]
    ui.message(describe_offload(offload))
    warning = low_offload_warning(offload)
    if warning:
        ui.warn(warning)
    verification = result.manifest["verification"]
    ui.message(
        f"verification: {'passed' if verification['passed'] else 'FAILED'} ("
        + ", ".join(
            f"{o['name']}: cosine {float(o['cosine']):.6f}, max abs {float(o['max_abs']):.3g}" for o in verification["outputs"]
        )
        + ")"
    )
    ui.message(
        f"[green]wrote[/green] {out} ({len(result.partitions)} partition(s), estimated {result.plan.cost.total_us:.1f} us)"
    )
    if ui.json_mode:
        ui.emit_json(
            {
                "ok": True,
                "command": "compile",
                "output": out,
                "target": target.name,
                "precision": result.precision,
                "partitions": result.manifest["partitions"],
                "transfers": result.manifest["transfers"],
                "estimates": result.manifest["estimates"],
                "placement": result.manifest["placement"],
                "offload": offload,
                "verification": verification,
                **({"accuracy_repair": repair} if repair else {}),
            }
        )
