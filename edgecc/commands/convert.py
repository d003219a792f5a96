"""`edgecc convert MODEL [WEIGHTS [VALUE_INFO]] -o out.onnx`: any supported framework to verified ONNX."""

from __future__ import annotations

from pathlib import Path

import click

from edgecc.commands.common import (
    SEED,
    common_options,
    data_option,
    keep_initializer_inputs_option,
    model_files,
    model_files_arguments,
    split_names,
    tolerance_options,
)
from edgecc.converters.options import DEFAULT_OPSET
from edgecc.ui import Ui

__all__ = ["command"]


def _parse_opset(text: str) -> int | None:
    if text == "keep":
        return None
    if not text.isdigit():
        from edgecc.errors import UsageError

        raise UsageError(f"--opset must be a number or 'keep', got '{text}'")
    return int(text)


@click.command("convert")
@model_files_arguments
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Output .onnx file.")
@click.option(
    "--framework",
    default=None,
    help="Source framework (default: detected from the files): onnx, pytorch, tensorflow, caffe, caffe2, mxnet.",
)
@click.option("--opset", default=str(DEFAULT_OPSET), show_default=True, help="Target ai.onnx opset, or 'keep'.")
@click.option(
    "--input",
    "input_specs",
    multiple=True,
    metavar="NAME:DIMS[:DTYPE]",
    help="Fix an input's shape (and dtype), e.g. data:1x3x224x224.",
)
@click.option(
    "--arg",
    "arg_values",
    multiple=True,
    metavar="NAME=VALUE",
    help="PyTorch: a non-tensor forward() argument (int, float, bool, string, None), e.g. sr=16000.",
)
@click.option(
    "--output", "output_names", multiple=True, metavar="NAME[,NAME]", help="Cut the graph so that it ends at these tensors."
)
@data_option("--data", "data_args", what="Verification inputs")
@click.option(
    "--random-weights",
    is_flag=True,
    help="Caffe/Caffe2: accept a net without trained weights and fill them randomly (for testing).",
)
@click.option("--epoch", type=click.IntRange(0), default=None, help="MXNet: read PREFIX-NNNN.params for this epoch.")
@click.option("--signature", default=None, help="TensorFlow SavedModel: signature to convert (default: serving_default).")
@click.option("--dequantize", is_flag=True, help="TFLite: a float graph instead of QDQ for quantised models.")
@click.option(
    "--nchw-inputs", "nchw_inputs", multiple=True, metavar="NAME[,NAME]", help="TensorFlow: take these NHWC inputs as NCHW."
)
@click.option("--no-optimize", is_flag=True, help="Skip the -O1 cleanup passes (edgecc optimize runs more).")
@click.option("--no-verify", is_flag=True, help="Skip the comparison with the original framework.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the random verification inputs.")
@keep_initializer_inputs_option
@tolerance_options
@common_options
def command(
    model: str,
    weights: tuple[str, ...],
    out_path: str,
    framework: str | None,
    opset: str,
    input_specs: tuple[str, ...],
    arg_values: tuple[str, ...],
    output_names: tuple[str, ...],
    data_args: tuple[str, ...],
    random_weights: bool,
    epoch: int | None,
    signature: str | None,
    dequantize: bool,
    nchw_inputs: tuple[str, ...],
    no_optimize: bool,
    no_verify: bool,
    seed: int,
    keep_initializer_inputs: bool,
    atol: float | None,
    rtol: float | None,
    min_cosine: float | None,
    ui: Ui,
) -> None:
    """Convert MODEL (and WEIGHTS: the weights of file.py:function, a Caffe .caffemodel, a Caffe2 init_net) to ONNX.

    \b
    Examples:
      edgecc convert model.onnx --opset 13 -o model13.onnx
      edgecc convert traced.pt --input x:1x3x224x224 -o model.onnx
      edgecc convert program.pt2 -o model.onnx
      edgecc convert arch.py:build weights.pth --input x:1x3x32x32 -o model.onnx
      edgecc convert vad.pt --input x:1x512 --arg sr=16000 -o vad.onnx
      edgecc convert saved_model_dir --signature serving_default --nchw-inputs input_1 -o model.onnx
      edgecc convert model_int8.tflite -o model_qdq.onnx
      edgecc convert predict_net.pbtxt init_net.pb value_info.json -o model.onnx
    """
    from edgecc.commands.render import show_verification
    from edgecc.converters.options import ConvertOptions
    from edgecc.data import parse_data_values
    from edgecc.errors import NumericsError
    from edgecc.inputs import parse_arg_values, parse_input_specs
    from edgecc.onnxutil import default_opset, save_onnx
    from edgecc.pipeline.convert import conversion_tolerance, convert, verify_conversion

    options = ConvertOptions(
        framework=framework,
        opset=_parse_opset(opset),
        inputs=parse_input_specs(input_specs),
        outputs=split_names(output_names),
        random_weights=random_weights,
        epoch=epoch,
        optimize=not no_optimize,
        keep_initializer_inputs=keep_initializer_inputs,
        signature=signature,
        dequantize=dequantize,
        nchw_inputs=split_names(nchw_inputs),
        args=parse_arg_values(arg_values),
    )
    data = parse_data_values(data_args, "--data")
    sources = model_files(model, weights)
    with ui.status(f"converting {model}"):
        conversion = convert(sources, options)
    report = None
    if not no_verify:
        overridden = any(value is not None for value in (atol, rtol, min_cosine))
        tolerance = (
            conversion_tolerance(conversion).with_overrides(atol=atol, rtol=rtol, min_cosine=min_cosine)
            if overridden
            else None  # the default criteria, which verify_conversion adapts to how onnxruntime runs int8 here
        )
        with ui.status("verifying against the original framework"):
            report = verify_conversion(conversion, tolerance, data=data, seed=seed)
        if report is None:
            ui.warn(f"not verified: {conversion.frontend.name} models cannot be run here (no {conversion.frontend.name} runtime)")
        else:
            show_verification(ui, report)
            if not report.passed:
                names = ", ".join(o.name for o in report.failures())
                raise NumericsError(
                    f"converted model differs from {report.reference} beyond tolerance on output(s) {names}; nothing written",
                    report=report,
                    hint="inspect with `edgecc convert --no-verify` then `edgecc verify --per-layer`, or relax --rtol/--atol",
                )
    written = save_onnx(conversion.model, Path(out_path))
    ui.message(
        f"[green]wrote[/green] {out_path} (opset {default_opset(conversion.model)}, {len(conversion.model.graph.node)} nodes, "
        f"from {conversion.frontend.name})"
    )
    if ui.json_mode:
        ui.emit_json(
            {
                "ok": True,
                "command": "convert",
                "output": str(out_path),
                "files": [str(p) for p in written],
                "frontend": conversion.frontend.name,
                "opset": default_opset(conversion.model),
                "nodes": len(conversion.model.graph.node),
                "exporter": next((p.value for p in conversion.model.metadata_props if p.key == "edgecc.pytorch_exporter"), None),
                "verification": report.to_dict() if report is not None else None,
            }
        )
