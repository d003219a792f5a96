"""ONNX -> TFLite writer (flatbuffer written with the `tflite` package's generated schema code), its interpreter
runner and its verification against onnxruntime; `target` (TfliteTarget, the emit flow of the TFLite-consuming
targets) and `rules` (their shared checks, the planned TFLite op of a node) are built on it.

Public API (heavy imports happen inside the functions):
  emit_tflite(model, io_type="float32"|"int8"|"uint8", always_bias=False, flat_fully_connected=False, name=...)
                                               -> TfliteArtifact
  writer_supports(view) -> (ok, reason)       whether the writer can express one ONNX node
  TFLITE_OP_FOR                                ONNX op type -> TFLite builtin operators it may become (docs; the
                                               planned one of each: rules.tflite_op)
  TfliteRunner(path_or_bytes, name=..., num_threads=1)  runs an artifact like the ONNX partition it came from
  compare_with_onnx(tflite, onnx_model, feeds) -> dict  TFLite interpreter vs onnxruntime on the same feeds
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["TFLITE_OP_FOR", "TfliteArtifact", "TfliteRunner", "compare_with_onnx", "emit_tflite", "writer_supports"]

if TYPE_CHECKING:
    from edgecc.targets.api import NodeView
    from edgecc.targets.tflite.check import compare_with_onnx
    from edgecc.targets.tflite.emit import TfliteArtifact, emit_tflite
    from edgecc.targets.tflite.runner import TfliteRunner

_LAZY = {
    "emit_tflite": "edgecc.targets.tflite.emit",
    "TfliteArtifact": "edgecc.targets.tflite.emit",
    "TfliteRunner": "edgecc.targets.tflite.runner",
    "compare_with_onnx": "edgecc.targets.tflite.check",
}


def writer_supports(view: NodeView) -> tuple[bool, str]:
    """Whether the TFLite writer can express this ONNX node (Q/DQ included), with the reason when not."""
    from edgecc.targets.tflite.ops import load

    registry = load()
    if view.domain not in ("", "ai.onnx"):
        return False, f"custom domain '{view.domain}' has no TFLite operator"
    if view.op_type not in registry:
        return False, f"{view.op_type} has no TFLite operator in edgecc's writer"
    entry = registry.get(view.op_type)
    if entry.float_only and view.runs_integer:
        builtin = entry.planned(view) if entry.planned is not None else view.op_type
        return False, f"int8 {view.op_type}: TFLite's {builtin} has no int8 kernel (it runs in float)"
    return entry.check(view) if entry.check is not None else (True, "")


def _op_table() -> dict[str, tuple[str, ...]]:
    from edgecc.targets.tflite.ops import load

    return {name: entry.tflite for name, entry in sorted(load().items())}


def __getattr__(name: str) -> Any:
    if name == "TFLITE_OP_FOR":
        return _op_table()
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
