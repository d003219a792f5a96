"""Pattern passes: recognise LayerNorm/Gelu/HardSwish/Swish decompositions as ONNX ops, annotate Conv+activation."""

from __future__ import annotations

import functools
import json
import math
from typing import TYPE_CHECKING, Any

from edgecc.passes import PassContext, PassResult, register_pass
from edgecc.passes.rules import apply_rules, model_opset, rule_variants, stricter_rules

if TYPE_CHECKING:
    import onnx_ir as ir

__all__ = ["FUSABLE_ACTIVATIONS", "ANNOTATION_ACTIVATION", "ANNOTATION_FUSED_INTO"]

#: activations a target may execute inside the preceding Conv
FUSABLE_ACTIVATIONS = ("Relu", "Clip", "LeakyRelu", "HardSigmoid", "HardSwish")
ANNOTATION_ACTIVATION = "edgecc.fused_activation"
ANNOTATION_FUSED_INTO = "edgecc.fused_into"


def _opset(model: "ir.Model", context: PassContext) -> int:
    """The opset whose ops a rewrite may emit: the model's own (normalize-opset converts first), capped by --opset."""
    current = model_opset(model)
    return min(current, context.opset) if context.opset else current


@functools.cache
def onnxruntime_runs(op_type: str, opset: int) -> bool:
    """Whether the installed onnxruntime has a CPU kernel for a float `op_type` at `opset` (probed once)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node(op_type, ["x"], ["y"])],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 4
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 -- probing: onnxruntime raises its own NotImplemented/InvalidGraph/Fail types
        return False
    return True


def _scalar(value: "ir.Value", expected: float, tolerance: float = 1e-4) -> bool:
    if value.const_value is None:
        return False
    array = value.const_value.numpy()
    return array.size == 1 and abs(float(array.reshape(-1)[0]) - expected) <= tolerance * max(1.0, abs(expected))


def _gelu_rules() -> list[Any]:
    from onnxscript.rewriter import pattern

    class GeluErf(pattern.RewriteRuleClassBase):
        """x * 0.5 * (1 + erf(x / sqrt(2))) -> Gelu (opset 20)."""

        half_first = True
        divides = True  # x / sqrt(2); False: x * (1 / sqrt(2)) (after div-to-mul, or as exported)

        def pattern(self, op, x, root2, one, half):  # noqa: ANN001, ANN202
            inner = op.Add(op.Erf(op.Div(x, root2) if self.divides else op.Mul(x, root2)), one)
            if self.half_first:
                return op.Mul(op.Mul(x, half), inner)
            return op.Mul(op.Mul(x, inner), half)

        def check(self, context, x, root2, one, half, **_):  # noqa: ANN001, ANN202
            result = pattern.MatchResult()
            root = math.sqrt(2) if self.divides else 1 / math.sqrt(2)
            if not (_scalar(root2, root) and _scalar(one, 1.0) and _scalar(half, 0.5)):
                return result.fail("constants are not those of Gelu")
            return result

        def rewrite(self, op, x, **_):  # noqa: ANN001, ANN202
            return op.Gelu(x)

    class GeluTanh(pattern.RewriteRuleClassBase):
        """0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))) -> Gelu(approximate="tanh") (opset 20)."""

        def pattern(self, op, x, three, c, k, one, half):  # noqa: ANN001, ANN202
            cubic = op.Add(x, op.Mul(op.Pow(x, three), c))
            inner = op.Add(op.Tanh(op.Mul(cubic, k)), one)
            return op.Mul(op.Mul(x, half), inner)

        def check(self, context, x, three, c, k, one, half, **_):  # noqa: ANN001, ANN202
            result = pattern.MatchResult()
            ok = (
                _scalar(three, 3.0)
                and _scalar(c, 0.044715)
                and _scalar(k, math.sqrt(2 / math.pi))
                and _scalar(one, 1.0)
                and _scalar(half, 0.5)
            )
            return result if ok else result.fail("constants are not those of tanh-Gelu")

        def rewrite(self, op, x, **_):  # noqa: ANN001, ANN202
            return op.Gelu(x, approximate="tanh")

    erf_rules = rule_variants(GeluErf, "GeluErf{half_first}{divides}", half_first=(True, False), divides=(True, False))
    return [*erf_rules, GeluTanh.rule()]


def _layer_norm_axes_attribute_rules() -> list[Any]:
    """The upstream LayerNorm rule matches ReduceMean with an `axes` input (opset 18+); opset 17 has the attribute."""
    from onnxscript.rewriter import pattern
    from onnxscript.rewriter.rules.fusion._layer_norm import LayerNormFusion

    class LayerNormFusionAxesAttribute(LayerNormFusion):
        def pattern(self, op, x, scale, epsilon):  # noqa: ANN001, ANN202
            mean = op.ReduceMean(x, axes=[-1], keepdims=1)
            deviation = op.Sub(x, mean)
            squared = pattern.OrValue([op.Mul(deviation, deviation), op.Pow(deviation, 2)])
            std_dev = op.Sqrt(op.Add(op.ReduceMean(squared, axes=[-1], keepdims=1), epsilon))
            normalized = pattern.OrValue([op.Mul(deviation, op.Reciprocal(std_dev)), op.Div(deviation, std_dev)])
            return op.Mul(normalized, scale)

    return [LayerNormFusionAxesAttribute.rule()]


def _swish_rule() -> Any:
    from onnxscript.rewriter import pattern

    class SwishFusion(pattern.RewriteRuleClassBase):
        """x * Sigmoid(x) -> Swish (opset 24)."""

        def pattern(self, op, x):  # noqa: ANN001, ANN202
            return op.Mul(x, op.Sigmoid(x))

        def rewrite(self, op, x, **_):  # noqa: ANN001, ANN202
            return op.Swish(x)

    return SwishFusion.rule()


def _clip_chain_rules() -> list[Any]:
    """The upstream Clip/Relu chain merges, refused when the merged bounds cross (Clip(x, lo > hi) is not the chain)."""
    import numpy as np
    from onnxscript.rewriter.rules.common import _fuse_relus_clips as upstream

    def bounds_do_not_cross(rule, context, result, **bindings):  # noqa: ANN001, ANN003, ANN202
        first = bindings["out_first_clip"].producer()
        second = bindings["out_second_clip"].producer() if bindings.get("out_second_clip") is not None else None
        low, high = rule.compute_clip_min_max(first, second)
        if low is not None and high is not None and np.any(low.numpy() > high.numpy()):
            return result.fail("the merged bounds cross")
        return result

    classes = (upstream.FuseSuccessiveClip, upstream.FuseSuccessiveClipRelu, upstream.FuseSuccessiveReluClip)
    return stricter_rules(classes, bounds_do_not_cross)


def _hard_sigmoid_by_reciprocal_rules() -> list[Any]:
    from onnxscript.rewriter import pattern

    class HardSigmoidByReciprocal(pattern.RewriteRuleClassBase):
        """Clip(x + 3, 0, 6) * (1/6) -> HardSigmoid(alpha=1/6, beta=0.5): Keras's hard_sigmoid, and any x / 6 that
        div-to-mul turned into a Mul (onnxscript's own rules match the Div form); its HardSwish rule then takes x * it."""

        mul_first = False  # True: (Clip(x + 3, 0, 6) * x) * (1/6) -> HardSwish directly

        def pattern(self, op, x, clip_min, clip_max, bias, scale):  # noqa: ANN001, ANN202
            clipped = op.Clip(op.Add(x, bias), clip_min, clip_max)
            return op.Mul(op.Mul(clipped, x), scale) if self.mul_first else op.Mul(clipped, scale)

        def check(self, context, x, clip_min, clip_max, bias, scale, **_):  # noqa: ANN001, ANN202
            result = pattern.MatchResult()
            ok = _scalar(clip_min, 0.0) and _scalar(clip_max, 6.0) and _scalar(bias, 3.0) and _scalar(scale, 1 / 6)
            return result if ok else result.fail("constants are not those of hard-sigmoid (3, 0, 6, 1/6)")

        def rewrite(self, op, x, **_):  # noqa: ANN001, ANN202
            return op.HardSwish(x) if self.mul_first else op.HardSigmoid(x, alpha=1 / 6, beta=0.5)

    return rule_variants(HardSigmoidByReciprocal, "HardSigmoidByReciprocal{mul_first}", mul_first=(False, True))


@register_pass("recognize-patterns", "patterns")
def recognize_patterns(model: "ir.Model", context: PassContext) -> PassResult:
    """Replace decomposed LayerNorm (17+), Gelu (20+), HardSwish (14+), Swish (24+), Min/Max chains \
with ONNX ops onnxruntime runs."""
    from onnxscript.rewriter.rules import common as rules
    from onnxscript.rewriter.rules.fusion._layer_norm import layer_normalization_rules

    opset = _opset(model, context)
    groups: list[tuple[list[Any], bool]] = [
        (
            [
                rules.min_min_rule,
                rules.max_max_rule,
                rules.min_max_rule,
                rules.max_min_rule,
                rules.successive_relu_rule,
                *_clip_chain_rules(),
            ],
            False,
        ),
    ]
    if opset >= 14:
        groups.append((_hard_sigmoid_by_reciprocal_rules() + list(rules.fuse_hardswish_rules().rules), True))
    if opset >= 17:
        groups.append((_layer_norm_axes_attribute_rules() + list(layer_normalization_rules), False))
    if opset >= 20 and onnxruntime_runs("Gelu", opset):
        groups.append((_gelu_rules(), True))
    if opset >= 24 and onnxruntime_runs("Swish", opset):
        groups.append(([_swish_rule()], True))
    return PassResult.counted(model, sum(apply_rules(model, group, commute=commute) for group, commute in groups))


@register_pass("annotate-activations", "patterns", once=True)
def annotate_activations(model: "ir.Model", context: PassContext) -> PassResult:
    """Mark Conv/ConvTranspose/Gemm + Relu/Clip/LeakyRelu/HardSigmoid/HardSwish pairs for targets that fuse them."""
    count = 0
    for node in model.graph:
        if node.op_type not in FUSABLE_ACTIVATIONS or node.domain not in ("", "ai.onnx"):
            continue
        source = node.inputs[0]
        producer = source.producer() if source is not None else None
        if (
            producer is None
            or producer.op_type not in ("Conv", "ConvTranspose", "Gemm")
            or len(list(source.uses())) != 1
            or source.is_graph_output()
        ):
            continue
        if producer.metadata_props.get(ANNOTATION_ACTIVATION):
            continue
        attributes = {name: attr.value for name, attr in node.attributes.items()}
        if node.op_type == "Clip":
            bounds = [
                v.const_value.numpy().tolist() if v is not None and v.const_value is not None else None for v in node.inputs[1:]
            ]
            if any(b is None for b in bounds):
                continue  # run-time bounds cannot be fused
            attributes["bounds"] = bounds
        if not producer.name:  # the annotation must name it
            taken = {n.name for n in model.graph.all_nodes()}
            producer.name = next(
                f"{producer.op_type}_{i}" for i in range(len(taken) + 1) if f"{producer.op_type}_{i}" not in taken
            )
        producer.metadata_props[ANNOTATION_ACTIVATION] = json.dumps(
            {"op_type": node.op_type, "attributes": attributes}, sort_keys=True, default=str
        )
        node.metadata_props[ANNOTATION_FUSED_INTO] = producer.name or ""
        count += 1
    if count and model.ir_version < 10:
        model.ir_version = 10  # node metadata_props need IR version 10
    return PassResult.counted(model, count)
