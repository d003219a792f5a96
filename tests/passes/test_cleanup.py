"""Cleanup passes: eliminate-identity, fold-constants, eliminate-dead-code, dedup-initializers,
eliminate-common-subexpressions, infer-shapes, normalize-opset."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.passes.helpers import (
    assert_same_outputs,
    check_rewrite,
    check_unchanged,
    const,
    make_model,
    node,
    ops,
    optimize,
    ort_run,
    rand,
)

X = [("x", [2, 3, 4, 5])]
Y = [("y", [2, 3, 4, 5])]


# --- eliminate-identity -------------------------------------------------------------------------------------------


def test_eliminate_identity_removes_identities_and_neutral_arithmetic() -> None:
    model = make_model(
        [
            node("Identity", ["x"], ["a"]),
            node("Add", ["a", "zero"], ["b"]),
            node("Mul", ["b", "one"], ["c"]),
            node("Sub", ["c", "zero"], ["d"]),
            node("Div", ["d", "one"], ["e"]),
            node("Cast", ["e"], ["g"], to=TensorProto.FLOAT),
            node("Reshape", ["g", "same_shape"], ["h"]),
            node("Relu", ["h"], ["y"]),
        ],
        X,
        Y,
        [const("zero", 0.0), const("one", 1.0), const("same_shape", [2, 3, 4, 5], np.int64)],
    )
    model = onnx.shape_inference.infer_shapes(model)
    check_rewrite(model, "eliminate-identity", {"Relu": 1})


def test_eliminate_identity_removes_inference_dropout() -> None:
    # opset 12+: Dropout without a training_mode input (or with a constant False) is the identity at inference
    model = make_model(
        [node("Dropout", ["x"], ["a"], seed=0), node("Dropout", ["a", "ratio", "no"], ["b"]), node("Relu", ["b"], ["y"])],
        X,
        Y,
        [const("ratio", 0.3), const("no", False, np.bool_)],
    )
    check_rewrite(model, "eliminate-identity", {"Relu": 1})


def test_eliminate_identity_keeps_dropout_whose_mask_is_used() -> None:
    model = make_model(
        [
            node("Dropout", ["x"], ["a", "mask"]),
            node("Cast", ["mask"], ["m"], to=TensorProto.FLOAT),
            node("Add", ["a", "m"], ["y"]),
        ],
        X,
        Y,
    )
    check_unchanged(model, "eliminate-identity")


def test_eliminate_identity_keeps_identity_between_graph_input_and_output() -> None:
    model = make_model([node("Identity", ["x"], ["y"])], X, Y)
    result = check_unchanged(model, "eliminate-identity")
    assert result.graph.input[0].name == "x" and result.graph.output[0].name == "y"


def test_eliminate_identity_keeps_non_neutral_and_broadcasting_arithmetic() -> None:
    # x + 0 with a zero tensor that broadcasts x up ([4, 5] + [3, 4, 5]) changes the shape: not a no-op;
    # x * 2, x - 0.5, Reshape to another shape, Cast to another type are real work
    model = make_model(
        [
            node("Add", ["x", "zeros"], ["a"]),
            node("Mul", ["a", "two"], ["b"]),
            node("Sub", ["b", "half"], ["c"]),
            node("Reshape", ["c", "other_shape"], ["d"]),
            node("Cast", ["d"], ["e"], to=TensorProto.DOUBLE),
            node("Cast", ["e"], ["y"], to=TensorProto.FLOAT),
        ],
        [("x", [4, 5])],
        [("y", [12, 5])],
        [const("zeros", np.zeros((3, 4, 5))), const("two", 2.0), const("half", 0.5), const("other_shape", [12, 5], np.int64)],
    )
    check_unchanged(onnx.shape_inference.infer_shapes(model), "eliminate-identity")


def test_eliminate_identity_keeps_broadcasting_multiply_by_one() -> None:
    model = make_model([node("Mul", ["x", "ones"], ["y"])], [("x", [5])], [("y", [3, 5])], [const("ones", np.ones((3, 5)))])
    check_unchanged(model, "eliminate-identity")


def test_eliminate_identity_keeps_training_dropout() -> None:
    model = make_model(
        [node("Dropout", ["x", "ratio", "training"], ["y"], seed=1)],
        X,
        Y,
        [const("ratio", 0.0), const("training", True, np.bool_)],
    )
    # ratio 0 in training mode is still the identity, so the pass may remove it; the outputs must stay equal
    result, _ = optimize(model, ["eliminate-identity"])
    assert_same_outputs(model, result)


# --- fold-constants -----------------------------------------------------------------------------------------------


def test_fold_constants_evaluates_constant_subgraphs() -> None:
    model = make_model(
        [
            helper.make_node(
                "Constant", [], ["c1"], name="c1", value=helper.make_tensor("v", TensorProto.FLOAT, [5], [1, 2, 3, 4, 5])
            ),
            node("Mul", ["c1", "k"], ["c2"]),
            node("Sqrt", ["c2"], ["c3"]),
            node("Add", ["x", "c3"], ["y"]),
        ],
        X,
        Y,
        [const("k", [2.0])],
    )
    result = check_rewrite(model, "fold-constants", {"Add": 1})
    folded = {t.name: onnx.numpy_helper.to_array(t) for t in result.graph.initializer}
    assert any(np.allclose(v, np.sqrt(np.arange(1, 6) * 2.0)) for v in folded.values())


def test_fold_constants_respects_size_limit_and_inputs() -> None:
    big = const("big", np.full((64, 64), 0.5))
    model = make_model(
        [node("Exp", ["big"], ["e"]), node("Add", ["x", "e"], ["a"]), node("Relu", ["a"], ["y"])],
        [("x", [64, 64])],
        [("y", [64, 64])],
        [big],
    )
    # tensor above the fold size limit: Exp stays; Relu on the graph input never folds
    result, _ = optimize(model, ["fold-constants"], fold_size_limit=100)
    assert ops(result) == ops(model)
    assert_same_outputs(model, result)
    # within the limit it folds
    result, _ = optimize(model, ["fold-constants"])
    assert ops(result) == {"Add": 1, "Relu": 1}
    assert_same_outputs(model, result)


def test_fold_constants_does_not_fold_random_ops() -> None:
    model = make_model(
        [
            node("RandomUniform", [], ["r"], shape=[2, 3, 4, 5], dtype=TensorProto.FLOAT, low=0.0, high=0.0),
            node("Add", ["x", "r"], ["y"]),
        ],
        X,
        Y,
    )
    result, _ = optimize(model, ["fold-constants"])
    assert ops(result) == ops(model)


# --- eliminate-dead-code ------------------------------------------------------------------------------------------


def test_eliminate_dead_code_removes_unused_nodes_and_initializers() -> None:
    model = make_model(
        [node("Relu", ["x"], ["y"]), node("Sigmoid", ["x"], ["dead1"]), node("Mul", ["dead1", "w"], ["dead2"])],
        X,
        Y,
        [const("w", 3.0), const("unused", np.ones(7))],
    )
    result = check_rewrite(model, "eliminate-dead-code", {"Relu": 1})
    assert [t.name for t in result.graph.initializer] == []


def test_eliminate_dead_code_keeps_everything_an_output_needs() -> None:
    # every node feeds a graph output (one output is also consumed downstream)
    model = make_model(
        [node("Sigmoid", ["x"], ["s"]), node("Mul", ["s", "w"], ["y"])],
        X,
        [("y", [2, 3, 4, 5]), ("s", [2, 3, 4, 5])],
        [const("w", 3.0)],
    )
    result = check_unchanged(model, "eliminate-dead-code")
    assert [t.name for t in result.graph.initializer] == ["w"]


def test_eliminate_dead_code_keeps_unused_graph_inputs() -> None:
    model = make_model([node("Relu", ["x"], ["y"])], [*X, ("z", [3])], Y)
    result = check_unchanged(model, "eliminate-dead-code", shapes={"z": [3]})
    assert [i.name for i in result.graph.input] == ["x", "z"]


# --- dedup-initializers -------------------------------------------------------------------------------------------


def test_dedup_initializers_merges_identical_tensors() -> None:
    values = np.arange(5, dtype=np.float32)
    model = make_model(
        [node("Add", ["x", "a"], ["p"]), node("Mul", ["p", "b"], ["y"])],
        X,
        Y,
        [const("a", values), const("b", values)],
    )
    result = check_rewrite(model, "dedup-initializers", {"Add": 1, "Mul": 1})
    assert len(result.graph.initializer) == 1


def test_dedup_initializers_keeps_different_content_dtype_or_shape() -> None:
    model = make_model(
        [
            node("Add", ["x", "a"], ["p"]),
            node("Mul", ["p", "b"], ["q"]),
            node("Add", ["q", "m2"], ["r"]),  # [1, 5] ones ...
            node("Add", ["r", "m1"], ["s"]),  # ... and [5, 1] ones: same bytes, other shape
            node("Cast", ["s"], ["t64"], to=TensorProto.DOUBLE),
            node("Add", ["t64", "a64"], ["u"]),
            node("Cast", ["u"], ["y"], to=TensorProto.FLOAT),
        ],
        [("x", [2, 3, 5, 5])],
        [("y", [2, 3, 5, 5])],
        [
            const("a", np.arange(5)),
            const("b", np.arange(5) + 1.0),
            const("m2", np.arange(5).reshape(1, 5)),
            const("m1", np.arange(5).reshape(5, 1)),
            const("a64", np.arange(5), np.float64),
        ],
    )
    result = check_unchanged(model, "dedup-initializers")
    assert len(result.graph.initializer) == 5


@pytest.mark.parametrize("name", ["dedup-initializers", "fold-constants", "eliminate-common-subexpressions"])
def test_overridable_initializers_stay_inputs(name: str) -> None:
    # initializers that are also graph inputs are defaults a caller may replace: not constants to merge or fold
    model = make_model(
        [
            node("Add", ["x", "a"], ["p"]),
            node("Mul", ["p", "b"], ["q"]),
            node("Mul", ["c1", "c2"], ["cc"]),
            node("Add", ["q", "cc"], ["y"]),
        ],
        [("x", [5]), ("a", [5]), ("b", [5]), ("c1", [5]), ("c2", [5])],
        [("y", [5])],
        [const("a", np.arange(5)), const("b", np.arange(5)), const("c1", np.ones(5)), const("c2", np.ones(5))],
    )
    result = check_unchanged(model, name)
    assert [i.name for i in result.graph.input] == ["x", "a", "b", "c1", "c2"]
    feeds = {n: np.full(5, v, np.float32) for n, v in zip(["x", "a", "b", "c1", "c2"], [1, 2, 3, 4, 5])}
    np.testing.assert_array_equal(ort_run(result, feeds)[0], ort_run(model, feeds)[0])


# --- eliminate-common-subexpressions ------------------------------------------------------------------------------


def test_cse_merges_repeated_expressions() -> None:
    model = make_model(
        [
            node("Relu", ["x"], ["r1"]),
            node("Relu", ["x"], ["r2"]),
            node("LeakyRelu", ["r1"], ["l1"], alpha=0.2),
            node("LeakyRelu", ["r2"], ["l2"], alpha=0.2),
            node("Add", ["l1", "l2"], ["y"]),
        ],
        X,
        Y,
    )
    check_rewrite(model, "eliminate-common-subexpressions", {"Add": 1, "LeakyRelu": 1, "Relu": 1})


def test_cse_keeps_different_attributes_and_ops() -> None:
    model = make_model(
        [
            node("LeakyRelu", ["x"], ["l1"], alpha=0.1),
            node("LeakyRelu", ["x"], ["l2"], alpha=0.2),
            node("Sigmoid", ["x"], ["s"]),
            node("Tanh", ["x"], ["t"]),
            node("Sum", ["l1", "l2", "s", "t"], ["y"]),
        ],
        X,
        Y,
    )
    check_unchanged(model, "eliminate-common-subexpressions")


def test_cse_keeps_nondeterministic_ops_apart() -> None:
    model = make_model(
        [
            node("RandomUniformLike", ["x"], ["r1"]),
            node("RandomUniformLike", ["x"], ["r2"]),
            node("Sub", ["r1", "r2"], ["y"]),
        ],
        X,
        Y,
    )
    result, _ = optimize(model, ["eliminate-common-subexpressions"])
    # merging two random draws would make y identically zero
    assert ops(result) == ops(model)


# --- infer-shapes -------------------------------------------------------------------------------------------------


def test_infer_shapes_annotates_intermediate_tensors() -> None:
    model = make_model(
        [node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), node("Relu", ["c"], ["r"]), node("Flatten", ["r"], ["y"])],
        [("x", ["N", 3, 4, 5])],
        [("y", ["N", "F"])],
        [const("w", np.ones((6, 3, 3, 3)))],
    )
    assert not model.graph.value_info
    result, _ = optimize(model, ["infer-shapes"])
    assert ops(result) == ops(model)
    shapes = {
        v.name: [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim]
        for v in [*result.graph.value_info, *result.graph.output]
    }
    assert shapes["c"] == ["N", 6, 4, 5]
    assert shapes["r"] == ["N", 6, 4, 5]
    assert_same_outputs(model, result)


def test_infer_shapes_does_not_change_nodes_or_declared_inputs() -> None:
    model = make_model([node("Relu", ["x"], ["y"])], [("x", ["batch", 3])], [("y", ["batch", 3])])
    result = check_unchanged(model, "infer-shapes")
    assert result.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


# --- normalize-opset ----------------------------------------------------------------------------------------------


def _opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def test_normalize_opset_converts_to_requested_opset() -> None:
    # opset 11 Clip with min/max inputs, ReduceSum with axes attribute (an input from 13 on)
    model = make_model(
        [
            node("Clip", ["x", "lo", "hi"], ["c"]),
            node("ReduceSum", ["c"], ["y"], axes=[1], keepdims=1),
        ],
        X,
        [("y", [2, 1, 4, 5])],
        [const("lo", -0.5), const("hi", 0.5)],
        opset=11,
        ir_version=7,
    )
    result, report = optimize(model, ["normalize-opset"], opset=17)
    assert _opset(result) == 17
    assert report.passes[0].rewrites >= 1
    # the converter may turn the opset-11 `axes` attribute into a Constant input; the computation stays
    assert {k: v for k, v in ops(result).items() if k != "Constant"} == ops(model)
    assert_same_outputs(model, result)


def test_normalize_opset_merges_ai_onnx_alias_domain() -> None:
    model = make_model([node("Relu", ["x"], ["r"]), node("Neg", ["r"], ["y"])], X, Y, opset=17)
    model.graph.node[1].domain = "ai.onnx"
    model.opset_import.add(domain="ai.onnx", version=17)
    result, _ = optimize(model, ["normalize-opset"])
    assert {n.domain for n in result.graph.node} == {""}
    assert {(o.domain, o.version) for o in result.opset_import} == {("", 17)}
    assert_same_outputs(model, result)


def test_normalize_opset_leaves_a_model_already_at_its_opset() -> None:
    model = make_model([node("Relu", ["x"], ["y"])], X, Y, opset=17)
    result, report = optimize(model, ["normalize-opset"])
    assert report.passes[0].rewrites == 0
    assert _opset(result) == 17
    check_unchanged(model, "normalize-opset")


# --- constant-initializer-inputs ------------------------------------------------------------------------------------


def _weights_listed_as_inputs(ir_version: int, *, listed: str = "all") -> onnx.ModelProto:
    """Conv -> BatchNormalization -> Relu whose weights are initializers and (all, or only the Conv weight) inputs."""
    rng = np.random.default_rng(0)
    inits = [
        const("w", rng.normal(size=(4, 3, 3, 3))),
        const("gamma", rng.uniform(0.5, 1.5, 4)),
        const("beta", rng.normal(size=4)),
        const("mean", rng.normal(size=4)),
        const("var", rng.uniform(0.5, 2.0, 4)),
    ]
    names = [t.name for t in inits] if listed == "all" else ["w"]
    shapes = {t.name: list(t.dims) for t in inits}
    inputs = [("x", [1, 3, 8, 8])] + [(name, shapes[name]) for name in names]
    nodes = [
        node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["b"]),
        node("Relu", ["b"], ["y"]),
    ]
    return make_model(nodes, inputs, [("y", [1, 4, 8, 8])], inits, opset=9, ir_version=ir_version)


@pytest.mark.parametrize("ir_version", [3, 4, 8])
def test_initializers_listed_as_inputs_become_constants_and_batchnorm_folds(ir_version: int) -> None:
    model = _weights_listed_as_inputs(ir_version)
    result, report = optimize(model, ["constant-initializer-inputs", "fold-batchnorm"])
    assert [i.name for i in result.graph.input] == ["x"]
    assert ops(result) == {"Conv": 1, "Relu": 1}
    assert result.ir_version >= 4  # an initializer that is not an input needs IR 4
    assert report.passes[0].rewrites == 5
    assert_same_outputs(model, result)


def test_a_partial_list_of_initializer_inputs_is_a_deliberate_default_and_stays() -> None:
    model = _weights_listed_as_inputs(8, listed="w")
    result = check_unchanged(model, "constant-initializer-inputs")
    assert [i.name for i in result.graph.input] == ["x", "w"]


def test_keep_initializer_inputs_keeps_them_overridable() -> None:
    model = _weights_listed_as_inputs(4)
    result, report = optimize(model, ["constant-initializer-inputs", "fold-batchnorm"], keep_initializer_inputs=True)
    assert len(result.graph.input) == 6 and ops(result)["BatchNormalization"] == 1
    assert not report.passes[0].rewrites


# --- fold-measured-shapes -------------------------------------------------------------------------------------------


def _shape_of_a_range(input_shape: list) -> onnx.ModelProto:
    """y = Reshape(x, [-1, len(Range(0, x.shape[3]))]): onnx's shape inference cannot size the Range, so the Shape of
    it stays a run-time computation unless it is measured."""
    nodes = [
        node("Shape", ["x"], ["sx"]),
        node("Gather", ["sx", "three"], ["width"]),
        node("Cast", ["width"], ["width_f"], to=TensorProto.FLOAT),
        node("Range", ["zero_f", "width_f", "one_f"], ["grid"]),
        node("Shape", ["grid"], ["sg"]),
        node("Concat", ["minus_one", "sg"], ["target"], axis=0),
        node("Reshape", ["x", "target"], ["y"]),
    ]
    inits = [
        const("three", 3, np.int64),
        const("zero_f", 0.0),
        const("one_f", 1.0),
        const("minus_one", [-1], np.int64),
    ]
    return make_model(nodes, [("x", input_shape)], [("y", ["rows", input_shape[3]])], inits)


def test_fold_measured_shapes_folds_what_shape_inference_cannot_size() -> None:
    model = _shape_of_a_range([2, 3, 4, 5])
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    grid = next((v for v in inferred.graph.value_info if v.name == "grid"), None)
    assert grid is None or not all(d.HasField("dim_value") for d in grid.type.tensor_type.shape.dim)  # the premise
    result, report = optimize(model, ["fold-measured-shapes", "fold-constants", "eliminate-dead-code"])
    assert ops(result) == {"Reshape": 1}
    assert {p.name: p.rewrites for p in report.passes}["fold-measured-shapes"] >= 1
    assert_same_outputs(model, result)


@pytest.mark.parametrize("case", ["dynamic input", "value-dependent shape"])
def test_fold_measured_shapes_leaves_shapes_that_can_change(case: str) -> None:
    if case == "dynamic input":
        model = _shape_of_a_range(["N", 3, 4, 5])
    else:  # NonZero's output size depends on the values: nothing in such a graph is measured
        model = make_model(
            [node("NonZero", ["x"], ["nz"]), node("Shape", ["nz"], ["s"]), node("Reshape", ["x", "s"], ["y"])],
            [("x", [2, 3])],
            [("y", ["a", "b"])],
        )
    result, report = optimize(model, ["fold-measured-shapes"])
    assert ops(result) == ops(model)
    assert not report.passes[0].rewrites


@pytest.mark.parametrize(("dims", "folded"), [([2, 3, 4, 5], True), ([2, 3, 256, 256], False)])
def test_fold_constants_folds_a_small_constant_of_shape(dims: list[int], folded: bool) -> None:
    # onnxscript keeps every ConstantOfShape; a small one is folded so that what it feeds folds too
    model = make_model(
        [
            node("ConstantOfShape", ["dims"], ["filled"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.5])),
            node("Add", ["x", "filled"], ["y"]),
        ],
        [("x", dims)],
        [("y", dims)],
        [const("dims", dims, np.int64)],
    )
    expected = {"Add": 1} if folded else {"Add": 1, "ConstantOfShape": 1}
    check_rewrite(model, "fold-constants", expected)


# --- lift-constants ---------------------------------------------------------------------------------------------------


def _constant_weights_model() -> onnx.ModelProto:
    """A Conv whose weights, bias and a Reshape's shape are Constant nodes (how paddle2onnx writes weights)."""
    weights = const("w_value", rand((4, 3, 3, 3)))
    bias = const("b_value", rand((4,), 1))
    shape = const("shape_value", [1, -1], dtype=np.int64)
    return make_model(
        [
            node("Constant", [], ["w"], value=weights),
            node("Constant", [], ["b"], value=bias),
            node("Constant", [], ["shape"], value=shape),
            node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
            node("Reshape", ["c", "shape"], ["y"]),
        ],
        [("x", [1, 3, 6, 6])],
        [("y", [1, 144])],
    )


def test_lift_constants_turns_constant_nodes_into_initializers() -> None:
    model = _constant_weights_model()
    result = check_rewrite(model, "lift-constants", {"Conv": 1, "Reshape": 1})
    assert {t.name for t in result.graph.initializer} == {"w", "b", "shape"}


def test_lifted_constant_weights_are_quantised() -> None:
    """onnxruntime's quantiser treats a Constant node's output as an activation without a range ("Quantization parameters
    are not specified for param ..."): after the pass (in -O1, which quantize runs first) it gets int8 weights."""
    from edgecc.quantization import QuantOptions, quantize_model
    from edgecc.quantization.scheme import QuantScheme

    model = _constant_weights_model()
    feeds = [{"x": rand((1, 3, 6, 6), seed)} for seed in range(4)]
    quantized, report = quantize_model(model, QuantScheme(), feeds, QuantOptions(holdout=0.0, per_layer_report=False))
    producers = {o: n for n in quantized.graph.node for o in n.output}
    conv = next(n for n in quantized.graph.node if n.op_type == "Conv")
    dequantize = producers[conv.input[1]]
    assert dequantize.op_type == "DequantizeLinear"
    integer = {t.name: t.data_type for t in quantized.graph.initializer}
    assert integer[dequantize.input[0]] == TensorProto.INT8, "the Conv reads int8 weights"
    assert report.outputs[0].cosine > 0.99
