"""`edgecc verify A B`: run two models on the same inputs and compare every output."""

from __future__ import annotations

import click

from edgecc.commands.common import SEED, common_options, data_option, tolerance_options
from edgecc.ui import Ui

__all__ = ["command"]


@click.command("verify")
@click.argument("reference")
@click.argument("candidate")
@click.option("--reference-weights", default=None, metavar="FILE", help="Second file of REFERENCE (caffemodel, state dict, ...).")
@click.option("--candidate-weights", default=None, metavar="FILE", help="Second file of CANDIDATE.")
@click.option(
    "--input", "input_specs", multiple=True, metavar="NAME:DIMS[:DTYPE]", help="Fix dynamic input dimensions for both models."
)
@data_option("--data", "data_args", what="Inputs")
@click.option(
    "--samples",
    type=click.IntRange(1, 10_000),
    default=1,
    show_default=True,
    help="Number of random samples when no --data is given.",
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the random inputs.")
@click.option(
    "--precision",
    type=click.Choice(["fp32", "fp16", "int8"]),
    default="fp32",
    show_default=True,
    help="Default tolerances for this precision.",
)
@click.option(
    "--per-layer",
    is_flag=True,
    help="Also compare every intermediate tensor both ONNX graphs share by name; report the first that diverges.",
)
@tolerance_options
@common_options
def command(
    reference: str,
    candidate: str,
    reference_weights: str | None,
    candidate_weights: str | None,
    input_specs: tuple[str, ...],
    data_args: tuple[str, ...],
    samples: int,
    seed: int,
    precision: str,
    per_layer: bool,
    atol: float | None,
    rtol: float | None,
    min_cosine: float | None,
    ui: Ui,
) -> None:
    """Compare CANDIDATE against REFERENCE (ONNX files, or any model a frontend can run).

    \b
    Examples:
      edgecc verify model.onnx model_opt.onnx
      edgecc verify model.onnx model_fp16.onnx --precision fp16
      edgecc verify model.onnx broken.onnx --per-layer --data input=x.npy
      edgecc verify deploy.prototxt model.onnx --reference-weights weights.caffemodel
    """
    from edgecc.commands.render import show_per_layer, show_verification
    from edgecc.data import DataOptions, parse_data_values, samples_or_random
    from edgecc.errors import NumericsError, UsageError
    from edgecc.inputs import parse_input_specs
    from edgecc.pipeline.convert import open_runnable
    from edgecc.verify import compare_samples, tolerance_for
    from edgecc.verify import per_layer as compare_layers

    specs = parse_input_specs(input_specs)
    data = parse_data_values(data_args, "--data")
    tolerance = tolerance_for(precision).with_overrides(atol=atol, rtol=rtol, min_cosine=min_cosine)
    ref_model = open_runnable(reference, specs, weights=reference_weights)
    cand_model = open_runnable(candidate, specs, weights=candidate_weights)
    ref_inputs = {i.name for i in ref_model.inputs}
    if ref_inputs != {i.name for i in cand_model.inputs}:
        raise UsageError(
            f"the models take different inputs: {', '.join(sorted(ref_inputs))} "
            f"vs {', '.join(sorted(i.name for i in cand_model.inputs))}"
        )
    feeds = samples_or_random(data, cand_model.inputs, DataOptions(option="--data", seed=seed, random_count=samples)).feeds
    with ui.status("running both models"):
        report = compare_samples(ref_model, cand_model, feeds, tolerance)
    if not data:
        report.notes.insert(0, f"random inputs (seed {seed})")
    show_verification(ui, report)
    layers = None
    if per_layer:
        ref_proto = getattr(ref_model, "model", None)
        cand_proto = getattr(cand_model, "model", None)
        if ref_proto is None or cand_proto is None:
            raise UsageError("--per-layer compares ONNX graphs", hint="convert both models to ONNX first")
        with ui.status("comparing intermediate tensors"):
            layers = compare_layers(ref_proto, cand_proto, feeds, tolerance, reference_name=reference, candidate_name=candidate)
        show_per_layer(ui, layers)
    error = None
    if not report.passed:
        names = ", ".join(o.name for o in report.failures())
        error = NumericsError(f"'{candidate}' differs from '{reference}' beyond tolerance on output(s) {names}", report=report)
    if ui.json_mode:
        document = {
            "ok": report.passed,
            "command": "verify",
            **report.to_dict(),
            "per_layer": layers.to_dict() if layers is not None else None,
        }
        if error is not None:
            document["error"] = {k: v for k, v in error.to_dict().items() if k != "report"}
        ui.emit_json(document)
    if error is not None:
        raise error
