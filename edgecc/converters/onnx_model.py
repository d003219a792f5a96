"""ONNX frontend: load (with external data), check, fix input shapes; the pipeline converts the opset.

`dim_value: -1` (Paddle's and others' way of writing a dynamic dimension) reads as dynamic, as `dim_param` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from edgecc.converters.options import ConvertOptions
from edgecc.errors import UsageError
from edgecc.inputs import TensorInfo

if TYPE_CHECKING:
    import numpy as np
    import onnx

__all__ = ["DESCRIPTION", "detect", "convert", "reference"]

DESCRIPTION = "ONNX models (.onnx, with external data)"
EXTRA = None

_SNIFF_LIMIT = 512 * 1024**2


def detect(paths: Sequence[str]) -> bool:
    """An `.onnx` file, or a protobuf that parses as a ModelProto with a graph."""
    path = Path(paths[0])
    if path.suffix.lower() == ".onnx":
        return True
    if not path.is_file() or path.stat().st_size == 0 or path.stat().st_size > _SNIFF_LIMIT:
        return False
    with open(path, "rb") as handle:
        if handle.read(1) != b"\x08":  # field 1 (ir_version, varint) comes first in ONNX files
            return False
    try:
        import onnx

        model = onnx.ModelProto()
        model.ParseFromString(path.read_bytes())
    except Exception:  # noqa: BLE001 -- sniffing: failing to import onnx or to parse the bytes means 'not ONNX'
        return False
    return model.HasField("graph") and model.ir_version > 0 and len(model.graph.node) > 0


def _only_model(paths: Sequence[str]) -> str:
    if len(paths) > 1:
        raise UsageError(
            f"an ONNX model takes no weights file (got '{paths[1]}')", hint="external data is found beside the model"
        )
    return paths[0]


def convert(paths: Sequence[str], options: ConvertOptions) -> "onnx.ModelProto":
    """The model, validated, with `--input` shapes applied."""
    from edgecc.onnxutil import apply_input_specs, dynamic_negative_dims, load_onnx

    path = _only_model(paths)
    model = load_onnx(path)
    dynamic_negative_dims(model)
    return apply_input_specs(model, options.inputs, path=path)


class _OriginalOnnx:
    """The source model run by onnxruntime, exposing cut outputs when asked."""

    def __init__(self, path: str, outputs: Sequence[str]) -> None:
        from edgecc.onnxutil import infer_shapes, load_onnx, with_outputs
        from edgecc.ortrun import OrtRunner

        model = load_onnx(path)
        if outputs:
            model = with_outputs(infer_shapes(model), outputs)
        self._runner = OrtRunner(model, name=f"original {Path(path).name}")
        self.name = self._runner.name
        self.inputs = self._runner.inputs
        wanted = list(outputs) if outputs else [o.name for o in self._runner.outputs]
        self.outputs = [o for o in self._runner.outputs if o.name in wanted] or [TensorInfo(n, None, "float32") for n in wanted]
        self._wanted = wanted

    def run(self, feeds: Mapping[str, "np.ndarray"]) -> dict[str, "np.ndarray"]:
        return self._runner.run(feeds, self._wanted)


def reference(paths: Sequence[str], options: ConvertOptions) -> _OriginalOnnx:
    """The original file under onnxruntime, for verifying opset conversion and cuts."""
    return _OriginalOnnx(_only_model(paths), options.outputs)
