"""Helpers to run onnxscript rewrite rules as edgecc passes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import onnx_ir as ir

__all__ = ["apply_rules", "remove_unused"]


def apply_rules(model: "ir.Model", rules: Sequence[Any], *, commute: bool = False) -> int:
    """Apply onnxscript rewrite rules until none matches; returns the number of rewrites."""
    from onnxscript.rewriter import pattern

    rule_set = pattern.RewriteRuleSet(list(rules), commute=commute)
    total = 0
    for _ in range(8):
        count = rule_set.apply_to_model(model)
        total += count
        if not count:
            break
    if total:
        remove_unused(model)
    return total


def remove_unused(model: "ir.Model") -> None:
    """Drop nodes and initializers nothing uses any more."""
    from onnx_ir.passes.common import RemoveUnusedNodesPass

    RemoveUnusedNodesPass()(model)
