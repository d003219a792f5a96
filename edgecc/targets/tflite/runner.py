"""`TfliteRunner`: runs an edgecc TFLite artifact with the TFLite interpreter, doing the host boundary conversions
(NCHW<->NHWC transposes, quantise/dequantise with the io scales) recorded in its "edgecc" metadata, so that it takes
and returns exactly what the ONNX partition it was written from takes and returns."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecc.errors import InvalidInputError, MissingDependencyError, UsageError
from edgecc.inputs import TensorInfo
from edgecc.logs import native_stderr

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

__all__ = ["TfliteRunner", "from_tflite", "interpreter_class", "read_metadata", "to_tflite"]


def interpreter_class() -> Any:
    """ai_edge_litert's Interpreter, else tensorflow.lite's; exit 6 when neither is installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    except ImportError:
        pass
    try:
        import tensorflow as tf

        return tf.lite.Interpreter
    except ImportError:
        raise MissingDependencyError("ai-edge-litert", feature="running TFLite artifacts") from None


def read_metadata(data: bytes) -> dict[str, Any]:
    """The "edgecc" metadata JSON of a TFLite model written by edgecc ({} when absent)."""
    from tflite.Model import Model

    try:
        model = Model.GetRootAs(data, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name() == b"edgecc":
                buffer = model.Buffers(entry.Buffer())
                return json.loads(buffer.DataAsNumpy().tobytes().decode())
    except Exception as exc:  # noqa: BLE001 -- flatbuffers raises struct/index errors on corrupt files
        raise InvalidInputError(f"not a readable TFLite flatbuffer: {exc}") from None
    return {}


class TfliteRunner:
    """The TFLite interpreter over an edgecc artifact; `.inputs/.outputs` describe the ONNX partition's tensors."""

    def __init__(self, path_or_bytes: str | Path | bytes, *, name: str = "<tflite>", num_threads: int = 1) -> None:
        import numpy as np

        data = Path(path_or_bytes).read_bytes() if isinstance(path_or_bytes, (str, Path)) else bytes(path_or_bytes)
        if len(data) < 8 or data[4:8] != b"TFL3":
            raise InvalidInputError(f"{name}: not a TFLite flatbuffer (no TFL3 identifier)")
        self.name = name
        self.meta = read_metadata(data)
        interpreter = interpreter_class()
        try:
            with native_stderr(log):  # the interpreter announces its XNNPACK delegate on fd 2
                self.interpreter = interpreter(model_content=data, num_threads=num_threads)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise InvalidInputError(
                f"{name}: the TFLite interpreter rejected the model: {' '.join(str(exc).split())[:300]}"
            ) from None
        details_in = {d["index"]: d for d in self.interpreter.get_input_details()}
        details_out = {d["index"]: d for d in self.interpreter.get_output_details()}
        if not self.meta:  # a TFLite file not written by edgecc: describe its own tensors
            self.meta = {"inputs": [_plain(d) for d in details_in.values()], "outputs": [_plain(d) for d in details_out.values()]}
        self._in = {e["name"]: e for e in self.meta["inputs"]}
        self._out = {e["name"]: e for e in self.meta["outputs"]}
        self.inputs = [TensorInfo(e["name"], tuple(e["shape"]), e["onnx_dtype"]) for e in self.meta["inputs"]]
        self.outputs = [TensorInfo(e["name"], tuple(e["shape"]), e["onnx_dtype"]) for e in self.meta["outputs"]]
        self._np = np

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Run once with ONNX-layout feeds; returns ONNX-layout outputs (dtype as the ONNX partition's)."""
        np = self._np
        missing = [n for n in self._in if n not in feeds]
        unknown = [n for n in feeds if n not in self._in]
        if missing or unknown:
            raise UsageError(
                f"inputs do not match {self.name}: "
                + (f"unknown {', '.join(unknown)}; " if unknown else "")
                + (f"missing {', '.join(missing)}" if missing else ""),
                hint=f"the model takes {', '.join(i.name + ':' + i.shape_text() for i in self.inputs)}",
            )
        for name, entry in self._in.items():
            array = np.asarray(feeds[name])
            if tuple(array.shape) != tuple(entry["shape"]):
                raise UsageError(f"input '{name}' of {self.name} has shape {list(array.shape)}, the model takes {entry['shape']}")
            self.interpreter.set_tensor(entry["tensor"], to_tflite(np, array, entry))
        self.interpreter.invoke()
        names = list(outputs) if outputs is not None else list(self._out)
        result = {}
        for name in names:
            if name not in self._out:
                raise UsageError(f"'{name}' is not an output of {self.name}", hint=f"outputs: {', '.join(self._out)}")
            entry = self._out[name]
            result[name] = from_tflite(np, self.interpreter.get_tensor(entry["tensor"]), entry)
        return result


def _plain(detail: Mapping[str, Any]) -> dict[str, Any]:
    scale, zero = detail.get("quantization", (0.0, 0))
    entry = {
        "name": detail["name"],
        "tensor": detail["index"],
        "shape": [int(d) for d in detail["shape"]],
        "onnx_dtype": detail["dtype"].__name__ if hasattr(detail["dtype"], "__name__") else str(detail["dtype"]),
        "dtype": detail["dtype"].__name__ if hasattr(detail["dtype"], "__name__") else str(detail["dtype"]),
        "perm": list(range(len(detail["shape"]))),
    }
    if scale:
        entry.update(scale=float(scale), zero_point=int(zero))
    return entry


def to_tflite(np: Any, array: np.ndarray, entry: Mapping[str, Any]) -> np.ndarray:
    """ONNX-layout feed -> the TFLite input tensor (transposed; quantised when the TFLite input is integer)."""
    array = np.transpose(array, entry["perm"])
    if entry["dtype"] in ("int8", "uint8") and array.dtype.kind == "f":
        info = np.iinfo(entry["dtype"])
        array = np.clip(np.round(array / entry["scale"]) + entry["zero_point"], info.min, info.max)
    elif entry["dtype"] in ("int8", "uint8") and str(array.dtype) != entry["dtype"]:
        array = array.astype(np.int32) + (entry["zero_point"] - _onnx_zero(entry))
    return np.ascontiguousarray(array.astype(entry["dtype"]))


def _onnx_zero(entry: Mapping[str, Any]) -> int:
    """Zero point of the ONNX-side integer input (int8 and uint8 differ by 128)."""
    shift = {("int8", "uint8"): 128, ("uint8", "int8"): -128}.get((entry["dtype"], entry["onnx_dtype"]), 0)
    return entry["zero_point"] + shift


def from_tflite(np: Any, array: np.ndarray, entry: Mapping[str, Any]) -> np.ndarray:
    """TFLite output tensor -> ONNX layout and dtype (dequantised when the ONNX output is float)."""
    array = np.transpose(array, [entry["perm"].index(i) for i in range(len(entry["perm"]))])
    if entry["onnx_dtype"] == "float32" and array.dtype.kind in "iu" and "scale" in entry:
        array = (array.astype(np.float32) - np.float32(entry["zero_point"])) * np.float32(entry["scale"])
    elif entry["onnx_dtype"] != entry["dtype"] and array.dtype.kind in "iu":
        array = array.astype(np.int32) - entry["zero_point"] + _onnx_zero(entry)
    return np.ascontiguousarray(array.astype(entry["onnx_dtype"]))
