"""Put a partition in the precision its device runs: fp32 as is, fp16 cast (float32 io), int8/int16 QDQ.

int8/int16 use edgecc's quantiser (`edgecc.quantization.quantize_model`, minmax, QDQ) with the target's
`QuantScheme`; there is no fallback to another quantiser. Its `EdgeccError`s (unsupported model, bad
calibration, ...) reach the user unchanged; any other exception is an edgecc bug and propagates as it is
(exit 1, "internal error"), with a note naming the partition.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from edgecc.errors import EdgeccError, UnsupportedError, UsageError
from edgecc.quantization import QuantScheme

if TYPE_CHECKING:
    import numpy as np
    import onnx

__all__ = ["cast_fp16", "convert_precision", "is_quantized"]


def convert_precision(
    model: onnx.ModelProto, precision: str, scheme: QuantScheme, calibration: Sequence[Mapping[str, np.ndarray]]
) -> onnx.ModelProto:
    """The partition model in `precision` (inputs and outputs stay float32)."""
    if precision == "fp32":
        return model
    if precision == "fp16":
        return _stamp(cast_fp16(model), "onnxruntime.transformers.float16 (float32 io)")
    if precision in ("int8", "int16"):
        if is_quantized(model):
            return _stamp(
                model, "kept: the model was already quantised (its QuantizeLinear/DequantizeLinear scales are used as they are)"
            )
        if not calibration:
            raise UsageError("int8 compilation needs calibration samples", hint="give --calibration DATA")
        from edgecc import quantization

        if precision == "int16":
            scheme = QuantScheme(
                precision="int8",
                activation_type="int16",
                weight_type="int8",
                symmetric_activations=True,
                symmetric_weights=True,
                per_channel=scheme.per_channel,
            )
        options = quantization.QuantOptions(
            mode="static", method="minmax", holdout=0.0, per_layer_report=False, accelerator_partition=True
        )
        try:
            quantized, _ = quantization.quantize_model(model, scheme, list(calibration), options, name=model.graph.name)
        except EdgeccError:
            raise
        except Exception as exc:  # an edgecc bug: keep its type and traceback, say which partition it hit
            exc.add_note(f"edgecc.quantization.quantize_model failed on partition '{model.graph.name}' ({precision})")
            raise
        return _stamp(quantized, "edgecc.quantization.quantize_model (minmax, QDQ)")
    raise UsageError(f"unknown precision '{precision}'")


def is_quantized(model: "onnx.ModelProto") -> bool:
    """True when the model already holds QuantizeLinear/DequantizeLinear (QDQ) or QLinear* nodes."""
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") or n.op_type.startswith("QLinear") for n in model.graph.node)


def _stamp(model: "onnx.ModelProto", how: str) -> "onnx.ModelProto":
    """Record in the artifact which converter produced its precision."""
    entry = model.metadata_props.add()
    entry.key, entry.value = "edgecc.precision_converter", how
    return model


def cast_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """float32 weights and activations to float16, keeping float32 graph inputs and outputs (Cast at the edges)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        return convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=True)
    except Exception as exc:  # noqa: BLE001 -- the converter raises plain exceptions on graphs it cannot handle
        raise UnsupportedError(f"cannot cast partition '{model.graph.name}' to fp16: {exc}") from None
