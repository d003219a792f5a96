"""Put a partition in the precision its device runs: fp32 as is, fp16 cast (float32 io), int8/int16 QDQ.

int8 uses the project's quantiser (`edgecc.quantization.quantize_model`) when it exists; until then
`quantize_qdq` below calls onnxruntime's static quantiser with the target's `QuantScheme`.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from edgecc.errors import UnsupportedError, UsageError
from edgecc.quantization.scheme import QuantScheme

if TYPE_CHECKING:
    import numpy as np
    import onnx

__all__ = ["cast_fp16", "convert_precision", "is_quantized", "quantize_qdq"]

log = logging.getLogger(__name__)


def convert_precision(model: onnx.ModelProto, precision: str, scheme: QuantScheme,
                      calibration: Sequence[Mapping[str, np.ndarray]]) -> onnx.ModelProto:
    """The partition model in `precision` (inputs and outputs stay float32)."""
    if precision == "fp32":
        return model
    if precision == "fp16":
        return _stamp(cast_fp16(model), "onnxruntime.transformers.float16 (float32 io)")
    if precision in ("int8", "int16"):
        if is_quantized(model):
            return _stamp(model, "kept: the model was already quantised (its QuantizeLinear/DequantizeLinear scales are used as they are)")
        if not calibration:
            raise UsageError("int8 compilation needs calibration samples", hint="give --calibration DATA")
        from edgecc import quantization

        if precision == "int16":
            scheme = QuantScheme(precision="int8", activation_type="int16", weight_type="int8", symmetric_activations=True,
                                 symmetric_weights=True, per_channel=scheme.per_channel)
        if hasattr(quantization, "quantize_model"):
            try:
                options = quantization.QuantOptions(mode="static", method="minmax", holdout=0.0, per_layer_report=False)
                quantized = quantization.quantize_model(model, scheme, list(calibration), options, name=model.graph.name)
                return _stamp(quantized[0] if isinstance(quantized, tuple) else quantized, "edgecc.quantization.quantize_model (minmax, QDQ)")
            except Exception as exc:  # noqa: BLE001 -- the quantiser is young: fall back to onnxruntime's, and say so
                log.warning("edgecc.quantization.quantize_model failed on partition '%s' (%s); using onnxruntime QDQ",
                            model.graph.name, " ".join(str(exc).split())[:200])
        return _stamp(quantize_qdq(model, scheme, calibration), "onnxruntime.quantization.quantize_static (minmax, QDQ)")
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


class _Reader:
    """onnxruntime's CalibrationDataReader over a list of feeds."""

    def __init__(self, feeds: Sequence[Mapping[str, np.ndarray]]) -> None:
        self._iter = iter([dict(f) for f in feeds])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iter, None)

    def rewind(self) -> None:  # pragma: no cover - newer onnxruntime calls it
        pass


def quantize_qdq(model: onnx.ModelProto, scheme: QuantScheme, calibration: Sequence[Mapping[str, np.ndarray]]) -> onnx.ModelProto:
    """Static QDQ quantisation with onnxruntime, following `scheme` (activation/weight types, symmetry, per-channel)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # onnxruntime.quantization warns on the root logger
    types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8, "int16": QuantType.QInt16}
    with tempfile.TemporaryDirectory(prefix="edgecc-q-") as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "qdq.onnx"
        onnx.save_model(model, src)
        try:
            quantize_static(
                str(src), str(dst), _Reader(calibration),
                quant_format=QuantFormat.QDQ,
                activation_type=types[scheme.activation_type],
                weight_type=types[scheme.weight_type],
                per_channel=scheme.per_channel,
                calibrate_method=CalibrationMethod.MinMax,
                extra_options={"ActivationSymmetric": scheme.symmetric_activations, "WeightSymmetric": scheme.symmetric_weights},
            )
        except Exception as exc:  # noqa: BLE001 -- onnxruntime's quantiser raises plain exceptions
            raise UnsupportedError(f"onnxruntime could not quantise partition '{model.graph.name}': {' '.join(str(exc).split())[:300]}") from None
        return onnx.load_model(dst)
