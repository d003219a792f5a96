"""QDQ folding helpers: quantisation parameters of Q/DQ nodes, int8 weights and int32 biases for TFLite.

A QDQ ONNX graph (`DequantizeLinear -> op -> QuantizeLinear`, as edgecc's quantiser, onnxruntime's
`quantize_static` and edgecc's TFLite frontend write it) becomes integer TFLite operators: activations are int8
(uint8 activations are stored as int8 with the zero point shifted by -128, which is exact), weights int8 with
per-channel scales (`quantized_dimension`), biases int32 with scale = input scale x weight scale (re-quantised
when the QDQ graph stores them otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgecc.targets.tflite.schema import QuantParams

if TYPE_CHECKING:
    import numpy as np

__all__ = ["QConst", "bias_int32", "params_of", "weight_int8", "weight_uint8"]


@dataclass
class QConst:
    """A constant given as DequantizeLinear(initializer): integer data in ONNX layout plus its parameters."""

    data: np.ndarray
    quant: QuantParams

    def real(self) -> np.ndarray:
        """The float values."""
        import numpy as np

        scale = np.asarray(self.quant.scale, dtype=np.float32)
        zero = np.asarray(self.quant.zero_point, dtype=np.float32)
        if self.quant.per_channel:
            shape = [1] * self.data.ndim
            shape[self.quant.axis] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        return ((self.data.astype(np.float32) - zero) * scale).astype(np.float32)


def params_of(scale: np.ndarray, zero_point: np.ndarray | None, axis: int, dtype: str) -> QuantParams:
    """QuantParams from a Q/DQ node's scale and zero-point arrays (uint8 activations re-typed to int8 by the caller)."""
    import numpy as np

    scales = tuple(float(s) for s in np.asarray(scale, dtype=np.float64).ravel())
    zeros = tuple(int(z) for z in np.asarray(zero_point).ravel()) if zero_point is not None else (0,) * len(scales)
    if len(zeros) == 1 and len(scales) > 1:
        zeros = zeros * len(scales)
    return QuantParams(scales, zeros, axis if len(scales) > 1 else 0, dtype)


def weight_int8(const: QConst) -> tuple[np.ndarray, QuantParams] | str:
    """int8 symmetric weights (TFLite's int8 kernels require zero point 0); a reason string when they cannot be expressed.

    uint8 weights with zero point 128 (or whose values all lie within 127 of their zero point) are shifted exactly;
    other asymmetric uint8 weights have no exact int8 form (the writer keeps such models in uint8, see `Context`).
    """
    import numpy as np

    q = const.quant
    if q.dtype == "uint8":
        centred = const.data.astype(np.int32) - np.asarray(q.zero_point, dtype=np.int32).reshape(
            [-1 if i == q.axis and q.per_channel else 1 for i in range(const.data.ndim)]
        )
        if int(centred.min(initial=0)) < -128 or int(centred.max(initial=0)) > 127:
            return "asymmetric uint8 weights without an exact int8 form (TFLite's int8 kernels need weight zero point 0)"
        return centred.astype(np.int8), QuantParams(q.scale, (0,) * len(q.scale), q.axis, "int8")
    if q.dtype != "int8":
        return f"{q.dtype} weights (TFLite int8 kernels take int8 weights)"
    if any(z != 0 for z in q.zero_point):
        return "asymmetric int8 weights (TFLite needs weight zero point 0)"
    return const.data.astype(np.int8), q


def weight_uint8(const: QConst) -> tuple[np.ndarray, QuantParams] | str:
    """uint8 weights for TFLite's uint8 kernels (per tensor, any zero point; int8 weights shifted by 128, exact)."""
    import numpy as np

    q = const.quant
    if q.per_channel:
        return "per-channel weights in a uint8 model (TFLite's uint8 kernels take per-tensor weights)"
    if q.dtype == "int8":
        return (const.data.astype(np.int16) + 128).astype(np.uint8), q.with_dtype("uint8")
    if q.dtype != "uint8":
        return f"{q.dtype} weights (TFLite's uint8 kernels take uint8 weights)"
    return const.data.astype(np.uint8), q


def bias_int32(
    bias: QConst | np.ndarray | None, input_scale: float, weight_scales: tuple[float, ...], channels: int
) -> tuple[np.ndarray, QuantParams]:
    """int32 bias with scale input_scale x weight_scale per channel (re-quantised unless it already is; zeros when absent)."""
    import numpy as np

    per_tensor = len(weight_scales) == 1
    scales = np.asarray(weight_scales, dtype=np.float64) * float(input_scale)
    params = QuantParams(tuple(float(s) for s in scales), (0,) * len(scales), 0, "int32")  # per tensor like the weights
    if per_tensor:
        scales = np.repeat(scales, channels)
    if bias is None:
        return np.zeros(channels, dtype=np.int32), params
    if isinstance(bias, QConst) and bias.quant.dtype == "int32":
        stored = np.broadcast_to(np.asarray(bias.quant.scale, dtype=np.float64), (channels,))
        if np.allclose(stored, scales, rtol=1e-5, atol=0) and not any(bias.quant.zero_point):
            kept = (
                QuantParams(bias.quant.scale, bias.quant.zero_point, 0, "int32")
                if len(bias.quant.scale) == len(params.scale)
                else params
            )
            return bias.data.astype(np.int32).reshape(channels), kept  # the stored scale (e.g. a converted TFLite file's)
    real = bias.real() if isinstance(bias, QConst) else np.asarray(bias, dtype=np.float64)
    values = np.clip(np.round(real.astype(np.float64).reshape(channels) / scales), -(2**31), 2**31 - 1)
    return values.astype(np.int32), params
