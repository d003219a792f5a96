"""Layout passes: transpose sinking and cancellation, reshape/flatten/squeeze chain collapsing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from edgecc.passes import PassContext, PassResult, register_pass
from edgecc.passes.rules import apply_rules, node_count, rule_variants, run_rules

if TYPE_CHECKING:
    import onnx_ir as ir

__all__ = ["UNARY_ELEMENTWISE"]

#: ops that act on each element alone, so a Transpose commutes with them
UNARY_ELEMENTWISE = (
    "Relu",
    "LeakyRelu",
    "Sigmoid",
    "Tanh",
    "Abs",
    "Neg",
    "Exp",
    "Log",
    "Sqrt",
    "Reciprocal",
    "Elu",
    "Selu",
    "HardSigmoid",
    "HardSwish",
    "Softplus",
    "Softsign",
    "Erf",
    "Sin",
    "Cos",
    "Floor",
    "Ceil",
    "Round",
    "Sign",
    "Identity",
    "Cast",
    "Not",
    "Celu",
    "Mish",
    "ThresholdedRelu",
    "Gelu",
)
_BINARY_ELEMENTWISE = ("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "PRelu")


def _perm(node: "ir.Node", rank: int | None = None) -> list[int] | None:
    """The permutation of a Transpose; None when it has no perm and the rank is unknown."""
    perm = node.attributes.get_ints("perm", None)
    if perm is not None:
        return list(perm)
    return list(range(rank))[::-1] if rank is not None else None


def _rank(value: "ir.Value") -> int | None:
    return len(value.shape) if value.shape is not None else None


def _transpose_rules() -> list[Any]:
    from onnxscript import ir
    from onnxscript.rewriter import pattern

    class SinkThroughUnary(pattern.RewriteRuleClassBase):
        """Unary(Transpose(x)) -> Transpose(Unary(x)), moving transposes down towards their inverse."""

        op_type = "Relu"

        def pattern(self, op, x):  # noqa: ANN001, ANN202
            moved = op.Transpose(x, _allow_other_attributes=True, _outputs=["moved"])
            return getattr(op, self.op_type)(moved, _allow_other_attributes=True, _outputs=["result"])

        def check(self, context, x, moved, result, **_):  # noqa: ANN001, ANN202
            check = pattern.MatchResult()
            if len(list(moved.uses())) != 1:
                return check.fail("the transpose has other users")
            if _perm(moved.producer(), _rank(x)) is None:
                return check.fail("rank unknown")
            return check

        def rewrite(self, op, x, moved, result, **_):  # noqa: ANN001, ANN202
            unary = result.producer()
            inner = op.op(self.op_type, x, **{n: a.value for n, a in unary.attributes.items()})
            return op.Transpose(inner, perm=_perm(moved.producer(), _rank(x)))

    class SinkThroughBinaryConstant(pattern.RewriteRuleClassBase):
        """Binary(Transpose(x), c) -> Transpose(Binary(x, c')) with the constant permuted back."""

        op_type = "Add"

        def pattern(self, op, x, c):  # noqa: ANN001, ANN202
            moved = op.Transpose(x, _allow_other_attributes=True, _outputs=["moved"])
            return getattr(op, self.op_type)(moved, c, _outputs=["result"])

        def check(self, context, x, c, moved, **_):  # noqa: ANN001, ANN202
            check = pattern.MatchResult()
            perm = _perm(moved.producer(), _rank(x))
            if len(list(moved.uses())) != 1 or perm is None:
                return check.fail("the transpose has other users or the rank is unknown")
            if c.const_value is None or c.is_graph_input():
                return check.fail("the other operand is not a constant")
            if c.const_value.numpy().ndim > len(perm):
                return check.fail("the constant broadcasts the rank up")
            return check

        def rewrite(self, op, x, c, moved, **_):  # noqa: ANN001, ANN202
            perm = _perm(moved.producer(), _rank(x))
            rank = len(perm)
            value = c.const_value.numpy()
            full = value.reshape((1,) * (rank - value.ndim) + value.shape)
            inverse = list(np.argsort(perm))
            permuted = np.ascontiguousarray(np.transpose(full, inverse))
            constant = op.initializer(ir.tensor(permuted), name=f"{c.name}_transposed")
            return op.Transpose(op.op(self.op_type, x, constant), perm=perm)

    class MergeTransposedOperands(pattern.RewriteRuleClassBase):
        """Binary(Transpose(a, p), Transpose(b, p)) -> Transpose(Binary(a, b), p)."""

        op_type = "Add"

        def pattern(self, op, a, b):  # noqa: ANN001, ANN202
            left = op.Transpose(a, _allow_other_attributes=True, _outputs=["left"])
            right = op.Transpose(b, _allow_other_attributes=True, _outputs=["right"])
            return getattr(op, self.op_type)(left, right)

        def check(self, context, a, b, left, right, **_):  # noqa: ANN001, ANN202
            check = pattern.MatchResult()
            p, q = _perm(left.producer(), _rank(a)), _perm(right.producer(), _rank(b))
            if p is None or p != q:
                return check.fail("ranks unknown or different permutations")
            if len(list(left.uses())) != 1 or len(list(right.uses())) != 1:
                return check.fail("a transpose has other users")
            return check

        def rewrite(self, op, a, b, left, **_):  # noqa: ANN001, ANN202
            return op.Transpose(op.op(self.op_type, a, b), perm=_perm(left.producer(), _rank(a)))

    binary = [t for t in _BINARY_ELEMENTWISE if t != "PRelu"]
    return [
        *rule_variants(SinkThroughUnary, "Sink{op_type}", op_type=UNARY_ELEMENTWISE),
        *rule_variants(SinkThroughBinaryConstant, "Sink{op_type}Const", op_type=binary),
        *rule_variants(MergeTransposedOperands, "Merge{op_type}", op_type=binary),
    ]


@register_pass("optimize-transposes", "layout")
def optimize_transposes(model: "ir.Model", context: PassContext) -> PassResult:
    """Sink Transposes through elementwise ops and cancel or merge consecutive ones (NHWC/NCHW cleanup)."""
    from onnxscript.rewriter.rules import common as rules

    if not any(node.op_type == "Transpose" for node in model.graph.all_nodes()):
        return PassResult(model, modified=False)
    explicit = _explicit_perms(model)
    total = 0
    for _ in range(16):  # sink one step, then cancel; repeat while something moves
        cancelled = apply_rules(model, [rules.transpose_transpose_rule, rules.no_op_transpose_rule])
        sunk = _sink_productively(model)
        total += cancelled + sunk
        if not (cancelled or sunk):
            break
    return PassResult(model, modified=bool(total or explicit), rewrites=total)


def _explicit_perms(model: "ir.Model") -> int:
    """Give every Transpose of known rank an explicit perm (the upstream cancellation rule needs one); returns how many."""
    import onnx_ir as ir

    count = 0
    for node in model.graph.all_nodes():
        if node.op_type == "Transpose" and node.domain in ("", "ai.onnx") and "perm" not in node.attributes:
            source = node.inputs[0]
            producer = source.producer() if source is not None else None
            rank = _rank(source)
            if rank is None and producer is not None and producer.op_type == "Transpose" and "perm" in producer.attributes:
                rank = len(producer.attributes.get_ints("perm"))
            if rank is not None:
                node.attributes["perm"] = ir.AttrInt64s("perm", list(range(rank))[::-1])
                count += 1
    return count


def _sink_productively(model: "ir.Model") -> int:
    """Sink transposes, but keep the result only if it lets transposes cancel (fewer nodes)."""
    import onnx_ir as ir
    from onnxscript.rewriter.rules import common as rules

    before = node_count(model)
    trial = ir.from_proto(ir.to_proto(model))
    moved = apply_rules(trial, _transpose_rules())
    if not moved:
        return 0
    apply_rules(trial, [rules.transpose_transpose_rule, rules.no_op_transpose_rule])
    if node_count(trial) >= before:
        return 0
    apply_rules(model, _transpose_rules())
    return apply_rules(model, [rules.transpose_transpose_rule, rules.no_op_transpose_rule]) or 1


def _reshape_chain_rule() -> Any:
    from onnxscript.rewriter import pattern

    class CollapseIntoReshape(pattern.RewriteRuleClassBase):
        """Reshape(Flatten|Reshape|Squeeze|Unsqueeze(x), s) -> Reshape(x, s) when `s` is constant without 0."""

        producer = "Flatten"

        def pattern(self, op, x, s):  # noqa: ANN001, ANN202
            inner = getattr(op, self.producer)(x, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["inner"])
            return op.Reshape(inner, s, _allow_other_attributes=True)

        def check(self, context, x, s, inner, **_):  # noqa: ANN001, ANN202
            check = pattern.MatchResult()
            if s.const_value is None or np.any(s.const_value.numpy() == 0):
                return check.fail("target shape not constant or holds 0")
            if len(list(inner.uses())) != 1:
                return check.fail("the intermediate tensor has other users")
            return check

        def rewrite(self, op, x, s, **_):  # noqa: ANN001, ANN202
            return op.Reshape(x, s)

    return rule_variants(
        CollapseIntoReshape, "Collapse{producer}Reshape", producer=("Flatten", "Reshape", "Squeeze", "Unsqueeze")
    )


@register_pass("collapse-reshapes", "layout")
def collapse_reshapes(model: "ir.Model", context: PassContext) -> PassResult:
    """Collapse chains of Reshape/Flatten/Squeeze/Unsqueeze into one node."""
    from onnxscript.rewriter.rules import common as rules

    return run_rules(
        model, [rules.reshape_reshape_rule, rules.unsqueeze_unsqueeze_rule, rules.squeeze_reshape_1d_rule, *_reshape_chain_rule()]
    )


def _merge_slices_rule() -> Any:
    from onnxscript import ir
    from onnxscript.rewriter import pattern

    class MergeSlices(pattern.RewriteRuleClassBase):
        """Slice(Slice(x)) with constant parameters on disjoint axes -> one Slice."""

        def pattern(self, op, x, s1, e1, a1, st1, s2, e2, a2, st2):  # noqa: ANN001, ANN202
            first = op.Slice(x, s1, e1, a1, st1, _outputs=["first"])
            return op.Slice(first, s2, e2, a2, st2)

        def check(self, context, x, first, s1, e1, a1, st1, s2, e2, a2, st2, **_):  # noqa: ANN001, ANN202
            check = pattern.MatchResult()
            values = [v.const_value for v in (s1, e1, a1, st1, s2, e2, a2, st2)]
            if any(v is None for v in values) or x.shape is None:
                return check.fail("parameters not constant or rank unknown")
            if len(list(first.uses())) != 1:
                return check.fail("the first slice has other users")
            rank = len(x.shape)
            axes1 = [int(a) % rank for a in a1.const_value.numpy().reshape(-1)]
            axes2 = [int(a) % rank for a in a2.const_value.numpy().reshape(-1)]
            if set(axes1) & set(axes2):
                return check.fail("the slices share an axis")
            if len({v.numpy().dtype for v in values}) != 1:
                return check.fail("parameter dtypes differ")
            self._axes = axes1 + axes2
            return check

        def rewrite(self, op, x, s1, e1, st1, s2, e2, st2, first, **_):  # noqa: ANN001, ANN202
            def joined(a: "ir.Value", b: "ir.Value", suffix: str) -> "ir.Value":
                array = np.concatenate([a.const_value.numpy().reshape(-1), b.const_value.numpy().reshape(-1)])
                return op.initializer(ir.tensor(array), name=f"{first.name}_{suffix}_merged")

            dtype = s1.const_value.numpy().dtype
            axes = op.initializer(ir.tensor(np.asarray(self._axes, dtype=dtype)), name=f"{first.name}_axes_merged")
            return op.Slice(x, joined(s1, s2, "starts"), joined(e1, e2, "ends"), axes, joined(st1, st2, "steps"))

    return MergeSlices.rule()


@register_pass("merge-slices", "layout")
def merge_slices(model: "ir.Model", context: PassContext) -> PassResult:
    """Merge consecutive constant Slices on different axes into one Slice."""
    return run_rules(model, [_merge_slices_rule()])
