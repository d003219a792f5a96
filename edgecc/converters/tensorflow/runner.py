"""The original model run by TensorFlow (Keras, SavedModel, GraphDef) or the TFLite interpreter.

Feeds arrive keyed by the converted ONNX model's input names; inputs converted
with --nchw-inputs arrive NCHW and are transposed back to NHWC here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from edgecc.converters.tensorflow import schema
from edgecc.converters.tensorflow.reader import one_line
from edgecc.converters.tensorflow.runtime import quiet, tf
from edgecc.converters.tensorflow.schema import Source
from edgecc.errors import InvalidInputError, UnsupportedError
from edgecc.inputs import TensorInfo

if TYPE_CHECKING:
    import numpy as np

__all__ = ["TensorFlowReference", "make_reference"]


def _to_nchw(info: TensorInfo) -> TensorInfo:
    if info.shape is None or len(info.shape) < 3:
        return info
    shape = info.shape
    return TensorInfo(info.name, (shape[0], shape[-1], *shape[1:-1]), info.dtype)


class TensorFlowReference:
    """Runs a Source in its own framework; `.inputs`/`.outputs` use the ONNX model's names."""

    def __init__(self, source: Source, nchw: Sequence[str] = ()) -> None:
        self.source = source
        self.nchw = set(nchw)
        label = {schema.TFLITE: "TFLite interpreter"}.get(source.kind, "TensorFlow")
        self.name = f"{label} ({schema.KIND_NAMES[source.kind]})"
        if source.kind == schema.TFLITE:
            tflite_interpreters(source)
            if source.extra["reference_of"] != "the original file":
                self.name = f"{label} ({source.extra['reference_of']}: {'; '.join(source.extra['notes'])})"
        self.inputs = [_to_nchw(i) if i.name in self.nchw else i for i in source.inputs]
        self.outputs = [TensorInfo(n, None, "float32") for n in source.outputs]

    def spread(self) -> dict[str, float]:
        """TFLite: per output, the largest difference between XNNPACK and TFLite's builtin kernels so far."""
        return dict(self.source.extra.get("spread", {}))

    def spread_within_one(self) -> dict[str, float]:
        """TFLite: per output, the fraction of elements on which XNNPACK and the builtin kernels agree within 1 (one
        quantisation step of an integer output) so far."""
        counts = self.source.extra.get("spread_counts", {})
        return {name: within / total for name, (within, total) in counts.items() if total}

    def _nhwc(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import numpy as np

        out = {}
        for info in self.source.inputs:
            value = np.asarray(feeds[info.name])
            if info.name in self.nchw and value.ndim >= 3:
                value = np.moveaxis(value, 1, -1)
            if info.dtype not in ("object",) and str(value.dtype) != info.dtype:
                value = value.astype(info.dtype)
            out[info.name] = np.ascontiguousarray(value)
        return out

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once; returns output name -> array."""
        values = self._nhwc(feeds)
        try:
            with quiet():
                results = _RUNNERS[self.source.kind](self.source, values)
        except InvalidInputError:
            raise
        except Exception as exc:  # noqa: BLE001 -- TensorFlow, Keras and tf2onnx raise errors of many types
            raise InvalidInputError(
                f"{self.name} failed to run '{self.source.path}': {one_line(exc)}", path=self.source.path
            ) from None
        return results


def _as_numpy(value: Any) -> np.ndarray:
    import numpy as np

    return np.asarray(value.numpy() if hasattr(value, "numpy") else value)


def _run_keras(source: Source, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    args = [values[i.name] for i in source.inputs]
    result = source.model(args[0] if len(args) == 1 else args, training=False)
    if isinstance(result, dict):
        return {name: _as_numpy(result[name]) for name in source.outputs}
    items = list(result) if isinstance(result, (list, tuple)) else [result]
    return {name: _as_numpy(v) for name, v in zip(source.outputs, items)}


def _run_saved_model(source: Source, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    tfm = tf()
    result = source.model(**{k: tfm.constant(v) for k, v in values.items()})
    return {name: _as_numpy(result[name]) for name in source.outputs}


def _run_graph(source: Source, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    tfm = tf()
    graph = source.extra["graph"]
    session = source.extra.get("session")
    if session is None:
        session = source.extra["session"] = tfm.compat.v1.Session(graph=graph)
    fetched = session.run(list(source.outputs), feed_dict={graph.get_tensor_by_name(k): v for k, v in values.items()})
    return {name: _as_numpy(v) for name, v in zip(source.outputs, fetched)}


def _invoke(interpreter: Any, values: Mapping[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
    details = interpreter.get_input_details()
    resized = False
    for detail in details:
        value = values[detail["name"]]
        if tuple(detail["shape"]) != value.shape:
            interpreter.resize_tensor_input(detail["index"], list(value.shape))
            resized = True
    if resized:
        interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], values[detail["name"]])
    interpreter.reset_all_variables()  # every sample from the initial state (an LSTM's state variables persist)
    interpreter.invoke()
    by_name = {d["name"]: d for d in interpreter.get_output_details()}
    return {name: interpreter.get_tensor(by_name[name]["index"]).copy() for name in outputs}


def _first_loading(candidates: Sequence[tuple[str, bytes, bool]]) -> tuple[Any, str, list[str]]:
    """The first (what, bytes, delegates) the interpreter loads: (interpreter, what, why the earlier ones failed)."""
    from edgecc.converters.tensorflow.reader import interpreter_from_bytes

    failures = []
    for what, data, delegates in candidates:
        try:
            return interpreter_from_bytes(data, delegates=delegates), what, failures
        except Exception as exc:  # noqa: BLE001 -- the TFLite interpreter raises RuntimeError/ValueError with its own text
            failures.append(f"{what}: {one_line(exc, 160)}")
    return None, "", failures


def tflite_interpreters(source: Source) -> None:
    """Load the reference interpreters of a TFLite Source once (kept in `source.extra`).

    The reference runs the original file as users run it (AUTO: XNNPACK, which also runs MediaPipe's custom
    convolution); when the full interpreter refuses the original, the flatbuffer edgecc rewrote for conversion
    is run instead (said in the reference's name). A second interpreter over TFLite's own builtin kernels
    (BUILTIN_WITHOUT_DEFAULT_DELEGATES) measures the reference's spread. Neither loading is exit 4 naming why.
    """
    if "interpreter" in source.extra:
        return
    original, converted = source.extra["original"], source.extra["converted"]
    candidates = [("the original file", original, True)]
    if converted is not original:
        candidates.append(("the rewritten flatbuffer", converted, True))
    interpreter, what, failures = _first_loading(candidates)
    if interpreter is None:
        raise UnsupportedError(
            f"no reference for '{source.path}': the TFLite interpreter loads neither {' nor '.join(failures)}",
            path=source.path,
            hint="convert with --no-verify (the TFLite Micro runtime, tflite-micro, is not used by edgecc)",
        )
    source.extra["interpreter"] = interpreter
    source.extra["reference_of"] = what
    second = [("builtin kernels on the original file", original, False)]
    if converted is not original:
        second.append(("builtin kernels on the rewritten flatbuffer", converted, False))
    source.extra["spread_interpreter"], source.extra["spread_of"], _ = _first_loading(second)


def _run_tflite(source: Source, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if source.extra["flatbuffer"].states:  # resource variables: every sample is the first step from the initial state
        for key in ("interpreter", "spread_interpreter"):
            source.extra.pop(key, None)
    tflite_interpreters(source)
    results = _invoke(source.extra["interpreter"], values, source.outputs)
    second = source.extra.get("spread_interpreter")
    if second is not None:
        import numpy as np

        other = _invoke(second, values, source.outputs)
        spread = source.extra.setdefault("spread", {})
        for name, value in results.items():
            a, b = np.asarray(value, dtype=np.float64), np.asarray(other[name], dtype=np.float64)
            if a.shape == b.shape and a.size:
                finite = np.isfinite(a) & np.isfinite(b)
                gaps = np.abs(a[finite] - b[finite])
                spread[name] = max(spread.get(name, 0.0), float(gaps.max(initial=0.0)))
                counts = source.extra.setdefault("spread_counts", {})
                within, total = counts.get(name, (0, 0))
                counts[name] = (within + int((gaps <= 1.0).sum()), total + int(gaps.size))
    return results


def _run_tfjs(source: Source, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return (_run_graph if source.extra["tfjs_format"] == "graph" else _run_keras)(source, values)


_RUNNERS = {
    schema.KERAS: _run_keras,
    schema.KERAS_H5: _run_keras,
    schema.SAVED_MODEL: _run_saved_model,
    schema.GRAPHDEF: _run_graph,
    schema.TFLITE: _run_tflite,
    schema.TFJS: _run_tfjs,
}


def make_reference(source: Source, nchw: Sequence[str] = ()) -> TensorFlowReference:
    """The runnable original model."""
    return TensorFlowReference(source, nchw)
