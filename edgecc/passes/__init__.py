"""Graph passes: a registry of named, numerics-preserving rewrites of ONNX models, and the -O levels.

A pass is a function `(model: onnx_ir.Model, context: PassContext) -> PassResult`:
it edits the model in place (or returns a new one) and says whether it changed
anything and how many rewrites it made; the pass manager
(`edgecc.passes.manager`) checks that claim and records what each pass removed,
added and fused. Pipelines are data: lists of pass names (`LEVELS`, each level
the one below plus `LEVEL_ADDITIONS`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgecc.passes.api import (
    LEVEL_ADDITIONS,
    LEVELS,
    PASSES,
    Pass,
    PassContext,
    PassFunction,
    PassResult,
    load_passes,
    pipeline_for,
    register_pass,
)

if TYPE_CHECKING:
    from edgecc.passes.manager import OptimizeReport, run_passes

__all__ = [
    "PASSES",
    "Pass",
    "PassContext",
    "PassFunction",
    "PassResult",
    "register_pass",
    "LEVELS",
    "LEVEL_ADDITIONS",
    "load_passes",
    "pipeline_for",
    "run_passes",
    "OptimizeReport",
]


def __getattr__(name: str) -> object:
    """`run_passes` and `OptimizeReport` (the pass manager, the stage's public entry point), imported on first use."""
    if name in ("run_passes", "OptimizeReport"):
        from edgecc.passes import manager

        return getattr(manager, name)
    raise AttributeError(name)
