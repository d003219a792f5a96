"""Run ONNX models with onnxruntime, with errors turned into EdgeccErrors."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from edgecc.errors import InvalidInputError, UnsupportedError, UnsupportedNode, UnsupportedOperator, UsageError
from edgecc.inputs import DTYPES, TensorInfo

if TYPE_CHECKING:
    import numpy as np
    import onnx

__all__ = ["OrtRunner", "ort_type_to_dtype", "ort_threads", "session_threads"]


_NOT_IMPLEMENTED = re.compile(r"Could not find an implementation for (\w+)\((\d+)\) node with name '([^']*)'")


def ort_type_to_dtype(type_text: str) -> str:
    """`tensor(float)` -> `float32`."""
    inner = type_text[type_text.find("(") + 1 : type_text.rfind(")")] if "(" in type_text else type_text
    return "object" if inner == "string" else DTYPES.get(inner, inner)


def _dims(shape: Sequence[object] | None) -> tuple[int | str | None, ...] | None:
    if shape is None:
        return None
    return tuple(d if isinstance(d, (int, str)) else None for d in shape)


def _env_threads() -> int:
    """EDGECC_ORT_THREADS: onnxruntime intra-op threads for every session of this process (0: onnxruntime's default).

    Set by `edgecc zoo run --workers N` in each worker, so that N workers share the cores instead of oversubscribing them.
    """
    import os

    try:
        return max(0, int(os.environ.get("EDGECC_ORT_THREADS", "0")))
    except ValueError:
        return 0


def session_threads() -> int:
    """The intra-op thread count new sessions of this process get (0: onnxruntime's default, every core)."""
    return _env_threads()


@contextlib.contextmanager
def ort_threads(threads: int | None) -> Iterator[None]:
    """Sessions created inside get `threads` intra-op threads (None: unchanged; 0: onnxruntime's default).

    Measurements use 1: a multi-threaded session on a machine that other jobs load waits for its preempted worker
    threads, which makes its latency swing by tens of percent between runs and even between two sessions of one model.
    """
    import os

    if threads is None:
        yield
        return
    before = os.environ.get("EDGECC_ORT_THREADS")
    os.environ["EDGECC_ORT_THREADS"] = str(threads)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("EDGECC_ORT_THREADS", None)
        else:
            os.environ["EDGECC_ORT_THREADS"] = before


class OrtRunner:
    """An onnxruntime CPU session over an ONNX model (proto or file)."""

    def __init__(
        self, model: "onnx.ModelProto | str | Path", *, name: str = "<model>", optimize: bool = True, threads: int = 0
    ) -> None:
        import onnx
        import onnxruntime as ort

        from edgecc.onnxutil import serialize_onnx
        from edgecc.ortint8 import host_int8_mode, to_unsigned

        self.name = name
        self.model = None if isinstance(model, (str, Path)) else model
        options = ort.SessionOptions()
        options.log_severity_level = 3
        threads = threads or _env_threads()
        if threads:
            options.intra_op_num_threads = threads
        if not optimize:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        source: str | bytes = str(model) if isinstance(model, (str, Path)) else serialize_onnx(model)
        self._unsigned: set[str] = set()  # int8 inputs/outputs the session holds as uint8 + 128
        self.int8_kernels = host_int8_mode() if optimize else "reference"
        if self.int8_kernels == "unsigned":
            proto = self.model if self.model is not None else _load_for_rewrite(model)
            unsigned = to_unsigned(proto) if proto is not None else None
            if unsigned is None:
                self.int8_kernels = "reference"
            elif unsigned is proto:  # no int8 tensor: nothing can saturate
                self.int8_kernels = "fused"
            else:
                source = serialize_onnx(unsigned)
                edges = [*proto.graph.input, *proto.graph.output]
                self._unsigned = {v.name for v in edges if v.type.tensor_type.elem_type == onnx.TensorProto.INT8}
        if self.int8_kernels == "reference":
            options.add_session_config_entry("session.disable_quant_qdq", "1")
        try:
            self.session = ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 -- onnxruntime raises its own Fail/InvalidGraph/NotImplemented types
            raise _session_error(exc, name, self.model) from None
        self.inputs = [TensorInfo(i.name, _dims(i.shape), self._dtype(i)) for i in self.session.get_inputs()]
        self.outputs = [TensorInfo(o.name, _dims(o.shape), self._dtype(o)) for o in self.session.get_outputs()]
        # inputs with a default (an initializer of the same name, e.g. a streaming model's state): may be fed
        self.optional_inputs = [
            TensorInfo(i.name, _dims(i.shape), self._dtype(i)) for i in self.session.get_overridable_initializers()
        ]

    def _dtype(self, info: object) -> str:
        return "int8" if info.name in self._unsigned else ort_type_to_dtype(info.type)

    def run(self, feeds: Mapping[str, "np.ndarray"], outputs: Sequence[str] | None = None) -> dict[str, "np.ndarray"]:
        """Run once; returns output name -> array."""
        names = list(outputs) if outputs is not None else [o.name for o in self.outputs]
        expected = {i.name for i in self.inputs}
        optional = {i.name for i in self.optional_inputs}
        unknown = [k for k in feeds if k not in expected and k not in optional]
        missing = [k for k in expected if k not in feeds]
        if unknown or missing:
            raise UsageError(
                f"inputs do not match {self.name}: "
                + (f"unknown {', '.join(unknown)}; " if unknown else "")
                + (f"missing {', '.join(missing)}" if missing else ""),
                hint=f"the model takes {', '.join(i.name + ':' + i.shape_text() for i in self.inputs)}",
            )
        dtypes = {i.name: i.dtype for i in [*self.inputs, *self.optional_inputs]}
        feeds = {
            k: v.astype(dtypes[k])
            if v.dtype.kind == "f" and dtypes[k] in ("float16", "float32", "float64") and str(v.dtype) != dtypes[k]
            else v
            for k, v in feeds.items()
        }
        import numpy as np

        feeds = {k: _shift(v, 128, np.uint8) if k in self._unsigned else v for k, v in feeds.items()}
        try:
            values = self.session.run(names, dict(feeds))
        except Exception as exc:  # noqa: BLE001 -- onnxruntime raises its own Fail/InvalidArgument/RuntimeException types
            message = " ".join(str(exc).split())
            raise InvalidInputError(f"onnxruntime failed to run {self.name}: {message[:500]}", path=self.name) from None
        return {n: _shift(v, -128, np.int8) if n in self._unsigned else v for n, v in zip(names, values)}


def _shift(array: "np.ndarray", offset: int, dtype: type) -> "np.ndarray":
    import numpy as np

    return (np.asarray(array).astype(np.int16) + offset).astype(dtype)


def _load_for_rewrite(path: "str | Path") -> "onnx.ModelProto | None":
    """The model of a file, for the int8 rewrite (None: unreadable here; the session will say why)."""
    from edgecc.errors import EdgeccError
    from edgecc.onnxutil import load_onnx

    try:
        return load_onnx(path, check=False)
    except EdgeccError:
        return None


_ORT_DOMAINS = ("", "ai.onnx", "ai.onnx.ml", "com.microsoft", "com.microsoft.nchwc", "ai.onnx.preview.training")
_NOT_REGISTERED = re.compile(r"([\w.]*):(\w+)\((-?\d+)\) is not a registered function/op")


def _session_error(exc: Exception, name: str, model: "onnx.ModelProto | None" = None) -> Exception:
    message = " ".join(str(exc).split())
    match = _NOT_REGISTERED.search(message)
    if match:
        domain, op_type, _ = match.groups()
        graph_nodes = list(model.graph.node) if model is not None else []
        # every node of a domain onnxruntime does not know, not only the first one it tripped on
        nodes = [
            n
            for n in graph_nodes
            if (n.domain or "") not in _ORT_DOMAINS or (n.op_type == op_type and (n.domain or "") == domain)
        ]
        found = [
            UnsupportedNode(n.name, n.op_type, f"onnxruntime has no kernel for {n.domain + ':' if n.domain else ''}{n.op_type}")
            for n in nodes
        ]
        reason = f"onnxruntime has no kernel for {domain + ':' if domain else ''}{op_type}"
        return UnsupportedOperator(
            found or [UnsupportedNode("", op_type, reason)],
            where=name,
            hint="register the custom-op library with onnxruntime or replace the operator",
        )
    match = _NOT_IMPLEMENTED.search(message)
    if match:
        op_type, version, node = match.groups()
        return UnsupportedOperator(
            [UnsupportedNode(node, op_type, f"onnxruntime has no CPU kernel for {op_type}-{version}")],
            where=name,
            hint="choose another --opset or replace the operator",
        )
    if "NOT_IMPLEMENTED" in message:
        return UnsupportedError(f"onnxruntime cannot run {name}: {message[:400]}", path=name)
    return InvalidInputError(f"onnxruntime cannot load {name}: {message[:400]}", path=name)
