"""Export a loaded PyTorch model to one self-contained ONNX ModelProto with torch.onnx."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from edgecc.converters.pytorch import formats
from edgecc.converters.pytorch.loading import LoadedModule
from edgecc.errors import UnsupportedError

if TYPE_CHECKING:
    import onnx

__all__ = ["export", "output_names", "flatten_outputs", "DYNAMO_MIN_OPSET"]

log = logging.getLogger(__name__)

DYNAMO_MIN_OPSET = 18  # the torch.export-based exporter has no implementations below this


def flatten_outputs(value: Any) -> list[tuple[str | None, Any]]:
    """Leaves of a module's output (tensor, tuple, list, dict), with dict keys as names."""
    if isinstance(value, dict):
        out: list[tuple[str | None, Any]] = []
        for key, item in value.items():
            inner = flatten_outputs(item)
            out.extend((str(key) if len(inner) == 1 else f"{key}_{i}", v) for i, (_, v) in enumerate(inner))
        return out
    if isinstance(value, (tuple, list)):
        return [leaf for item in value for leaf in flatten_outputs(item)]
    return [(None, value)]


def output_names(loaded: LoadedModule) -> list[str]:
    """ONNX output names: dict keys where the module returns a dict, else `output` / `output_N`."""
    import torch

    with torch.no_grad():
        leaves = flatten_outputs(loaded.callable()(*loaded.example_inputs))
    if len(leaves) == 1:
        return [leaves[0][0] or "output"]
    return [name or f"output_{i}" for i, (name, _) in enumerate(leaves)]


@contextlib.contextmanager
def _quiet_torch() -> Iterator[io.StringIO]:
    """Keep torch.onnx's progress prints and warnings off stdout/stderr (logged at debug level)."""
    captured = io.StringIO()
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(captured):
            warnings.simplefilter("ignore")
            yield captured
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        if captured.getvalue():
            log.debug("torch.onnx said:\n%s", captured.getvalue())


def _dynamic_shapes(loaded: LoadedModule) -> tuple[dict[int, Any], ...] | None:
    import torch

    if not any(loaded.dynamic_dims.values()):
        return None
    dims: dict[str, Any] = {}
    return tuple(
        {axis: dims.setdefault(name, torch.export.Dim(name)) for axis, name in loaded.dynamic_dims.get(info.name, {}).items()}
        for info in loaded.inputs
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:300] if lines else type(exc).__name__


def _export_dynamo(loaded: LoadedModule, names: Sequence[str], opset: int) -> "onnx.ModelProto":
    import torch

    model = loaded.module
    args = () if loaded.kind == formats.EXPORTED_PROGRAM else loaded.example_inputs
    with _quiet_torch():
        program = torch.onnx.export(
            model,
            args,
            dynamo=True,
            opset_version=max(opset, DYNAMO_MIN_OPSET),
            input_names=[i.name for i in loaded.inputs],
            output_names=list(names),
            dynamic_shapes=_dynamic_shapes(loaded),
            external_data=False,
            optimize=True,
            verbose=False,
        )
    return program.model_proto


def _export_torchscript(loaded: LoadedModule, names: Sequence[str], opset: int) -> "onnx.ModelProto":
    import onnx
    import torch

    buffer = io.BytesIO()
    dynamic_axes = {name: dict(axes) for name, axes in loaded.dynamic_dims.items() if axes} or None
    with _quiet_torch():
        torch.onnx.export(
            loaded.module,
            loaded.example_inputs,
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=[i.name for i in loaded.inputs],
            output_names=list(names),
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
        )
    return onnx.load_from_string(buffer.getvalue())


def export(loaded: LoadedModule, opset: int) -> "onnx.ModelProto":
    """ONNX for the model: torch.export-based exporter, TorchScript exporter for ScriptModules.

    If torch.export cannot capture an nn.Module, the TorchScript exporter is tried
    before giving up; the error names both reasons.
    """
    names = output_names(loaded)
    if loaded.kind == formats.TORCHSCRIPT:
        try:
            return _export_torchscript(loaded, names, opset)
        except Exception as exc:
            raise UnsupportedError(f"torch.onnx (TorchScript exporter) cannot export this model: {_first_line(exc)}") from exc
    try:
        return _export_dynamo(loaded, names, opset)
    except Exception as dynamo_exc:
        if loaded.kind == formats.EXPORTED_PROGRAM:
            raise UnsupportedError(f"torch.onnx cannot export this program: {_first_line(dynamo_exc)}") from dynamo_exc
        log.warning("torch.export could not capture the model (%s); trying the TorchScript exporter", _first_line(dynamo_exc))
        try:
            return _export_torchscript(loaded, names, opset)
        except Exception as script_exc:
            raise UnsupportedError(
                f"torch.onnx cannot export this model: torch.export said '{_first_line(dynamo_exc)}'; "
                f"the TorchScript exporter said '{_first_line(script_exc)}'"
            ) from script_exc
