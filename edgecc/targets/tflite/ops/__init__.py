"""ONNX op type -> TFLite converter registry; one module per op family (conv, elementwise, pool, shape, quantize).

Each converter is `convert(ctx, node, attrs)` writing TFLite operators through the `Context`; its optional
`check(view) -> (ok, reason)` says up front (on a `NodeView`, for the targets' constraint tables) whether the
writer can express the node; `tflite` lists the TFLite builtins it may produce (the docs' mapping table).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgecc.registry import Registry

if TYPE_CHECKING:
    from edgecc.targets.api import NodeView

__all__ = ["CONVERTERS", "OpConverter", "converter", "load"]

Check = Callable[["NodeView"], "tuple[bool, str]"]


@dataclass(frozen=True)
class OpConverter:
    """How one ONNX op type becomes TFLite operators."""

    convert: Callable[..., Any]
    tflite: tuple[str, ...]
    check: Check | None = None


CONVERTERS: Registry[OpConverter] = Registry("TFLite op converter")

_MODULES = ("conv", "elementwise", "pool", "shape", "quantize")
_loaded = False


def converter(*op_types: str, tflite: tuple[str, ...], check: Check | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as the converter of `op_types`."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for op_type in op_types:
            CONVERTERS.register(op_type, OpConverter(func, tflite, check))
        return func

    return decorate


def load() -> Registry[OpConverter]:
    """The registry with every op family module imported."""
    global _loaded
    if not _loaded:
        import importlib

        for name in _MODULES:
            importlib.import_module(f"edgecc.targets.tflite.ops.{name}")
        _loaded = True
    return CONVERTERS
