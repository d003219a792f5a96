"""Quantisation: static int8/int16 with calibration, dynamic, fp16; target-aware schemes, accuracy repair, reports.

`quantize_model(model, scheme, calibration_feeds, options) -> (model, report)` is the library entry point
(`edgecc quantize` and `edgecc compile` call it); heavy imports happen only when it runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgecc.quantization.scheme import QuantScheme

__all__ = ["QuantOptions", "QuantScheme", "quantize_model"]

if TYPE_CHECKING:
    from edgecc.quantization.core import QuantOptions, quantize_model


def __getattr__(name: str) -> Any:
    if name in ("QuantOptions", "quantize_model"):
        from edgecc.quantization import core

        return getattr(core, name)
    raise AttributeError(name)
