"""Cleanup passes: identities and no-ops, constant folding, dead code, duplicates, shape inference."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from edgecc.passes import PassContext, PassResult, register_pass
from edgecc.passes.rules import apply_rules, model_opset, remove_unused, run_ir_passes

if TYPE_CHECKING:
    import onnx_ir as ir

__all__: list[str] = []

log = logging.getLogger(__name__)


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


#: ConstantOfShape outputs up to this many elements are folded into initializers (onnxscript keeps them by default)
_SMALL_CONSTANT_OF_SHAPE = 65536


@register_pass("fold-constants", "cleanup")
def fold_constants(model: "ir.Model", context: PassContext) -> PassResult:
    """Evaluate subgraphs whose inputs are all constants (tensors up to the size limit) into initializers."""
    import onnx_ir as ir
    from onnxscript.optimizer import fold_constants as onnxscript_fold

    def decide(node: "ir.Node") -> bool | None:
        # onnx_ir cannot serialise folded string tensors: leave string computations alone
        values = [v for v in (*node.inputs, *node.outputs) if v is not None]
        if any(v.dtype == ir.DataType.STRING for v in values):
            return False
        # onnxscript keeps ConstantOfShape by default (a compact constant); a small one is folded so that the
        # computation it feeds (masks, index grids built from shapes) folds too
        if node.op_type == "ConstantOfShape" and node.domain in ("", "ai.onnx") and node.inputs[0] is not None:
            shape = node.inputs[0].const_value
            if shape is not None and abs(int(shape.numpy().astype("int64").prod())) <= _SMALL_CONSTANT_OF_SHAPE:
                return True
        return None

    def fold(model: "ir.Model") -> "ir.passes.PassResult":
        limit = context.fold_size_limit
        return onnxscript_fold(model, input_size_limit=limit, output_size_limit=limit, should_fold=decide)

    return run_ir_passes(model, fold, remove_unused)


@register_pass("lift-constants", "cleanup")
def lift_constants(model: "ir.Model", context: PassContext) -> PassResult:
    """Turn Constant nodes into initializers (Paddle and torch exports hold weights and shapes in Constant nodes)."""
    import numpy as np
    import onnx_ir as ir
    from onnx_ir.passes.common import LiftConstantsToInitializersPass

    def constants() -> list["ir.Node"]:
        return [
            n for n in ir.traversal.RecursiveGraphIterator(model.graph) if n.op_type == "Constant" and n.domain in ("", "ai.onnx")
        ]

    found = constants()
    if not found:
        return PassResult(model, False, 0)
    for node in found:  # the lifted tensor is renamed: give it its own copy, not the caller's TensorProto
        value = node.attributes.get("value")
        if value is not None and value.type == ir.AttributeType.TENSOR:
            node.attributes["value"] = ir.AttrTensor("value", ir.tensor(np.array(value.value.numpy())))
    result = LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0)(model)
    return PassResult(result.model, bool(result.modified), len(found) - len(constants()))


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


#: ops whose output shapes can depend on input values, or that run subgraphs: a graph holding one is not measured
_VALUE_DEPENDENT_SHAPES = frozenset(
    {
        "NonZero",
        "Unique",
        "NonMaxSuppression",
        "Compress",
        "TopK",
        "Loop",
        "If",
        "Scan",
        "RandomNormal",
        "RandomUniform",
        "RandomNormalLike",
        "RandomUniformLike",
        "Multinomial",
        "Bernoulli",
        "Dropout",
    }
)


def _measured_shapes(model: "ir.Model", names: list[str]) -> dict[str, tuple[int, ...]]:
    """The shapes of the tensors `names` in two onnxruntime runs on different random samples (`edgecc.data`), where
    both agree; nothing when a graph input's shape is not static."""
    import numpy as np
    import onnx
    import onnx_ir as ir
    import onnxruntime as ort

    from edgecc.data import random_feeds
    from edgecc.onnxutil import graph_inputs

    proto = ir.to_proto(model)
    inputs = graph_inputs(proto)
    if not all(info.is_static() for info in inputs):
        return {}
    known = {o.name for o in proto.graph.output}
    proto.graph.output.extend(onnx.ValueInfoProto(name=name) for name in names if name not in known)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4  # a graph random inputs cannot run (e.g. indices out of range) is just not measured
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    wanted = [o.name for o in session.get_outputs() if o.name in set(names)]
    runs = [
        dict(zip(wanted, (np.shape(a) for a in session.run(wanted, feeds)))) for feeds in random_feeds(inputs, seed=0, count=2)
    ]
    return {name: tuple(runs[0][name]) for name in wanted if runs[0][name] == runs[1][name]}


def _shape_slice(dims: tuple[int, ...], node: "ir.Node") -> list[int]:
    """What Shape(start, end) returns for a tensor of `dims` (opset 15 clamping of negative and large bounds)."""
    rank = len(dims)
    start = node.attributes.get("start")
    end = node.attributes.get("end")
    first = start.as_int() if start is not None else 0
    last = end.as_int() if end is not None else rank
    first = min(max(first + rank if first < 0 else first, 0), rank)
    last = min(max(last + rank if last < 0 else last, 0), rank)
    return list(dims[first:last])


@register_pass("fold-measured-shapes", "cleanup")
def fold_measured_shapes(model: "ir.Model", context: PassContext) -> PassResult:
    """Replace Shape/Size of tensors whose shape onnxruntime measures as fixed (static inputs, two runs) by constants."""
    import numpy as np
    import onnx_ir as ir

    graph = model.graph
    targets = [
        node
        for node in graph
        if node.op_type in ("Shape", "Size")
        and node.domain in ("", "ai.onnx")
        and node.inputs
        and node.inputs[0] is not None
        and (node.inputs[0].shape is None or not node.inputs[0].shape.is_static())
        and not node.outputs[0].is_graph_output()
    ]
    if not targets or any(n.op_type in _VALUE_DEPENDENT_SHAPES for n in graph.all_nodes()):
        return PassResult(model, modified=False)
    try:
        shapes = _measured_shapes(model, sorted({n.inputs[0].name for n in targets}))
    except Exception as exc:  # noqa: BLE001 -- onnxruntime refuses or fails on the graph: nothing is measured
        log.debug("fold-measured-shapes: onnxruntime could not run the graph: %s", exc)
        return PassResult(model, modified=False)
    count = 0
    for node in targets:
        dims = shapes.get(node.inputs[0].name)
        if dims is None:
            continue
        if node.op_type == "Shape":
            array = np.asarray(_shape_slice(dims, node), dtype=np.int64)
        else:
            array = np.asarray(int(np.prod(dims, dtype=np.int64)), dtype=np.int64)
        name = f"{node.outputs[0].name}_measured"
        constant = ir.Value(name=name, shape=ir.Shape(array.shape), type=ir.TensorType(ir.DataType.INT64))
        constant.const_value = ir.tensor(array, name=name)
        graph.register_initializer(constant)
        node.outputs[0].replace_all_uses_with(constant)
        graph.remove(node, safe=True)
        count += 1
    if count:
        remove_unused(model)  # what only fed the measured tensors' shapes
    return PassResult.counted(model, count)
