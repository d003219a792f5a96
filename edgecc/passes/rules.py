"""Helpers the pass modules share: onnxscript rewrite rules and onnx_ir passes run as edgecc passes, graph sizes, opsets."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from edgecc.passes.api import PassResult

if TYPE_CHECKING:
    import onnx_ir as ir

__all__ = [
    "apply_rules",
    "run_rules",
    "run_ir_passes",
    "remove_unused",
    "rule_variants",
    "stricter_rules",
    "node_count",
    "graph_size",
    "model_opset",
]


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


def run_rules(model: "ir.Model", rules: Sequence[Any], *, commute: bool = False) -> PassResult:
    """`apply_rules` as a pass result: modified exactly when a rule rewrote something."""
    return PassResult.counted(model, apply_rules(model, rules, commute=commute))


def run_ir_passes(model: "ir.Model", *steps: Callable[["ir.Model"], "ir.passes.PassResult"]) -> PassResult:
    """Run onnx_ir/onnxscript passes in order, taking their results through.

    Modified when any step says so (or the graph shrank); rewrites = how many
    nodes and initializers fewer the graph has.
    """
    before = graph_size(model)
    modified = False
    for step in steps:
        result = step(model)
        model, modified = result.model, modified or bool(result.modified)
    after = graph_size(model)
    return PassResult(model, modified or after != before, max(before - after, 0))


def remove_unused(model: "ir.Model") -> "ir.passes.PassResult":
    """Drop nodes and initializers nothing uses any more."""
    from onnx_ir.passes.common import RemoveUnusedNodesPass

    return RemoveUnusedNodesPass()(model)


def rule_variants(base: type, name: str, **choices: Sequence[Any]) -> list[Any]:
    """One rule per combination of the class attributes in `choices` (first varies slowest); `name` formats each class name."""
    rules = []
    for values in itertools.product(*choices.values()):
        attributes = dict(zip(choices, values))
        rules.append(type(name.format(**attributes), (base,), attributes).rule())
    return rules


def stricter_rules(classes: Sequence[type], extra: Callable[..., Any]) -> list[Any]:
    """Upstream rule classes whose match must also pass `extra(rule, context, result, **bindings)` after their own check.

    `extra` gets the (successful) MatchResult of the upstream check and returns it,
    or `result.fail(reason)`; the classes are renamed `Checked<Name>`.
    """

    def stricter(base: type) -> type:
        def check(self, context, **bindings):  # noqa: ANN001, ANN003, ANN202
            result = base.check(self, context, **bindings)
            return extra(self, context, result, **bindings) if result else result

        return type(f"Checked{base.__name__}", (base,), {"check": check})

    return [stricter(base).rule() for base in classes]


def node_count(model: "ir.Model") -> int:
    """Nodes in the main graph and its subgraphs."""
    return sum(1 for _ in model.graph.all_nodes())


def graph_size(model: "ir.Model") -> int:
    """Nodes (subgraphs included) plus initializers: what cleanup passes shrink."""
    return node_count(model) + len(model.graph.initializers)


def model_opset(model: "ir.Model") -> int:
    """The model's ai.onnx opset (imported as "" or "ai.onnx"; 0 when neither)."""
    return model.opset_imports.get("", model.opset_imports.get("ai.onnx", 0))
