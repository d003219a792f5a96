"""ONNX op type -> TFLite converter registry; one module per op family (conv, elementwise, pool, shape, quantize).

Each converter is `convert(ctx, node, attrs)` writing TFLite operators through the `Context`; its optional
`check(view) -> (ok, reason)` says up front (on a `NodeView`, for the targets' constraint tables) whether the
writer can express the node; `tflite` lists the TFLite builtins it may produce (the docs' mapping table);
`planned` is the builtin the targets' vendor rules see for the node before emission (`PlannedOp`: one op, or
a choice among a few made from attributes and shapes). It is the only ONNX -> TFLite op map the TFLite
targets plan with (`edgecc.targets.tflite.rules.tflite_op`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgecc.registry import Registry

if TYPE_CHECKING:
    from edgecc.targets.api import NodeView

__all__ = ["CONVERTERS", "OpConverter", "PlannedOp", "converter", "load"]

Check = Callable[["NodeView"], "tuple[bool, str]"]


@dataclass(frozen=True)
class PlannedOp:
    """The TFLite builtin a node becomes, as the planner sees it: `ops` are every builtin the choice can give,
    `choose(view)` picks one of them from attributes/shapes (no `choose`: the only one).

    A planned op is one of the converter's `tflite` builtins, except for forms the converter's `check` refuses
    (dynamic MatMul -> BATCH_MATMUL): planning names them so that the vendor rules for them are reported too.
    """

    ops: tuple[str, ...]
    choose: Callable[[NodeView], str] | None = None

    def __call__(self, view: NodeView) -> str:
        return self.choose(view) if self.choose is not None else self.ops[0]


@dataclass(frozen=True)
class OpConverter:
    """How one ONNX op type becomes TFLite operators (and which one the planner expects)."""

    convert: Callable[..., Any]
    tflite: tuple[str, ...]
    check: Check | None = None
    planned: PlannedOp | None = None  # None: no TFLite operator (Constant, Identity)
    float_only: bool = False  # the writer writes it in float only (no int8 kernel in TFLite: DIV)


CONVERTERS: Registry[OpConverter] = Registry("TFLite op converter")

_MODULES = ("conv", "elementwise", "pool", "shape", "quantize")
_loaded = False


Planned = str | PlannedOp  # a builtin name, or a choice among a few


def _planned(op_type: str, tflite: tuple[str, ...], planned: Planned | Mapping[str, Planned] | None) -> PlannedOp | None:
    choice = planned.get(op_type) if isinstance(planned, Mapping) else planned
    if isinstance(choice, str):
        return PlannedOp((choice,))
    if choice is not None or not tflite:
        return choice
    if len(tflite) > 1:
        raise ValueError(
            f"TFLite converter of {op_type} may write {', '.join(tflite)}: say which one targets plan with (planned=...)"
        )
    return PlannedOp(tflite)


def converter(
    *op_types: str,
    tflite: tuple[str, ...],
    check: Check | None = None,
    planned: Planned | Mapping[str, Planned] | None = None,
    float_only: Collection[str] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as the converter of `op_types`.

    `planned`: the builtin targets plan with (a name, a `PlannedOp`, or one of those per op type); by default the
    only `tflite` builtin. `float_only`: those of `op_types` the writer refuses in int8 (placement keeps them off an
    integer partition).
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for op_type in op_types:
            entry = OpConverter(func, tflite, check, _planned(op_type, tflite, planned), op_type in float_only)
            CONVERTERS.register(op_type, entry)
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
