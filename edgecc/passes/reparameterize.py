"""Structural re-parameterisation: parallel Conv branches of one input that are summed become one Conv.

RepVGG, MobileOne, FastViT and RepViT train blocks as `Conv_kxk(x) + Conv_1x1(x) + BN(x)` (or `+ x`) and expect the
deployer to merge them: a sum of convolutions of the same input is one convolution whose kernel is the sum of the
(zero-padded, aligned) kernels, and an identity or BatchNorm branch is a convolution with a per-channel centre tap.
Exact in real arithmetic; in float it only reorders sums. Besides fewer nodes, it matters for int8: each branch
quantised on its own adds its own rounding error, the merged kernel is quantised once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from edgecc.passes import PassContext, PassResult, register_pass
from edgecc.passes.rules import rule_variants, run_rules

if TYPE_CHECKING:
    import onnx_ir as ir

__all__: list[str] = []


@dataclass(frozen=True)
class _Branch:
    """One summand as a convolution: weights [O, I/group, *kernel], bias [O], pads before/after each spatial axis."""

    weights: np.ndarray
    bias: np.ndarray
    begin: tuple[int, ...]
    end: tuple[int, ...]

    @property
    def kernel(self) -> tuple[int, ...]:
        return tuple(self.weights.shape[2:])

    @property
    def deficit(self) -> tuple[int, ...]:
        """kernel - 1 - pads per axis: equal deficits (and strides) give equal output sizes for every input size."""
        return tuple(k - 1 - b - e for k, b, e in zip(self.kernel, self.begin, self.end))


def _const(value: "ir.Value | None") -> np.ndarray | None:
    if value is None or value.const_value is None or value.is_graph_input():
        return None
    return value.const_value.numpy()


def _single_use(value: "ir.Value", node: "ir.Node") -> bool:
    return not value.is_graph_output() and all(user is node for user, _ in value.uses())


def _conv_branch(node: "ir.Node") -> tuple[_Branch, dict[str, Any]] | str:
    """The branch a Conv node computes and its stride/group settings, or why it cannot be merged."""
    weights = _const(node.inputs[1])
    bias_value = node.inputs[2] if len(node.inputs) > 2 else None
    bias = np.zeros(weights.shape[0], dtype=weights.dtype) if weights is not None and bias_value is None else _const(bias_value)
    if weights is None or bias is None or weights.dtype.kind != "f":
        return "weights and bias must be float constants"
    if not _single_use(node.inputs[1], node) or (bias_value is not None and not _single_use(bias_value, node)):
        return "weights or bias are shared"
    spatial = weights.ndim - 2
    if node.attributes.get_string("auto_pad", "NOTSET") != "NOTSET":
        return "auto_pad convolutions"
    if any(d != 1 for d in node.attributes.get_ints("dilations", [1] * spatial)):
        return "dilated convolutions"
    pads = list(node.attributes.get_ints("pads", [0] * (2 * spatial)))
    settings = {
        "strides": tuple(node.attributes.get_ints("strides", [1] * spatial)),
        "group": node.attributes.get_int("group", 1),
    }
    return _Branch(weights, bias.reshape(-1), tuple(pads[:spatial]), tuple(pads[spatial:])), settings


def _identity_branch(scale: np.ndarray, shift: np.ndarray, like: _Branch, group: int) -> _Branch | None:
    """`scale * x + shift` per channel as a 1x1 convolution shaped like `like` (None when channels do not pair up)."""
    out_channels, per_group = like.weights.shape[:2]
    if out_channels != per_group * group or scale.shape != (out_channels,):
        return None
    spatial = like.weights.ndim - 2
    weights = np.zeros((out_channels, per_group) + (1,) * spatial, dtype=np.float64)
    channels = np.arange(out_channels)
    weights[(channels, channels % per_group) + (0,) * spatial] = scale
    return _Branch(weights, shift.astype(np.float64), (0,) * spatial, (0,) * spatial)


def _merge(first: _Branch, second: _Branch) -> _Branch | None:
    """The one convolution equal to the sum of two aligned ones with equal output sizes, else None."""
    if first.weights.shape[:2] != second.weights.shape[:2] or first.deficit != second.deficit:
        return None
    begin = tuple(max(a, b) for a, b in zip(first.begin, second.begin))
    kernel = tuple(
        max(p - a + k1, p - b + k2)
        for p, a, b, k1, k2 in zip(begin, first.begin, second.begin, first.kernel, second.kernel)
    )
    end = tuple(k - 1 - d - p for k, d, p in zip(kernel, first.deficit, begin))
    weights = np.zeros(first.weights.shape[:2] + kernel, dtype=np.float64)
    for branch in (first, second):
        offset = tuple(p - b for p, b in zip(begin, branch.begin))
        window = tuple(slice(o, o + k) for o, k in zip(offset, branch.kernel))
        weights[(slice(None), slice(None)) + window] += branch.weights
    return _Branch(weights, first.bias.astype(np.float64) + second.bias, begin, end)


def _batchnorm_affine(node: "ir.Node") -> tuple[np.ndarray, np.ndarray] | None:
    """(scale, shift) of an inference BatchNormalization with constant parameters, else None."""
    params = [_const(v) for v in node.inputs[1:5]]
    if len(node.outputs) != 1 or any(p is None for p in params) or node.attributes.get_int("training_mode", 0):
        return None
    gamma, beta, mean, var = (p.astype(np.float64).reshape(-1) for p in params)
    factor = gamma / np.sqrt(var + node.attributes.get_float("epsilon", 1e-5))
    return factor, beta - mean * factor


def _rules() -> list[Any]:
    from onnxscript import ir
    from onnxscript.rewriter import pattern

    class MergeParallelBranches(pattern.RewriteRuleClassBase):
        """Add(Conv(x), other(x)) -> Conv(x), where other is a Conv, a BatchNormalization or x itself."""

        other = "Conv"

        def pattern(self, op, x, w):  # noqa: ANN001, ANN202
            conv = op.Conv(x, w, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["conv"])
            if self.other == "Identity":
                branch = x
            elif self.other == "Conv":
                branch = op.Conv(x, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["branch"])
            else:
                branch = op.BatchNormalization(x, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["branch"])
            return op.Add(conv, branch, _outputs=["total"])

        def check(self, context, x, w, conv, total, branch=None, **_):  # noqa: ANN001, ANN202
            result = pattern.MatchResult()
            node = conv.producer()
            if not _single_use(conv, total.producer()) or (branch is not None and not _single_use(branch, total.producer())):
                return result.fail("a branch has other users")
            first = _conv_branch(node)
            if isinstance(first, str):
                return result.fail(first)
            main, settings = first
            if self.other == "Conv":
                second = _conv_branch(branch.producer())
                if isinstance(second, str):
                    return result.fail(second)
                other, other_settings = second
                if other_settings != settings:
                    return result.fail("strides or groups differ")
            else:
                affine = (
                    (np.ones(main.weights.shape[0]), np.zeros(main.weights.shape[0]))
                    if self.other == "Identity"
                    else _batchnorm_affine(branch.producer())
                )
                if affine is None:
                    return result.fail("BatchNormalization parameters must be constants (inference mode)")
                if any(s != 1 for s in settings["strides"]):
                    return result.fail("an identity branch needs stride 1")
                other = _identity_branch(*affine, main, settings["group"])
                if other is None:
                    return result.fail("the identity branch's channels do not match the convolution's")
            merged = _merge(main, other)
            if merged is None:
                return result.fail("the branches differ in channels or output size")
            self._merged, self._settings, self._dtype = merged, settings, main.weights.dtype
            return result

        def rewrite(self, op, x, w, conv, **_):  # noqa: ANN001, ANN202
            merged = self._merged
            return op.Conv(
                x,
                op.initializer(ir.tensor(merged.weights.astype(self._dtype)), name=f"{w.name}_merged"),
                op.initializer(ir.tensor(merged.bias.astype(self._dtype)), name=f"{w.name}_merged_bias"),
                kernel_shape=list(merged.kernel),
                pads=[*merged.begin, *merged.end],
                strides=list(self._settings["strides"]),
                group=self._settings["group"],
            )

    return rule_variants(MergeParallelBranches, "Merge{other}BranchIntoConv", other=("Conv", "BatchNormalization", "Identity"))


@register_pass("merge-parallel-convs", "fusion")
def merge_parallel_convs(model: "ir.Model", context: PassContext) -> PassResult:
    """Merge summed parallel Conv, BatchNorm and identity branches of one input into one Conv (RepVGG/MobileOne)."""
    return run_rules(model, _rules(), commute=True)
