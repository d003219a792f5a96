"""TensorFlow family frontend: SavedModel, Keras (.keras/.h5), frozen GraphDef, TFLite and TF.js, through tf2onnx.

Formats are recognised from content without importing TensorFlow (`schema.py`);
TensorFlow, Keras and tf2onnx are imported on first use, with their logging
silenced. Quantised TFLite models become QDQ ONNX that keeps the TFLite scales and
zero points (`--dequantize` gives a float graph). Conversions are verified against
TensorFlow or the TFLite interpreter.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from edgecc.converters.options import ConvertOptions
from edgecc.converters.tensorflow import schema

if TYPE_CHECKING:
    import onnx

    from edgecc.converters.tensorflow.runner import TensorFlowReference
    from edgecc.converters.tensorflow.schema import Source
    from edgecc.verify import Tolerance

__all__ = ["DESCRIPTION", "EXTRA", "convert", "default_tolerance", "describe", "detect", "reference", "supported_formats"]

DESCRIPTION = "TensorFlow: SavedModel dir, Keras .keras/.h5, frozen GraphDef .pb, TFLite (float/int8 as QDQ), TF.js model.json"
EXTRA = "tensorflow"


def detect(paths: Sequence[str]) -> bool:
    """A SavedModel directory, Keras zip/HDF5, GraphDef protobuf, TFLite flatbuffer or TF.js model.json."""
    return bool(paths) and schema.sniff(paths[0]) is not None


@functools.lru_cache(maxsize=2)
def _load(paths: tuple[str, ...], options: ConvertOptions) -> Source:
    from edgecc.converters.tensorflow.reader import load

    return load(paths, options)


def convert(paths: Sequence[str], options: ConvertOptions) -> onnx.ModelProto:
    """Convert with tf2onnx; unsupported ops are listed at once (exit 4)."""
    from edgecc.converters.tensorflow.build import export

    return export(_load(tuple(paths), options), options)


def reference(paths: Sequence[str], options: ConvertOptions) -> TensorFlowReference:
    """The source model run by TensorFlow or the TFLite interpreter."""
    from edgecc.converters.tensorflow.build import nchw_inputs
    from edgecc.converters.tensorflow.runner import make_reference

    return make_reference(_load(tuple(paths), options), nchw_inputs(options))


def default_tolerance(paths: Sequence[str], options: ConvertOptions) -> Tolerance | None:
    """Integer-output (int8/uint8/int16) TFLite models are compared in quantisation steps (edgecc.verify's steps rule).

    With --dequantize, or when only some outputs are integers, the float graph is held to the int8 preset
    (cosine >= 0.99) against the integer kernels; None means the caller's default (fp32).
    """
    from edgecc.verify import tolerance_for

    source = _load(tuple(paths), options)
    if source.kind != schema.TFLITE:
        return None
    from edgecc.converters.tensorflow.build import dequantize_requested

    model = source.extra["flatbuffer"]
    main = model.main
    quantised = any(
        t.quantization is not None and t.quantization.scale is not None and len(t.quantization.scale) for t in main.tensors
    )
    if dequantize_requested(options) and quantised:
        return tolerance_for("int8")
    dtypes = [model.dtype(main, int(i)) for i in main.outputs]
    integer = [d for d in dtypes if d in ("int8", "uint8", "int16")]
    if integer:
        return tolerance_for("int8", integer[0]) if len(integer) == len(dtypes) else tolerance_for("int8")
    return None


def describe(paths: Sequence[str], options: ConvertOptions) -> dict[str, Any]:
    """What the source file says: format, inputs/outputs, operators, TFLite quantisation parameters."""
    from edgecc.converters.tensorflow.reader import describe_source

    return describe_source(_load(tuple(paths), options))


def supported_formats() -> list[str]:
    """The formats this frontend reads, for docs."""
    return [schema.KIND_NAMES[k] for k in schema.KIND_NAMES]
