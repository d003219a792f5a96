"""`edgecc optimize in.onnx -o out.onnx`: cleanup and fusion passes, verified against the input."""

from __future__ import annotations

import click

from edgecc.commands.common import (
    SEED,
    common_options,
    data_option,
    keep_initializer_inputs_option,
    split_names,
    tolerance_options,
)
from edgecc.ui import Ui

__all__ = ["command"]


@click.command("optimize")
@click.argument("model")
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Output .onnx file.")
@click.option(
    "-O",
    "--level",
    type=click.IntRange(0, 3),
    default=2,
    show_default=True,
    help="Pipeline: 0 none, 1 cleanup, 2 +fusion and layout, 3 +patterns and annotations.",
)
@click.option(
    "--passes",
    "pass_edits",
    multiple=True,
    metavar="A,B,-C",
    help="Add passes to the level's pipeline, or remove them with a leading '-'.",
)
@click.option("--opset", type=int, default=None, help="Target opset for opset-dependent rewrites and normalize-opset.")
@click.option(
    "--max-iterations",
    type=click.IntRange(1, 100),
    default=4,
    show_default=True,
    help="Repeat the pipeline until nothing changes, at most this often.",
)
@click.option(
    "--report", "report_path", type=click.Path(dir_okay=False), default=None, help="Write the per-pass record as JSON here."
)
@data_option("--data", "data_args", what="Verification inputs")
@click.option("--no-verify", is_flag=True, help="Skip the comparison with the input model.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the random verification inputs.")
@keep_initializer_inputs_option
@tolerance_options
@common_options
def command(
    model: str,
    out_path: str,
    level: int,
    pass_edits: tuple[str, ...],
    opset: int | None,
    max_iterations: int,
    report_path: str | None,
    data_args: tuple[str, ...],
    no_verify: bool,
    seed: int,
    keep_initializer_inputs: bool,
    atol: float | None,
    rtol: float | None,
    min_cosine: float | None,
    ui: Ui,
) -> None:
    """Optimise MODEL with the passes of a level (see `edgecc passes`).

    \b
    Examples:
      edgecc optimize model.onnx -o model_opt.onnx
      edgecc optimize model.onnx -O3 --report passes.json -o model_opt.onnx
      edgecc optimize model.onnx --level 1 --passes fold-batchnorm,-eliminate-common-subexpressions -o out.onnx
    """
    import json

    from edgecc.commands.render import show_optimize_report, show_verification
    from edgecc.data import parse_data_values
    from edgecc.fileio import atomic_write_bytes
    from edgecc.onnxutil import check_model, load_onnx, save_onnx
    from edgecc.passes import pipeline_for
    from edgecc.pipeline.optimize import optimize_and_verify

    names = pipeline_for(level, split_names(pass_edits))
    source = load_onnx(model)
    with ui.status(f"optimising {model}"):
        optimized, report, verification = optimize_and_verify(
            source,
            names,
            opset=opset,
            max_iterations=max_iterations,
            verify=not no_verify,
            data=parse_data_values(data_args, "--data"),
            seed=seed,
            atol=atol,
            rtol=rtol,
            min_cosine=min_cosine,
            name=model,
            keep_initializer_inputs=keep_initializer_inputs,
        )
    check_model(optimized, path=out_path)
    show_optimize_report(ui, report)
    if verification is not None:
        show_verification(ui, verification)
    save_onnx(optimized, out_path)
    if report_path:
        atomic_write_bytes(report_path, json.dumps(report.to_dict(), indent=2).encode())
    ui.message(f"[green]wrote[/green] {out_path} ({report.nodes_before} -> {report.nodes_after} nodes)")
    if ui.json_mode:
        ui.emit_json(
            {
                "ok": True,
                "command": "optimize",
                "output": out_path,
                "report": report.to_dict(),
                "verification": verification.to_dict() if verification is not None else None,
            }
        )
