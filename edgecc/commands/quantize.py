"""`edgecc quantize in.onnx -o out.onnx --calibration DATA`: static int8/int16, dynamic or fp16, with a report."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from edgecc.commands.common import SEED, common_options, data_option, image_options, split_names
from edgecc.ui import Ui

if TYPE_CHECKING:
    from edgecc.data import ImageOptions

__all__ = ["command"]


@click.command("quantize")
@click.argument("model")
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Output .onnx file.")
@data_option("--calibration", "calibration", what="Calibration samples")
@click.option(
    "--mode",
    type=click.Choice(["static", "dynamic", "fp16"]),
    default=None,
    help="static (default with --calibration), dynamic (default without), fp16.",
)
@click.option("--target", "target_name", default=None, help="Take the scheme from this target's description.")
@click.option(
    "--method",
    type=click.Choice(["minmax", "percentile", "entropy", "mse"]),
    default="percentile",
    show_default=True,
    help="Activation range calibration.",
)
@click.option("--percentile", type=float, default=99.999, show_default=True, help="Percentile for --method percentile.")
@click.option(
    "--activations",
    "activation_type",
    type=click.Choice(["uint8", "int8", "int16"]),
    default=None,
    help="Activation type (default uint8).",
)
@click.option("--weights", "weight_type", type=click.Choice(["int8", "uint8"]), default=None, help="Weight type (default int8).")
@click.option(
    "--symmetric/--asymmetric",
    "symmetric",
    default=None,
    help="Symmetric activations (weights are always symmetric unless --asymmetric-weights).",
)
@click.option("--asymmetric-weights", is_flag=True, help="Asymmetric weights.")
@click.option("--per-channel/--per-tensor", "per_channel", default=None, help="Per-channel weights (default) or per-tensor.")
@click.option(
    "--integer-io", is_flag=True, default=None, help="Integer graph inputs/outputs (scale/zero point in metadata and report)."
)
@click.option("--format", "quant_format", type=click.Choice(["qdq", "qoperator"]), default="qdq", show_default=True)
@click.option("--exclude", "exclude", multiple=True, metavar="NODE|OP,...", help="Node names or op types to keep in float.")
@click.option("--cle", is_flag=True, help="Cross-layer equalisation of consecutive Conv/Gemm weights.")
@click.option("--bias-correction", is_flag=True, help="Correct the output shift that weight quantisation causes.")
@click.option("--accuracy-goal", type=float, default=None, help="Return the most harmful layers to float until this is met.")
@click.option("--goal-metric", type=click.Choice(["cosine", "top1", "sqnr"]), default="cosine", show_default=True)
@click.option(
    "--repair-budget",
    type=click.IntRange(0, 1000),
    default=8,
    show_default=True,
    help="Most layers --accuracy-goal returns to float.",
)
@click.option(
    "--holdout", type=float, default=0.2, show_default=True, help="Fraction of calibration samples held out for the report."
)
@click.option("--max-samples", type=click.IntRange(1), default=512, show_default=True)
@click.option("--keep-io-float16", is_flag=True, help="fp16: make inputs/outputs float16 too (default: they stay float32).")
@click.option("--fp32-ops", "fp32_ops", multiple=True, metavar="OP,...", help="fp16: op types kept in fp32.")
@click.option("--keep-sensitive-fp32", is_flag=True, help="fp16: keep Softmax, LayerNorm, Resize, reductions, Exp/Log in fp32.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None, help="Write the report as JSON here.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@image_options
@common_options
def command(
    model: str,
    out_path: str,
    calibration: tuple[str, ...],
    mode: str | None,
    target_name: str | None,
    method: str,
    percentile: float,
    activation_type: str | None,
    weight_type: str | None,
    symmetric: bool | None,
    asymmetric_weights: bool,
    per_channel: bool | None,
    integer_io: bool | None,
    quant_format: str,
    exclude: tuple[str, ...],
    cle: bool,
    bias_correction: bool,
    accuracy_goal: float | None,
    goal_metric: str,
    repair_budget: int,
    holdout: float,
    max_samples: int,
    keep_io_float16: bool,
    fp32_ops: tuple[str, ...],
    keep_sensitive_fp32: bool,
    report_path: str | None,
    seed: int,
    images: "ImageOptions",
    ui: Ui,
) -> None:
    """Quantise MODEL (static int8 with --calibration, dynamic, or fp16) and report the accuracy it cost.

    \b
    Examples:
      edgecc quantize model.onnx --calibration images/ --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 -o model_int8.onnx
      edgecc quantize model.onnx --calibration calib.npz --cle --bias-correction --report q.json -o model_int8.onnx
      edgecc quantize model.onnx --calibration calib/ --accuracy-goal 0.999 -o model_int8.onnx
      edgecc quantize model.onnx --target ethos-u55 --calibration calib/ -o model_int8.onnx
      edgecc quantize model.onnx --mode fp16 --keep-sensitive-fp32 -o model_fp16.onnx
    """
    import dataclasses
    import json

    from edgecc.commands.render import show_quant_report
    from edgecc.data import DataOptions, load_samples, parse_data_values
    from edgecc.errors import UsageError
    from edgecc.fileio import atomic_write_bytes
    from edgecc.onnxutil import check_model, graph_inputs, load_onnx, save_onnx
    from edgecc.quantization.core import FP16_SENSITIVE_OPS, QuantOptions, quantize_model
    from edgecc.quantization.scheme import QuantScheme

    scheme = QuantScheme()
    if target_name:
        try:
            from edgecc.targets import get_target
        except ImportError:
            raise UsageError("targets are not available", hint="quantise with explicit options instead of --target") from None
        scheme = get_target(target_name).quant_scheme
    overrides = {
        k: v
        for k, v in {
            "activation_type": activation_type,
            "weight_type": weight_type,
            "symmetric_activations": symmetric,
            "per_channel": per_channel,
            "integer_io": integer_io or None,
            "symmetric_weights": False if asymmetric_weights else None,
        }.items()
        if v is not None
    }
    try:
        scheme = dataclasses.replace(scheme, **overrides)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if mode is None:
        mode = "fp16" if scheme.precision == "fp16" else ("static" if calibration else "dynamic")
    if mode == "fp16" and scheme.precision == "int8":
        scheme = dataclasses.replace(scheme, precision="fp16")
    if scheme.precision == "fp16":
        mode = "fp16"
    if mode == "static" and not calibration:
        raise UsageError(
            "static quantisation needs --calibration DATA", hint="or --mode dynamic / fp16, or --calibration random to test"
        )
    sensitive = tuple(FP16_SENSITIVE_OPS) if keep_sensitive_fp32 else ()
    options = QuantOptions(
        mode=mode,
        method=method,
        percentile=percentile,
        quant_format=quant_format,
        exclude_nodes=split_names(exclude),
        cle=cle,
        bias_correction=bias_correction,
        accuracy_goal=accuracy_goal,
        goal_metric=goal_metric,
        repair_budget=repair_budget,
        holdout=holdout,
        keep_io_float32=not keep_io_float16,
        fp32_ops=tuple(dict.fromkeys(sensitive + split_names(fp32_ops))),
    )
    if accuracy_goal is not None and mode != "static":
        raise UsageError("--accuracy-goal works with static quantisation")
    sources = parse_data_values(calibration, "--calibration")
    source = load_onnx(model)
    feeds, described = [], ""
    if sources:
        if any(s.kind == "random" for s in sources):
            ui.warn("calibrating on random data: ranges will not match real inputs; use real samples for a deployable model")
        samples = load_samples(
            sources,
            graph_inputs(source),
            DataOptions(option="--calibration", images=images, max_samples=max_samples, seed=seed, random_count=16, finite=True),
        )
        feeds, described = samples.feeds, samples.description
    with _progress(ui) as progress:
        result, report = quantize_model(
            source, scheme, feeds, options, name=model, calibration_source=described, progress=progress
        )
    check_model(result, path=out_path)
    show_quant_report(ui, report)
    save_onnx(result, out_path)
    if report_path:
        atomic_write_bytes(report_path, json.dumps(report.to_dict(), indent=2, default=str).encode())
    ui.message(f"[green]wrote[/green] {out_path} ({report.mode}, {report.size_before:,} -> {report.size_after:,} bytes)")
    if ui.json_mode:
        ui.emit_json({"ok": True, "command": "quantize", "output": out_path, "report": report.to_dict()})


class _progress:
    """A rich progress bar over calibration batches on stderr (terminal only); yields a callback(done, total) or None."""

    def __init__(self, ui: Ui) -> None:
        self.ui = ui
        self.bar = None
        self.task = None

    def __enter__(self):
        import sys

        if self.ui.quiet or self.ui.json_mode or not sys.stderr.isatty():
            return None
        from rich.progress import Progress

        self.bar = Progress(console=self.ui.console, transient=True)
        self.bar.__enter__()
        self.task = self.bar.add_task("calibrating", total=None)

        def update(done: int, total: int) -> None:
            self.bar.update(self.task, completed=done, total=total)

        return update

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
