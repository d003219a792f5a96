"""Run ONNX models with onnxruntime, with errors turned into EdgeccErrors."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from edgecc.errors import InvalidInputError, UnsupportedError, UnsupportedNode, UnsupportedOperator, UsageError
from edgecc.inputs import DTYPES, TensorInfo

if TYPE_CHECKING:
    import numpy as np
    import onnx

__all__ = ["OrtRunner", "ort_type_to_dtype"]


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


class OrtRunner:
    """An onnxruntime CPU session over an ONNX model (proto or file)."""

    def __init__(
        self, model: "onnx.ModelProto | str | Path", *, name: str = "<model>", optimize: bool = True, threads: int = 0
    ) -> None:
        import onnxruntime as ort

        from edgecc.onnxutil import serialize_onnx

        self.name = name
        self.model = None if isinstance(model, (str, Path)) else model
        options = ort.SessionOptions()
        options.log_severity_level = 3
        threads = threads or _env_threads()
        if threads:
            options.intra_op_num_threads = threads
        if not optimize:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        source = str(model) if isinstance(model, (str, Path)) else serialize_onnx(model)
        try:
            self.session = ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 -- onnxruntime raises its own Fail/InvalidGraph/NotImplemented types
            raise _session_error(exc, name, self.model) from None
        self.inputs = [TensorInfo(i.name, _dims(i.shape), ort_type_to_dtype(i.type)) for i in self.session.get_inputs()]
        self.outputs = [TensorInfo(o.name, _dims(o.shape), ort_type_to_dtype(o.type)) for o in self.session.get_outputs()]

    def run(self, feeds: Mapping[str, "np.ndarray"], outputs: Sequence[str] | None = None) -> dict[str, "np.ndarray"]:
        """Run once; returns output name -> array."""
        names = list(outputs) if outputs is not None else [o.name for o in self.outputs]
        expected = {i.name for i in self.inputs}
        unknown = [k for k in feeds if k not in expected]
        missing = [k for k in expected if k not in feeds]
        if unknown or missing:
            raise UsageError(
                f"inputs do not match {self.name}: "
                + (f"unknown {', '.join(unknown)}; " if unknown else "")
                + (f"missing {', '.join(missing)}" if missing else ""),
                hint=f"the model takes {', '.join(i.name + ':' + i.shape_text() for i in self.inputs)}",
            )
        dtypes = {i.name: i.dtype for i in self.inputs}
        feeds = {
            k: v.astype(dtypes[k])
            if v.dtype.kind == "f" and dtypes[k] in ("float16", "float32", "float64") and str(v.dtype) != dtypes[k]
            else v
            for k, v in feeds.items()
        }
        try:
            values = self.session.run(names, dict(feeds))
        except Exception as exc:  # noqa: BLE001 -- onnxruntime raises its own Fail/InvalidArgument/RuntimeException types
            message = " ".join(str(exc).split())
            raise InvalidInputError(f"onnxruntime failed to run {self.name}: {message[:500]}", path=self.name) from None
        return dict(zip(names, values))


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
