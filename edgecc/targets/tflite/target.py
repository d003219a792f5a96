"""`TfliteTarget`: the emit flow of the TFLite-consuming targets (ethos-u*, edgetpu, armnn); their shared checks
are in `edgecc.targets.tflite.rules`.

emit(): the partition in the target's precision (`convert_precision`: QDQ int8 with the target's
QuantScheme, or fp32) -> edgecc's TFLite writer (`edgecc.targets.tflite.emit_tflite`) -> the TFLite
file run by the TFLite interpreter against onnxruntime on the same partition (`compare_with_onnx`;
out of tolerance = NumericsError, exit 5; the report is stored as info["verification"]) -> the
target's vendor step (Vela, Arm NN, or a note for the Edge TPU compiler), whose `VendorResult`
(more files, more report entries) is merged into the partition's `Emitted`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from edgecc.errors import NumericsError, UsageError
from edgecc.targets.api import EmitOptions, Emitted, Target

if TYPE_CHECKING:
    import numpy as np
    import onnx

__all__ = ["TfliteTarget", "VendorResult", "boundary_conversions", "float_operators"]

log = logging.getLogger(__name__)


@dataclass
class VendorResult:
    """What a target's vendor step adds to a partition: files beside the TFLite and entries of its report (`info`)."""

    files: list[Path] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def float_operators(path: Path) -> list[str]:
    """Operators of a TFLite file that read or write float32 tensors ("INDEX:OP"), e.g. float islands in an int8 model."""
    from edgecc.targets.tflite.runner import interpreter_class

    interpreter = interpreter_class()(model_path=str(path))
    found = []
    for op in interpreter._get_ops_details():  # noqa: SLF001 -- the only per-operator view the interpreter offers
        types = [
            t.__name__ if hasattr(t, "__name__") else str(t) for t in (*op.get("operand_types", ()), *op.get("result_types", ()))
        ]
        if "float32" in types:
            found.append(f"{op['index']}:{op['op_name']}")
    return found


def _layouts(perm: Sequence[int]) -> tuple[str, str]:
    perm = list(perm)
    if perm == [0, 2, 3, 1]:
        return "NCHW", "NHWC"
    return "ONNX", f"perm {perm}"


def boundary_conversions(io: Mapping[str, Any]) -> list[dict[str, str]]:
    """The host-side conversions at the TFLite file's boundary (manifest `conversions` entries: dtype and layout)."""
    found = []
    for direction in ("inputs", "outputs"):
        for entry in io.get(direction, []):
            perm = list(entry.get("perm", []))
            onnx_dtype, tfl_dtype = entry.get("onnx_dtype", "float32"), entry.get("dtype", "float32")
            transposed = perm != list(range(len(perm)))
            if onnx_dtype == tfl_dtype and not transposed:
                continue
            item = {"tensor": entry["name"], "from_dtype": onnx_dtype, "to_dtype": tfl_dtype}
            if direction == "outputs":
                item = {"tensor": entry["name"], "from_dtype": tfl_dtype, "to_dtype": onnx_dtype}
            if transposed:
                onnx_layout, tfl_layout = _layouts(perm)
                item.update(from_layout=onnx_layout, to_layout=tfl_layout) if direction == "inputs" else item.update(
                    from_layout=tfl_layout, to_layout=onnx_layout
                )
            found.append(item)
    return found


@dataclass
class TfliteTarget(Target):
    """A target whose artifact is an edgecc-written TFLite flatbuffer, verified with the TFLite interpreter."""

    io_type: str = "int8"  # the integer io of int8 artifacts ("float32" io for fp32 partitions)
    always_bias: bool = False
    flat_fully_connected: bool = False  # FULLY_CONNECTED writes 2-D outputs, a RESHAPE restores the rank (no keep_num_dims)
    vendor_option_keys: tuple[str, ...] = ()

    def io_type_for(self, precision: str, options: EmitOptions) -> str:
        """The TFLite io dtype of a partition in `precision`."""
        return "float32" if precision == "fp32" else self.io_type

    def check_vendor_options(self, options: Mapping[str, str]) -> None:
        """Unknown --vendor-option keys are a usage error (exit 2) listing the known ones."""
        unknown = sorted(set(options) - set(self.vendor_option_keys))
        if unknown:
            known = ", ".join(self.vendor_option_keys) or "none"
            raise UsageError(f"target '{self.name}' has no --vendor-option {', '.join(unknown)}", hint=f"known options: {known}")

    def emit(
        self,
        model: onnx.ModelProto,
        precision: str,
        directory: Path,
        stem: str,
        calibration: Sequence[Mapping[str, np.ndarray]],
        options: EmitOptions | None = None,
    ) -> Emitted:
        """Write `<stem>.tflite` (verified against onnxruntime), then run the target's vendor step."""
        from edgecc.targets.precision import convert_precision
        from edgecc.targets.tflite import compare_with_onnx, emit_tflite

        options = options or EmitOptions()
        self.check_vendor_options(options.vendor_options)
        converted = convert_precision(model, precision, self.scheme_for(precision), calibration)
        io_type = self.io_type_for(precision, options)
        artifact = emit_tflite(
            converted,
            io_type=io_type,
            always_bias=self.always_bias,
            flat_fully_connected=self.flat_fully_connected,
            name=stem,
        )
        path = directory / f"{stem}.tflite"
        path.write_bytes(artifact.data)
        report = dict(artifact.report or {})
        info: dict[str, Any] = {
            "format": "tflite",
            "io_type": io_type,
            "tflite_operators": sorted(set(artifact.operators)),
            "conversions": boundary_conversions(report.get("io", {})),
            "conversions_text": list(report.get("conversions", [])),
        }
        from edgecc.targets.precision import is_quantized

        anchor = model if converted is not model and not is_quantized(model) else None  # the float partition
        if options.feeds:
            verification = compare_with_onnx(artifact, converted, [dict(f) for f in options.feeds], float_model=anchor)
            info["verification"] = {
                "artifact": path.name,
                "reference": "onnxruntime on the partition's ONNX (" + ("QDQ" if precision != "fp32" else "float") + ")",
                **verification,
            }
            if not verification.get("passed", False):
                raise NumericsError(
                    f"the TFLite file edgecc wrote for partition {stem} ({self.name}) differs from onnxruntime on the "
                    f"same {precision} partition beyond tolerance",
                    report=info["verification"],
                    hint="report this as an edgecc TFLite writer bug; --precision fp32 (where the target allows it) avoids it",
                )
        if precision != "fp32":
            info["float_operators"] = float_operators(path)
        vendor = self.vendor_step(path, precision, options, MappingProxyType(info), converted, anchor)
        return Emitted([path, *vendor.files], {**info, **vendor.info})

    def vendor_step(
        self,
        tflite: Path,
        precision: str,
        options: EmitOptions,
        report: Mapping[str, Any],
        converted: onnx.ModelProto,
        float_model: onnx.ModelProto | None = None,
    ) -> VendorResult:
        """Run the vendor tool on the verified `tflite` (`report`: what emit recorded so far, read-only; `converted`: the
        partition's ONNX in `precision`; `float_model`: the float partition it was quantised from, if it was); its
        outputs go beside `tflite`. None by default."""
        return VendorResult()

    def runner(self, artifact: Path, *, name: str) -> Any:
        """The TFLite interpreter over the artifact (float io, ONNX names and layout, as the bundle expects)."""
        from edgecc.targets.tflite import TfliteRunner

        return TfliteRunner(artifact, name=name)
