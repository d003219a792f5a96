"""Options shared by every frontend."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edgecc.inputs import InputSpec

__all__ = ["ConvertOptions", "DEFAULT_OPSET"]

DEFAULT_OPSET = 17


@dataclass(frozen=True)
class ConvertOptions:
    """What the user asked of a conversion (unknown keys are rejected by the constructor)."""

    framework: str | None = None
    opset: int | None = DEFAULT_OPSET  # None keeps the frontend's opset
    inputs: tuple[InputSpec, ...] = ()
    outputs: tuple[str, ...] = ()
    random_weights: bool = False  # Caffe/Caffe2: allow a net without trained weights (testing only)
    epoch: int | None = None  # MXNet: which prefix-NNNN.params to read
    optimize: bool = True  # run the -O1 cleanup passes after conversion
    keep_initializer_inputs: bool = False  # cleanup keeps initializers listed as graph inputs overridable
    signature: str | None = None  # TensorFlow SavedModel: signature to convert (None: serving_default)
    dequantize: bool = False  # TFLite: float graph instead of QDQ for quantised models
    nchw_inputs: tuple[str, ...] = ()  # TensorFlow: inputs the ONNX model takes as NCHW (transposed to NHWC inside)
    #: PyTorch: non-tensor forward() arguments (`--arg NAME=VALUE`); a mapping is accepted, kept as (name, value) pairs
    args: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.args, Mapping):
            object.__setattr__(self, "args", tuple(self.args.items()))
        else:
            object.__setattr__(self, "args", tuple(tuple(pair) for pair in self.args))

    def input_spec(self, name: str) -> InputSpec | None:
        """The `--input` spec for `name`, if any."""
        return next((s for s in self.inputs if s.name == name), None)
