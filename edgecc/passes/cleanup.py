"""Cleanup passes: identities and no-ops, constant folding, dead code, duplicates, shape inference."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgecc.passes import PassContext, PassResult, register_pass
from edgecc.passes.rules import apply_rules, model_opset, remove_unused, run_ir_passes

if TYPE_CHECKING:
    import onnx_ir as ir

__all__: list[str] = []


def _to_identity_rules() -> list[Any]:
    """Reshape to the same static shape, and inference Dropout (opset 12+) -> Identity of the input."""
    from onnxscript.rewriter import pattern

    class ToIdentity(pattern.RewriteRuleClassBase):
        def rewrite(self, op, x, **_):  # noqa: ANN001, ANN202
            return op.Identity(x)

    class NoOpReshape(ToIdentity):
        """Reshape whose input and output have the same static shape -> its input."""

        def pattern(self, op, x, shape):  # noqa: ANN001, ANN202
            return op.Reshape(x, shape, _allow_other_attributes=True, _outputs=["y"])

        def check(self, context, x, shape, y, **_):  # noqa: ANN001, ANN202
            result = pattern.MatchResult()
            if x.shape is None or y.shape is None or not x.shape.is_static() or x.shape != y.shape:
                return result.fail("shapes unknown or different")
            if x.dtype != y.dtype:
                return result.fail("dtype differs")
            return result

    class InferenceDropout(ToIdentity):
        """Opset 12+ Dropout without training_mode (or a constant False one) and no mask output -> its input."""

        def pattern(self, op, x):  # noqa: ANN001, ANN202
            return op.Dropout(x, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["y"])

        def check(self, context, x, y, **_):  # noqa: ANN001, ANN202
            result = pattern.MatchResult()
            node = y.producer()
            training = node.inputs[2] if len(node.inputs) > 2 else None
            if training is not None and (training.const_value is None or bool(training.const_value.numpy().reshape(-1)[0])):
                return result.fail("training mode or not known")
            return result

    return [NoOpReshape.rule(), InferenceDropout.rule()]


@register_pass("constant-initializer-inputs", "cleanup")
def constant_initializer_inputs(model: "ir.Model", context: PassContext) -> PassResult:
    """Treat initializers that are also graph inputs as constants (IR < 4 files, or every initializer listed)."""
    graph = model.graph
    listed = [value for value in graph.inputs if value.name in graph.initializers]
    if context.keep_initializer_inputs or not listed:
        return PassResult(model, modified=False)
    # IR < 4 lists every initializer as an input because it must; an exporter that lists all of them
    # (keep_initializers_as_inputs) did it by habit. A partial list is a deliberate default (e.g. a streaming
    # model's state) and stays overridable.
    if model.ir_version >= 4 and len(listed) < len(graph.initializers):
        return PassResult(model, modified=False)
    for value in listed:
        graph.inputs.remove(value)
    if model.ir_version < 4:
        from edgecc.onnxutil import ir_version_for

        opset = model_opset(model)
        model.ir_version = max(4, ir_version_for(opset) if opset else 4)
    return PassResult.counted(model, len(listed))


@register_pass("eliminate-identity", "cleanup")
def eliminate_identity(model: "ir.Model", context: PassContext) -> PassResult:
    """Remove Identity, inference Dropout, no-op Cast/Expand/Transpose/Reshape and x+0, x*1, x-0, x/1."""
    from onnxscript.rewriter.rules import common as rules

    count = apply_rules(
        model,
        [
            rules.dropout_inference_rule,
            rules.dropout_zero_rule,
            rules.no_op_cast_rule,
            rules.no_op_expand_rule,
            rules.no_op_transpose_rule,
            rules.add_0_rule,
            rules.sub_0_rule,
            rules.mul_by_1_rule,
            rules.div_by_1_rule,
            *_to_identity_rules(),
        ],
    )
    return PassResult.counted(model, count + _remove_identities(model))


def _remove_identities(model: "ir.Model") -> int:
    """Bypass Identity nodes whose output is not a graph output (in every graph, subgraphs included).

    An Identity that produces a graph output is kept: removing it would rename the
    output or make one value appear twice among a graph's outputs, which runtimes
    treat differently (e.g. Scan bodies).
    """
    removed = 0
    for node in list(model.graph.all_nodes()):
        if node.op_type != "Identity" or node.domain not in ("", "ai.onnx") or not node.inputs or node.inputs[0] is None:
            continue
        output = node.outputs[0]
        if output.is_graph_output():
            continue
        output.replace_all_uses_with(node.inputs[0])
        node.graph.remove(node, safe=True)
        removed += 1
    return removed


@register_pass("fold-constants", "cleanup")
def fold_constants(model: "ir.Model", context: PassContext) -> PassResult:
    """Evaluate subgraphs whose inputs are all constants (tensors up to the size limit) into initializers."""
    import onnx_ir as ir
    from onnxscript.optimizer import fold_constants as onnxscript_fold

    def no_strings(node: "ir.Node") -> bool | None:
        # onnx_ir cannot serialise folded string tensors: leave string computations alone
        values = [v for v in (*node.inputs, *node.outputs) if v is not None]
        return False if any(v.dtype == ir.DataType.STRING for v in values) else None

    def fold(model: "ir.Model") -> "ir.passes.PassResult":
        limit = context.fold_size_limit
        return onnxscript_fold(model, input_size_limit=limit, output_size_limit=limit, should_fold=no_strings)

    return run_ir_passes(model, fold, remove_unused)


@register_pass("eliminate-dead-code", "cleanup")
def eliminate_dead_code(model: "ir.Model", context: PassContext) -> PassResult:
    """Remove nodes, initializers, functions and opset imports no output depends on."""
    from onnx_ir.passes.common import RemoveUnusedFunctionsPass, RemoveUnusedOpsetsPass

    return run_ir_passes(model, remove_unused, RemoveUnusedFunctionsPass(), RemoveUnusedOpsetsPass())


@register_pass("dedup-initializers", "cleanup")
def dedup_initializers(model: "ir.Model", context: PassContext) -> PassResult:
    """Merge initializers with identical dtype, shape and content."""
    from onnx_ir.passes.common import DeduplicateInitializersPass

    return run_ir_passes(model, DeduplicateInitializersPass(size_limit=context.fold_size_limit))


@register_pass("eliminate-common-subexpressions", "cleanup")
def eliminate_common_subexpressions(model: "ir.Model", context: PassContext) -> PassResult:
    """Compute each repeated (same op, inputs and attributes) expression once."""
    from onnx_ir.passes.common import CommonSubexpressionEliminationPass

    return run_ir_passes(model, CommonSubexpressionEliminationPass(), remove_unused)


@register_pass("infer-shapes", "cleanup", once=True)
def infer_shapes(model: "ir.Model", context: PassContext) -> PassResult:
    """Annotate every tensor with its shape and type (ONNX shape inference with data propagation)."""
    from onnx_ir.passes.common import ShapeInferencePass

    return PassResult.from_ir(ShapeInferencePass(check_type=False, strict_mode=False, data_prop=True)(model))


@register_pass("normalize-opset", "cleanup", once=True)
def normalize_opset(model: "ir.Model", context: PassContext) -> PassResult:
    """Bring every node to one ai.onnx opset (the --opset asked for, else the model's), with edgecc's converter."""
    import onnx_ir as ir

    from edgecc.opset import convert_opset

    current = model_opset(model)
    target = context.opset or current
    aliased = "ai.onnx" in model.opset_imports
    if target == current and not aliased:
        return PassResult(model, modified=False)
    proto = ir.to_proto(model)
    if aliased:
        for node in proto.graph.node:
            if node.domain == "ai.onnx":
                node.domain = ""
        merged = max(v.version for v in proto.opset_import if v.domain in ("", "ai.onnx"))
        kept = [v for v in proto.opset_import if v.domain not in ("", "ai.onnx")]
        del proto.opset_import[:]
        proto.opset_import.extend(kept)
        entry = proto.opset_import.add()
        entry.domain, entry.version = "", merged
    converted = convert_opset(proto, target, path="<optimised model>")
    return PassResult(ir.from_proto(converted), modified=True, rewrites=1)
