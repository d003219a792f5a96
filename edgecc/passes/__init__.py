"""Graph passes: a registry of named, numerics-preserving rewrites of ONNX models, and the -O levels.

A pass is a function `(model: onnx_ir.Model, context: PassContext) -> int` that
edits the model in place and returns how many rewrites it made; the pass
manager (`edgecc.passes.manager`) records what each pass removed, added and
fused. Pipelines are data: lists of pass names (`LEVELS`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgecc.registry import Registry

if TYPE_CHECKING:
    import onnx_ir as ir

__all__ = ["PASSES", "Pass", "PassContext", "register_pass", "LEVELS", "load_passes", "pipeline_for"]


@dataclass(frozen=True)
class PassContext:
    """Settings passes may read (frozen: unknown keys are rejected)."""

    opset: int | None = None  # target ai.onnx opset for opset-dependent rewrites
    fold_size_limit: int = 1 << 20  # constant folding: largest tensor (elements) created or read


@dataclass(frozen=True)
class Pass:
    """A registered pass: name, family, one-line description and the function."""

    name: str
    family: str
    description: str
    run: Callable[["ir.Model", PassContext], "int | tuple[ir.Model, int]"]
    once: bool = False  # runs once after the fixed-point loop (annotations, analyses, opset conversion)


PASSES: Registry[Pass] = Registry("pass")

_PASS_MODULES = ("edgecc.passes.cleanup", "edgecc.passes.fusion", "edgecc.passes.layout", "edgecc.passes.patterns")


def register_pass(name: str, family: str, *, once: bool = False) -> Callable[[Callable[["ir.Model", PassContext], int]], Callable[["ir.Model", PassContext], int]]:
    """Register a pass function; its docstring's first line is its description."""

    def decorator(func: Callable[["ir.Model", PassContext], int]) -> Callable[["ir.Model", PassContext], int]:
        description = (func.__doc__ or "").strip().splitlines()[0] if func.__doc__ else ""
        PASSES.register(name, Pass(name, family, description, func, once))
        return func

    return decorator


def load_passes() -> Registry[Pass]:
    """Import every pass module (they register themselves) and return the registry."""
    for module in _PASS_MODULES:
        importlib.import_module(module)
    return PASSES


#: -O levels as lists of pass names
LEVELS: dict[int, tuple[str, ...]] = {
    0: (),
    1: ("eliminate-identity", "fold-constants", "eliminate-dead-code", "dedup-initializers", "eliminate-common-subexpressions"),
    2: (
        "eliminate-identity", "fold-constants", "eliminate-dead-code", "dedup-initializers", "eliminate-common-subexpressions",
        "fold-batchnorm", "fold-affine", "matmul-add-to-gemm", "fold-pad", "collapse-reshapes", "merge-slices", "optimize-transposes",
    ),
    3: (
        "eliminate-identity", "fold-constants", "eliminate-dead-code", "dedup-initializers", "eliminate-common-subexpressions",
        "fold-batchnorm", "fold-affine", "matmul-add-to-gemm", "fold-pad", "collapse-reshapes", "merge-slices", "optimize-transposes",
        "recognize-patterns", "annotate-activations", "normalize-opset", "infer-shapes",
    ),
}


def pipeline_for(level: int, edits: tuple[str, ...] = ()) -> list[str]:
    """The pass names of `level`, with `name`/`+name` appended and `-name` removed."""
    from edgecc.errors import UsageError

    if level not in LEVELS:
        raise UsageError(f"unknown optimisation level {level}", hint=f"choose one of {', '.join(map(str, LEVELS))}")
    registry = load_passes()
    names = list(LEVELS[level])
    for edit in edits:
        remove = edit.startswith("-")
        name = edit.lstrip("+-")
        if name not in registry:
            raise UsageError(f"unknown pass '{name}'", hint=f"`edgecc passes` lists them: {', '.join(registry.names())}")
        if remove:
            names = [n for n in names if n != name]
        elif name not in names:
            names.append(name)
    return names
