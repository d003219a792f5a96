"""Fusion passes: BatchNorm and affine folding into Conv/Gemm/MatMul, MatMul+Add -> Gemm, Pad into Conv/Pool, Div by a
constant -> Mul."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from edgecc.passes import PassContext, PassResult, register_pass
from edgecc.passes.rules import rule_variants, run_rules, stricter_rules

if TYPE_CHECKING:
    import onnx_ir as ir

__all__: list[str] = []


def _const(value: "ir.Value | None") -> np.ndarray | None:
    """The constant content of an initializer that is not a graph input and has no other user, else None."""
    if value is None or value.const_value is None or value.is_graph_input():
        return None
    return value.const_value.numpy()


def _only_used_by(value: "ir.Value", node: "ir.Node") -> bool:
    return all(user is node for user, _ in value.uses())


def _per_channel(vector: np.ndarray, channels: int, rank: int, axis: int) -> np.ndarray | None:
    """A constant broadcast over `rank` dims that varies only along `axis`, as a [channels] vector, else None."""
    if vector.size == 1:
        return np.full(channels, vector.reshape(()), dtype=vector.dtype)
    if vector.ndim > rank:
        return None
    shape = (1,) * (rank - vector.ndim) + vector.shape
    if any(d != 1 for i, d in enumerate(shape) if i != axis) or shape[axis] != channels:
        return None
    return vector.reshape(channels)


def _affine_rules() -> list[Any]:
    from onnxscript import ir
    from onnxscript.rewriter import pattern

    class _AffineAfter(pattern.RewriteRuleClassBase):
        """`Conv|Gemm` followed by Mul/Add with a per-channel constant -> weights and bias absorb it."""

        producer = "Conv"
        combine = "Mul"

        def pattern(self, op, x, w, k):  # noqa: ANN001, ANN202
            inner = getattr(op, self.producer)(x, w, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["inner"])
            return getattr(op, self.combine)(inner, k)

        @staticmethod
        def _bias(node: "ir.Node") -> "ir.Value | None":
            return node.inputs[2] if len(node.inputs) > 2 else None

        def _channels(self, w: np.ndarray, node: "ir.Node") -> tuple[int, int, int]:
            """(channels, output rank, channel axis of the output)."""
            if self.producer == "Conv":
                return w.shape[0], w.ndim, 1
            trans_b = node.attributes.get_int("transB", 0)
            return (w.shape[0] if trans_b else w.shape[1]), 2, 1

        def check(self, context, x, w, k, inner, **_):  # noqa: ANN001, ANN202
            result = pattern.MatchResult()
            node = inner.producer()
            b = self._bias(node)
            weights, factor = _const(w), _const(k)
            bias = np.zeros(1, dtype=weights.dtype) if b is None and weights is not None else _const(b)
            if weights is None or bias is None or factor is None:
                return result.fail("weights, bias and factor must be constants")
            if not _only_used_by(w, node) or (b is not None and not _only_used_by(b, node)) or len(list(inner.uses())) != 1:
                return result.fail("weights, bias or the product are shared")
            if self.producer == "Gemm" and (
                node.attributes.get_float("alpha", 1.0) != 1.0 or node.attributes.get_int("transA", 0)
            ):
                return result.fail("Gemm with alpha != 1 or transA")
            channels, rank, axis = self._channels(weights, node)
            per_channel = _per_channel(factor, channels, rank, axis)
            if per_channel is None or factor.dtype != weights.dtype:
                return result.fail("the constant is not per-channel")
            if bias.size not in (1, channels) or (bias.size != 1 and bias.shape[-1] != channels):
                return result.fail("bias does not broadcast per channel")
            self._per_channel = per_channel
            return result

        def rewrite(self, op, x, w, inner, **_):  # noqa: ANN001, ANN202
            node = inner.producer()
            b = self._bias(node)
            weights = _const(w)
            bias = np.zeros(1, dtype=weights.dtype) if b is None else _const(b)
            channels, _, _ = self._channels(weights, node)
            k = self._per_channel
            beta = node.attributes.get_float("beta", 1.0) if self.producer == "Gemm" else 1.0
            bias = np.broadcast_to(bias.reshape(-1) * beta, (channels,)).astype(weights.dtype)
            if self.combine == "Mul":
                if self.producer == "Conv":
                    weights = weights * k.reshape((-1,) + (1,) * (weights.ndim - 1))
                elif node.attributes.get_int("transB", 0):
                    weights = weights * k.reshape(-1, 1)
                else:
                    weights = weights * k.reshape(1, -1)
                bias = bias * k
            else:
                bias = bias + k
            attributes = {n: a for n, a in node.attributes.items() if n != "beta"}
            return op.op(
                self.producer,
                x,
                op.initializer(ir.tensor(weights.astype(_const(w).dtype)), name=f"{w.name}_folded"),
                op.initializer(ir.tensor(bias.astype(weights.dtype)), name=f"{(b or w).name}_bias_folded"),
                **attributes,
            )

    return rule_variants(_AffineAfter, "Fold{combine}Into{producer}", producer=("Conv", "Gemm"), combine=("Mul", "Add"))


def _matmul_batchnorm_rule() -> Any:
    from onnxscript import ir
    from onnxscript.rewriter import pattern

    class FoldBatchNormIntoMatMul(pattern.RewriteRuleClassBase):
        """BatchNormalization(MatMul(x[N, K], W[K, C])) -> MatMul(x, W') + b' (BN over the channel axis 1)."""

        def pattern(self, op, x, w, scale, bias, mean, var):  # noqa: ANN001, ANN202
            product = op.MatMul(x, w, _outputs=["product"])
            return op.BatchNormalization(product, scale, bias, mean, var, _allow_other_attributes=True, _outputs=["normalized"])

        def check(self, context, x, w, scale, bias, mean, var, product, **_):  # noqa: ANN001, ANN202
            result = pattern.MatchResult()
            consts = [_const(v) for v in (w, scale, bias, mean, var)]
            if any(c is None for c in consts):
                return result.fail("weights and BatchNorm parameters must be constants")
            if consts[0].ndim != 2 or x.shape is None or len(x.shape) != 2:
                return result.fail("only 2-D MatMul (the channel axis is the last)")
            if not _only_used_by(w, product.producer()):
                return result.fail("weights are shared")
            return result

        def rewrite(self, op, x, w, scale, bias, mean, var, normalized, **_):  # noqa: ANN001, ANN202
            eps = normalized.producer().attributes.get_float("epsilon", 1e-5)
            weights, gamma, beta, mu, sigma2 = (_const(v) for v in (w, scale, bias, mean, var))
            factor = gamma / np.sqrt(sigma2 + eps)
            folded_w = (weights * factor.reshape(1, -1)).astype(weights.dtype)
            folded_b = (beta - mu * factor).astype(weights.dtype)
            product = op.MatMul(x, op.initializer(ir.tensor(folded_w), name=f"{w.name}_bn_folded"))
            return op.Add(product, op.initializer(ir.tensor(folded_b), name=f"{w.name}_bn_bias"))

    return FoldBatchNormIntoMatMul.rule()


@register_pass("fold-batchnorm", "fusion")
def fold_batchnorm(model: "ir.Model", context: PassContext) -> PassResult:
    """Fold inference BatchNormalization into the preceding Conv, ConvTranspose, Gemm or MatMul."""
    from onnxscript.rewriter.rules import common as rules

    return run_rules(
        model,
        [
            rules.fuse_batchnorm_into_conv_rule,
            rules.fuse_batchnorm_into_conv_transpose_rule,
            rules.fuse_batchnorm_into_gemm_rule,
            _matmul_batchnorm_rule(),
        ],
    )


@register_pass("fold-affine", "fusion")
def fold_affine(model: "ir.Model", context: PassContext) -> PassResult:
    """Fold a per-channel constant Mul or Add after a Conv or Gemm into its weights and bias."""
    return run_rules(model, _affine_rules(), commute=True)


@register_pass("matmul-add-to-gemm", "fusion")
def matmul_add_to_gemm(model: "ir.Model", context: PassContext) -> PassResult:
    """Rewrite 2-D MatMul + Add (and transposed operands) into one Gemm."""
    from onnxscript.rewriter.rules.common import _matmul_add_to_gemm as upstream

    def bias_broadcasts(rule, context, result, input_a, input_b, input_c, **_):  # noqa: ANN001, ANN202
        c = input_c.shape
        if c is None or len(c) > 2:
            return result.fail("bias rank unknown or above 2")
        m = input_a.shape[1 if rule.trans_a else 0]
        n = input_b.shape[0 if rule.trans_b else 1]
        if any(d != 1 and d != want for d, want in zip(reversed(list(c)), (n, m))):
            return result.fail("bias does not broadcast to the product's shape")
        return result

    classes = (
        upstream.TransABMatMulAddToGemm,
        upstream.TransAMatMulAddToGemm,
        upstream.TransBMatMulAddToGemm,
        upstream.MatMulAddToGemm,
    )
    return run_rules(model, stricter_rules(classes, bias_broadcasts))


def _pad_into_pool_rules() -> list[Any]:
    from onnxscript.rewriter import pattern

    class FoldPadIntoPool(pattern.RewriteRuleClassBase):
        """Constant Pad of the spatial dims before MaxPool (-inf or any value <= input min is unsafe: only -inf) or
        AveragePool (0, counted in the divisor) -> the pool's own pads."""

        pool = "MaxPool"

        def pattern(self, op, x, pads):  # noqa: ANN001, ANN202
            padded = op.Pad(x, pads, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["padded"])
            return getattr(op, self.pool)(padded, _allow_other_attributes=True, _outputs=["pooled"])

        def check(self, context, x, pads, padded, pooled, **_):  # noqa: ANN001, ANN202
            result = pattern.MatchResult()
            pad_node, pool_node = padded.producer(), pooled.producer()
            if pad_node.attributes.get_string("mode", "constant") != "constant":
                return result.fail("only constant padding")
            amounts = _const(pads)
            if amounts is None or x.shape is None:
                return result.fail("pads must be constant and the rank known")
            rank = len(x.shape)
            if len(pad_node.inputs) > 3 and pad_node.inputs[3] is not None:
                return result.fail("Pad with axes")
            amounts = amounts.reshape(-1)
            if amounts.size != 2 * rank or np.any(amounts < 0) or np.any(amounts[[0, 1, rank, rank + 1]] != 0):
                return result.fail("pads must be non-negative and only on spatial dims")
            value = _const(pad_node.inputs[2]) if len(pad_node.inputs) > 2 and pad_node.inputs[2] is not None else np.zeros(())
            if value is None:
                return result.fail("pad value must be constant")
            wanted = -np.inf if self.pool == "MaxPool" else 0.0
            if float(value.reshape(-1)[0] if value.size else 0.0) != wanted:
                return result.fail(f"{self.pool} needs pad value {wanted}")
            if self.pool == "AveragePool" and not pool_node.attributes.get_int("count_include_pad", 0):
                return result.fail("AveragePool must count padding (count_include_pad=1)")
            if pool_node.attributes.get_string("auto_pad", "NOTSET") != "NOTSET":
                return result.fail("auto_pad pools")
            if self.pool == "MaxPool" and len(pool_node.outputs) > 1:
                return result.fail("MaxPool with indices")
            if not _only_used_by(padded, pool_node):
                return result.fail("padded tensor has other users")
            extra = [int(a) for a in amounts[2:rank]] + [int(a) for a in amounts[rank + 2 :]]
            kernel = list(pool_node.attributes.get_ints("kernel_shape", []))
            old = list(pool_node.attributes.get_ints("pads", [0] * len(extra)))
            if len(kernel) * 2 != len(extra) or any(o + e >= k for o, e, k in zip(old, extra, kernel + kernel)):
                return result.fail("pool pads must stay smaller than the kernel")
            if pool_node.attributes.get_int("ceil_mode", 0) and any(extra[len(kernel) :]):
                return result.fail("ceil_mode with padding at the end changes the output size")
            self._extra = extra
            return result

        def rewrite(self, op, x, pooled, **_):  # noqa: ANN001, ANN202
            node = pooled.producer()
            spatial = len(self._extra) // 2
            old = list(node.attributes.get_ints("pads", [0] * (2 * spatial)))
            attributes = {n: a for n, a in node.attributes.items() if n != "pads"}
            new_pads = [o + e for o, e in zip(old, self._extra)]
            return op.op(self.pool, x, pads=new_pads, **{n: a.value for n, a in attributes.items()})

    return rule_variants(FoldPadIntoPool, "FoldPadInto{pool}", pool=("MaxPool", "AveragePool"))


@register_pass("fold-pad", "fusion")
def fold_pad(model: "ir.Model", context: PassContext) -> PassResult:
    """Fold a constant Pad into the pads of the following Conv, MaxPool or AveragePool."""
    from onnxscript.rewriter.rules import common as rules

    return run_rules(model, [rules.normalize_pad_format_conv_rule, rules.fuse_pad_into_conv_rule, *_pad_into_pool_rules()])


def _div_rules() -> list[Any]:
    from onnxscript import ir
    from onnxscript.rewriter import pattern

    class DivByConstantToMul(pattern.RewriteRuleClassBase):
        """Div(x, c) with a float constant c without zeros -> Mul(x, 1/c): integer targets have no int8 DIV kernel."""

        def pattern(self, op, x, c):  # noqa: ANN001, ANN202
            return op.Div(x, c, _outputs=["quotient"])

        def check(self, context, x, c, **_):  # noqa: ANN001, ANN202
            result = pattern.MatchResult()
            value = _const(c)
            if value is None or value.dtype.kind != "f":
                return result.fail("the divisor must be a float constant")
            if not np.all(np.isfinite(value)) or np.any(value == 0) or not np.all(np.isfinite(1.0 / value)):
                return result.fail("the divisor has zeros or non-finite values")
            return result

        def rewrite(self, op, x, c, quotient, **_):  # noqa: ANN001, ANN202
            value = _const(c)
            # named after the Div's output (unique): a divisor shared by several Divs gets one reciprocal each, which
            # dedup-initializers merges
            reciprocal = op.initializer(ir.tensor((1.0 / value).astype(value.dtype)), name=f"{quotient.name}_reciprocal")
            return op.Mul(x, reciprocal)

    return [DivByConstantToMul.rule()]


@register_pass("div-to-mul", "fusion")
def div_to_mul(model: "ir.Model", context: PassContext) -> PassResult:
    """Rewrite division by a float constant as multiplication by its reciprocal."""
    return run_rules(model, _div_rules())
