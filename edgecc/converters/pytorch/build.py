"""Export a loaded PyTorch model to one self-contained ONNX ModelProto with torch.onnx."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from edgecc.converters.pytorch import schema
from edgecc.converters.pytorch.schema import LoadedModule
from edgecc.errors import UnsupportedError, UnsupportedNode, UnsupportedOperator
from edgecc.logs import quiet_loggers

if TYPE_CHECKING:
    import onnx

__all__ = ["DYNAMO_MIN_OPSET", "EXPORTER_KEY", "export", "output_names", "unsupported_aten_ops"]

log = logging.getLogger(__name__)

DYNAMO_MIN_OPSET = 18  # the torch.export-based exporter has no implementations below this
EXPORTER_KEY = "edgecc.pytorch_exporter"  # metadata: the exporter that made the model, and what was tried before
DYNAMO = "torch.onnx dynamo (torch.export)"
TORCHSCRIPT_EXPORTER = "torch.onnx TorchScript exporter"


def output_names(loaded: LoadedModule) -> list[str]:
    """ONNX output names (`edgecc.converters.pytorch.outputs`), as the loader found them on the example inputs."""
    from edgecc.converters.pytorch.outputs import output_names as names_of

    if loaded.output_names is None:
        import torch

        with torch.no_grad():
            loaded.output_names = names_of(loaded.forward(loaded.example_inputs))
    return loaded.output_names


def _bound_module(loaded: LoadedModule) -> Any:
    """An nn.Module taking exactly the ONNX inputs, positionally, and returning the flat tuple of output tensors.

    The --arg constants are baked in, unbound parameters keep their defaults, and dict/ModelOutput/nested outputs
    come out in `flatten_outputs` order, so both exporters see the same inputs and outputs as the reference.
    """
    import torch

    from edgecc.converters.pytorch.outputs import flatten_outputs

    class Bound(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *tensors: Any) -> Any:
            inner = self.inner.module() if loaded.kind == schema.EXPORTED_PROGRAM else self.inner
            result = loaded.binding.call(inner, tensors) if loaded.binding is not None else inner(*tensors)
            leaves = tuple(value for _, value in flatten_outputs(result))
            return leaves[0] if len(leaves) == 1 else leaves

    return Bound(loaded.module).eval()


def _needs_wrapper(loaded: LoadedModule) -> bool:
    """True unless the module takes the ONNX inputs as they are and returns one tensor."""
    plain_inputs = loaded.binding is None or loaded.binding.is_plain()
    return not plain_inputs or output_names(loaded) != ["output"]


@contextlib.contextmanager
def _quiet_torch() -> Iterator[io.StringIO]:
    """Keep torch.onnx's progress prints and warnings off stdout/stderr (logged at debug level)."""
    captured = io.StringIO()
    try:
        with (
            quiet_loggers("torch.onnx", "torch.export", "torch._export", "torch._dynamo", "onnxscript"),
            warnings.catch_warnings(),
            contextlib.redirect_stdout(captured),
            contextlib.redirect_stderr(captured),
        ):
            warnings.simplefilter("ignore")
            yield captured
    finally:
        if captured.getvalue():
            log.debug("torch.onnx said:\n%s", captured.getvalue())


def _dynamic_shapes(loaded: LoadedModule, wrapped: bool) -> Any:
    import torch

    if not any(loaded.dynamic_dims.values()):
        return None
    dims: dict[str, Any] = {}
    shapes = tuple(
        {axis: dims.setdefault(name, torch.export.Dim(name)) for axis, name in loaded.dynamic_dims.get(info.name, {}).items()}
        for info in loaded.inputs
    )
    return (shapes,) if wrapped else shapes  # the wrapper's forward takes them all as one *tensors


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:300] if lines else type(exc).__name__


def _export_dynamo(loaded: LoadedModule, names: Sequence[str], opset: int) -> onnx.ModelProto:
    import torch

    wrapped = loaded.kind != schema.EXPORTED_PROGRAM and _needs_wrapper(loaded)
    model = _bound_module(loaded) if wrapped else loaded.module
    args = () if loaded.kind == schema.EXPORTED_PROGRAM else loaded.example_inputs
    with _quiet_torch():
        program = torch.onnx.export(
            model,
            args,
            dynamo=True,
            opset_version=max(opset, DYNAMO_MIN_OPSET),
            input_names=[i.name for i in loaded.inputs],
            output_names=list(names),
            dynamic_shapes=_dynamic_shapes(loaded, wrapped),
            external_data=False,
            optimize=True,
            verbose=False,
        )
    return program.model_proto


def _export_torchscript(loaded: LoadedModule, names: Sequence[str], opset: int) -> onnx.ModelProto:
    import onnx
    import torch

    buffer = io.BytesIO()
    dynamic_axes = {name: dict(axes) for name, axes in loaded.dynamic_dims.items() if axes} or None
    model = loaded.module
    with _quiet_torch():
        if _needs_wrapper(loaded):
            model = _bound_module(loaded)
            if loaded.kind == schema.TORCHSCRIPT:  # a ScriptModule is only reachable from a trace, not from export's
                model = torch.jit.trace(model, loaded.example_inputs, check_trace=False, strict=False)
        torch.onnx.export(
            model,
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


def _is_capture_failure(exc: BaseException) -> bool:
    """True when torch.export could not trace the model (step 1), as opposed to a missing ONNX translation."""
    return type(exc).__name__ == "TorchExportError"


def unsupported_aten_ops(loaded: LoadedModule) -> list[UnsupportedNode]:
    """Every FX node of the decomposed program that torch.onnx has no ONNX function for.

    Uses torch.onnx's own registry and dispatcher (the same check as its `analyze`),
    so all missing operators are reported at once instead of the first one.
    """
    import torch
    from torch.onnx._internal.exporter import _dispatching, _fx_passes, _registration

    with _quiet_torch():
        if loaded.kind == schema.EXPORTED_PROGRAM:
            program = loaded.module
        else:
            program = torch.export.export(_bound_module(loaded), loaded.example_inputs, strict=False)
        registry = _registration.ONNXRegistry.from_torchlib()
        program = _fx_passes.decompose_with_registry(program, registry)
        missing: list[UnsupportedNode] = []
        for node in program.graph.nodes:
            if node.op != "call_function":
                continue
            try:
                function, message = _dispatching.dispatch(node, registry)
            except Exception as exc:  # noqa: BLE001 -- private torch dispatcher; its failing counts as unsupported too
                function, message = None, str(exc)
            if function is None:
                reason = " ".join(str(message).split())[:160] or "no ONNX translation"
                missing.append(UnsupportedNode(node.name, str(node.target), reason))
    return missing


def _translation_error(loaded: LoadedModule, exc: BaseException) -> UnsupportedError:
    try:
        missing = unsupported_aten_ops(loaded)
    except Exception as analysis_exc:  # noqa: BLE001 -- private torch API: fall back to the exporter's own message
        log.debug("operator analysis failed: %s", analysis_exc)
        missing = []
    if missing:
        return UnsupportedOperator(
            missing,
            where="torch.onnx has no ONNX translation",
            hint="replace these operations in the model, or register a custom translation with torch.onnx",
        )
    return UnsupportedError(f"torch.onnx cannot export this model: {_first_line(exc)}; {_summary(exc)}")


def _summary(exc: BaseException) -> str:
    text = str(exc)
    marker = "## Exception summary"
    if marker in text:
        lines = [line.strip() for line in text.split(marker, 1)[1].splitlines() if line.strip() and not line.startswith("⬆")]
        return " ".join(lines[:2])[:400]
    return ""


def _stamp(model: onnx.ModelProto, exporter: str, tried: Sequence[str] = ()) -> onnx.ModelProto:
    entry = model.metadata_props.add()
    entry.key = EXPORTER_KEY
    entry.value = "; ".join([*(f"{t} failed" for t in tried), exporter])
    return model


def export(loaded: LoadedModule, opset: int) -> onnx.ModelProto:
    """ONNX for the model: torch.export-based exporter, TorchScript exporter for ScriptModules.

    If torch.export cannot capture an nn.Module, the TorchScript exporter is tried
    before giving up; operators without an ONNX translation are all listed at once.
    The exporter used (and the one that failed before it) is recorded in the metadata under `EXPORTER_KEY`.
    """
    names = output_names(loaded)
    if loaded.kind == schema.TORCHSCRIPT:
        try:
            return _stamp(_export_torchscript(loaded, names, opset), TORCHSCRIPT_EXPORTER)
        except Exception as exc:
            raise UnsupportedError(f"torch.onnx (TorchScript exporter) cannot export this model: {_first_line(exc)}") from exc
    try:
        return _stamp(_export_dynamo(loaded, names, opset), DYNAMO)
    except Exception as dynamo_exc:
        if not _is_capture_failure(dynamo_exc) or loaded.kind == schema.EXPORTED_PROGRAM:
            raise _translation_error(loaded, dynamo_exc) from dynamo_exc
        log.warning(
            "torch.export could not capture the model (%s); trying the TorchScript exporter",
            _summary(dynamo_exc) or _first_line(dynamo_exc),
        )
        try:
            return _stamp(_export_torchscript(loaded, names, opset), TORCHSCRIPT_EXPORTER, [DYNAMO])
        except Exception as script_exc:
            raise UnsupportedError(
                f"torch.onnx cannot export this model: torch.export said '{_summary(dynamo_exc) or _first_line(dynamo_exc)}'; "
                f"the TorchScript exporter said '{_first_line(script_exc)}'"
            ) from script_exc
