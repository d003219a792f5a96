"""`edgecc inspect MODEL [WEIGHTS]`: inputs, outputs, opset, operators, parameters, MACs."""

from __future__ import annotations

import click

from edgecc.commands.common import common_options, model_files, model_files_arguments
from edgecc.ui import Ui

__all__ = ["command"]


@click.command("inspect")
@model_files_arguments
@click.option("--framework", default=None, help="Source framework (default: detected).")
@click.option(
    "--input", "input_specs", multiple=True, metavar="NAME:DIMS[:DTYPE]", help="Input shapes, for models that do not carry them."
)
@click.option("--random-weights", is_flag=True, help="Caffe/Caffe2: describe a net that has no weights file.")
@click.option("--epoch", type=click.IntRange(0), default=None, help="MXNet: read PREFIX-NNNN.params for this epoch.")
@common_options
def command(
    model: str,
    weights: tuple[str, ...],
    framework: str | None,
    input_specs: tuple[str, ...],
    random_weights: bool,
    epoch: int | None,
    ui: Ui,
) -> None:
    """Describe MODEL in any supported format.

    \b
    Examples:
      edgecc inspect model.onnx
      edgecc inspect traced.pt --input x:1x3x224x224
      edgecc inspect weights.pth          (a state dict: tensors and parameters)
    """
    from edgecc.commands.render import show_model_info
    from edgecc.converters import detect_frontend
    from edgecc.converters.options import ConvertOptions
    from edgecc.errors import UsageError
    from edgecc.inputs import parse_input_specs
    from edgecc.modelinfo import describe_onnx, format_bytes
    from edgecc.pipeline.convert import convert

    sources = model_files(model, weights)
    options = ConvertOptions(
        framework=framework,
        opset=None,
        inputs=parse_input_specs(input_specs),
        random_weights=random_weights,
        epoch=epoch,
        optimize=False,
    )
    frontend = detect_frontend(sources, framework)
    source: dict[str, object] = {"format": frontend.name}
    try:
        with ui.status(f"reading {model}"):
            conversion = convert(sources, options, stamp=False)
    except UsageError as exc:
        if frontend.describe is None:
            raise
        details = frontend.describe(sources, options)
        details["note"] = exc.one_line()
        if ui.json_mode:
            ui.emit_json({"ok": True, "command": "inspect", "model": model, "format": frontend.name, "details": details})
            return
        rows = [
            [k, format_bytes(v) if k.endswith("bytes") else (", ".join(map(str, v)) if isinstance(v, list) else v)]
            for k, v in details.items()
        ]
        ui.table(f"{model} ({frontend.name})", ["", ""], rows)
        return
    if frontend.name != "onnx":
        source["converted with"] = f"edgecc {frontend.name} frontend"
        if frontend.describe is not None:
            for key, value in frontend.describe(sources, options).items():
                source.setdefault(key, value)
    info = describe_onnx(conversion.model, source=source)
    if ui.json_mode:
        ui.emit_json({"ok": True, "command": "inspect", "model": model, **info.to_dict()})
        return
    show_model_info(ui, info, f"{model} ({frontend.name})")
