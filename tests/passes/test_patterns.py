"""Pattern passes: recognize-patterns (LayerNorm, Gelu, HardSwish, Swish, Min/Max -> Clip), annotate-activations."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest
from onnx import helper

from edgecc.passes import LEVELS
from tests.passes.helpers import (
    assert_same_outputs,
    check_rewrite,
    check_unchanged,
    const,
    feeds_for,
    make_model,
    node,
    ops,
    optimize,
    ort_run,
    rand,
)

X = [("x", [2, 4, 8])]
Y = [("y", [2, 4, 8])]


# --- recognize-patterns: LayerNorm --------------------------------------------------------------------------------


def _layernorm(opset: int, *, epsilon: str = "eps", scale_shape: tuple[int, ...] = (8,), divide: bool = True) -> onnx.ModelProto:
    def mean(source: str, out: str) -> onnx.NodeProto:
        if opset >= 18:
            return node("ReduceMean", [source, "axes"], [out], keepdims=1)
        return node("ReduceMean", [source], [out], axes=[-1], keepdims=1)

    nodes = [
        mean("x", "mu"),
        node("Sub", ["x", "mu"], ["d"]),
        node("Pow", ["d", "two"], ["d2"]),
        mean("d2", "var"),
        node("Add", ["var", epsilon], ["ve"]),
        node("Sqrt", ["ve"], ["std"]),
    ]
    if divide:
        nodes.append(node("Div", ["d", "std"], ["n"]))
    else:
        nodes += [node("Reciprocal", ["std"], ["inv"]), node("Mul", ["d", "inv"], ["n"])]
    nodes += [node("Mul", ["n", "gamma"], ["s"]), node("Add", ["s", "beta"], ["y"])]
    inits = [
        const("two", 2.0),
        const("gamma", rand(scale_shape, 1, 0.5, 1.5)),
        const("beta", rand((8,), 2)),
        *([const("axes", [-1], np.int64)] if opset >= 18 else []),
        *([const("eps", 1e-5)] if epsilon == "eps" else []),
    ]
    inputs = [*X, *([("e", [])] if epsilon != "eps" else [])]
    return make_model(nodes, inputs, Y, inits, opset=opset)


@pytest.mark.parametrize(("opset", "divide"), [(17, True), (18, True), (18, False)])
def test_recognize_layernorm(opset: int, divide: bool) -> None:
    model = _layernorm(opset, divide=divide)
    check_rewrite(model, "recognize-patterns", {"LayerNormalization": 1})


def test_recognize_layernorm_not_below_opset_17() -> None:
    check_unchanged(_layernorm(16), "recognize-patterns")


def test_recognize_layernorm_keeps_non_constant_epsilon() -> None:
    model = _layernorm(18, epsilon="e")
    result, _ = optimize(model, ["recognize-patterns"])
    assert ops(result) == ops(model)
    feeds = {"x": rand((2, 4, 8)), "e": np.array(1e-3, np.float32)}
    np.testing.assert_allclose(ort_run(result, feeds)[0], ort_run(model, feeds)[0], rtol=0, atol=0)


def test_recognize_layernorm_with_row_scale_keeps_numerics() -> None:
    # a [4, 1] "scale" multiplies rows, not the normalised axis: LayerNormalization's Scale cannot express it
    model = _layernorm(18, scale_shape=(4, 1))
    result, _ = optimize(model, ["recognize-patterns"])
    assert_same_outputs(model, result)


# --- recognize-patterns: Gelu -------------------------------------------------------------------------------------


def _gelu_erf(opset: int, root2: float = math.sqrt(2), order: str = "half first") -> onnx.ModelProto:
    nodes = [
        node("Div", ["x", "root2"], ["q"]),
        node("Erf", ["q"], ["e"]),
        node("Add", ["e", "one"], ["inner"]),
    ]
    if order == "half first":
        nodes += [node("Mul", ["x", "half"], ["xh"]), node("Mul", ["xh", "inner"], ["y"])]
    else:
        nodes += [node("Mul", ["inner", "x"], ["xi"]), node("Mul", ["half", "xi"], ["y"])]
    return make_model(nodes, X, Y, [const("root2", root2), const("one", 1.0), const("half", 0.5)], opset=opset, ir_version=9)


def _gelu_tanh(opset: int, c: float = 0.044715) -> onnx.ModelProto:
    nodes = [
        node("Pow", ["x", "three"], ["x3"]),
        node("Mul", ["x3", "c"], ["cx3"]),
        node("Add", ["x", "cx3"], ["cubic"]),
        node("Mul", ["cubic", "k"], ["arg"]),
        node("Tanh", ["arg"], ["t"]),
        node("Add", ["t", "one"], ["inner"]),
        node("Mul", ["x", "half"], ["xh"]),
        node("Mul", ["xh", "inner"], ["y"]),
    ]
    inits = [const("three", 3.0), const("c", c), const("k", math.sqrt(2 / math.pi)), const("one", 1.0), const("half", 0.5)]
    return make_model(nodes, X, Y, inits, opset=opset, ir_version=9)


@pytest.mark.parametrize("order", ["half first", "half last, commuted"])
def test_recognize_gelu_erf_at_opset_20(order: str) -> None:
    result = check_rewrite(_gelu_erf(20, order=order), "recognize-patterns", {"Gelu": 1})
    gelu = next(n for n in result.graph.node if n.op_type == "Gelu")
    attributes = {a.name: helper.get_attribute_value(a) for a in gelu.attribute}
    assert attributes.get("approximate", b"none") == b"none"


def test_recognize_gelu_tanh_at_opset_20() -> None:
    result = check_rewrite(_gelu_tanh(20), "recognize-patterns", {"Gelu": 1}, rtol=1e-5)
    gelu = next(n for n in result.graph.node if n.op_type == "Gelu")
    assert helper.get_node_attr_value(gelu, "approximate") == b"tanh"


@pytest.mark.parametrize(
    "build",
    [lambda: _gelu_erf(17), lambda: _gelu_tanh(19), lambda: _gelu_erf(20, root2=math.sqrt(3)), lambda: _gelu_tanh(20, c=0.05)],
    ids=["erf opset 17", "tanh opset 19", "erf wrong constant", "tanh wrong constant"],
)
def test_recognize_gelu_negative_variants(build) -> None:
    check_unchanged(build(), "recognize-patterns")


def test_recognize_gelu_for_a_lower_opset_model_needs_conversion() -> None:
    # asking for opset 20 on an opset-17 model: recognize-patterns may only use Gelu if the model ends up at opset 20
    model = _gelu_erf(17)
    result, _ = optimize(model, ["recognize-patterns", "normalize-opset"], opset=20)
    assert ops(result) == {"Gelu": 1}
    assert next(o.version for o in result.opset_import if o.domain == "") == 20
    assert_same_outputs(model, result)


# --- recognize-patterns: HardSwish, Swish, Min/Max -> Clip --------------------------------------------------------


def test_recognize_hardswish_from_hardsigmoid() -> None:
    model = make_model(
        [node("HardSigmoid", ["x"], ["h"], alpha=1 / 6, beta=0.5), node("Mul", ["x", "h"], ["y"])],
        X,
        Y,
        opset=14,
    )
    check_rewrite(model, "recognize-patterns", {"HardSwish": 1})


def _relu6_hardswish() -> onnx.ModelProto:
    """x * clip(x + 3, 0, 6) / 6, the decomposition onnxscript's rules recognise."""
    model = make_model(
        [
            node("Add", ["x", "three"], ["a"]),
            node("Clip", ["a", "zero", "six"], ["c"]),
            node("Mul", ["c", "x"], ["m"]),
            node("Div", ["m", "six"], ["y"]),
        ],
        X,
        Y,
        [const("three", 3.0), const("zero", 0.0), const("six", 6.0)],
        opset=17,
    )
    return model


def test_recognize_hardswish_from_relu6_decomposition() -> None:
    model = _relu6_hardswish()
    check_rewrite(model, "recognize-patterns", {"HardSwish": 1})


@pytest.mark.parametrize("order", ["keras hard_sigmoid then multiply", "multiply then scale"])
def test_recognize_hardswish_scaled_by_one_sixth(order: str) -> None:
    """Keras's hard_swish is x * (relu6(x + 3) * (1/6)) (tf2onnx writes a Mul by 0.16666667), and div-to-mul turns the
    Div-by-6 form into a Mul as well: both are HardSwish (onnxscript's own rules match only Div)."""
    clipped = [node("Add", ["x", "three"], ["a"]), node("Clip", ["a", "zero", "six"], ["c"])]
    if order == "keras hard_sigmoid then multiply":
        tail = [node("Mul", ["c", "sixth"], ["h"]), node("Mul", ["x", "h"], ["y"])]
    else:
        tail = [node("Mul", ["c", "x"], ["m"]), node("Mul", ["m", "sixth"], ["y"])]
    model = make_model(
        [*clipped, *tail],
        X,
        Y,
        [const("three", 3.0), const("zero", 0.0), const("six", 6.0), const("sixth", np.float32(1 / 6))],
        opset=17,
    )
    check_rewrite(model, "recognize-patterns", {"HardSwish": 1})


def test_the_o3_pipeline_still_recognizes_hardswish_after_div_to_mul() -> None:
    model = _relu6_hardswish()
    check_rewrite(model, list(LEVELS[3]), {"HardSwish": 1})


@pytest.mark.parametrize("case", ["default hardsigmoid", "opset 13"])
def test_recognize_hardswish_negative_variants(case: str) -> None:
    attrs = {} if case == "default hardsigmoid" else {"alpha": 1 / 6, "beta": 0.5}
    model = make_model(
        [node("HardSigmoid", ["x"], ["h"], **attrs), node("Mul", ["x", "h"], ["y"])],
        X,
        Y,
        opset=13 if case == "opset 13" else 17,
    )
    check_unchanged(model, "recognize-patterns")


def test_recognize_swish_only_at_opset_24() -> None:
    def build(opset: int) -> onnx.ModelProto:
        return make_model([node("Sigmoid", ["x"], ["s"]), node("Mul", ["x", "s"], ["y"])], X, Y, opset=opset, ir_version=10)

    check_rewrite(build(24), "recognize-patterns", {"Swish": 1})
    check_unchanged(build(20), "recognize-patterns")


@pytest.mark.parametrize(("first", "second", "lo", "hi"), [("Min", "Max", 0.0, 6.0), ("Max", "Min", -1.0, 1.0)])
def test_recognize_min_max_as_clip(first: str, second: str, lo: float, hi: float) -> None:
    a, b = ("hi", "lo") if first == "Min" else ("lo", "hi")
    model = make_model(
        [node(first, ["x", a], ["m"]), node(second, ["m", b], ["y"])],
        X,
        Y,
        [const("lo", lo), const("hi", hi)],
    )
    check_rewrite(model, "recognize-patterns", {"Clip": 1})


def test_recognize_successive_mins_merge() -> None:
    model = make_model(
        [node("Min", ["x", "a"], ["m"]), node("Min", ["m", "b"], ["y"])],
        X,
        Y,
        [const("a", rand((8,), 1)), const("b", 0.2)],
    )
    check_rewrite(model, "recognize-patterns", {"Min": 1})


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        (("Clip", -1.0, 2.0), ("Clip", 0.5, 5.0), {"Clip": 1}),
        (("Relu",), ("Clip", -2.0, 3.0), {"Clip": 1}),
        (("Clip", -2.0, 3.0), ("Relu",), {"Clip": 1}),
        (("Relu",), ("Relu",), {"Relu": 1}),
    ],
    ids=["clip-clip", "relu-clip", "clip-relu", "relu-relu"],
)
def test_recognize_clip_relu_chains(first: tuple, second: tuple, expected: dict[str, int]) -> None:
    nodes, inits = [], []
    for index, (spec, source, out) in enumerate(((first, "x", "m"), (second, "m", "y"))):
        if spec[0] == "Clip":
            nodes.append(node("Clip", [source, f"lo{index}", f"hi{index}"], [out]))
            inits += [const(f"lo{index}", spec[1]), const(f"hi{index}", spec[2])]
        else:
            nodes.append(node("Relu", [source], [out]))
    check_rewrite(make_model(nodes, X, Y, inits), "recognize-patterns", expected)


@pytest.mark.parametrize(
    ("first", "second"),
    [(("Clip", 0.0, 1.0), ("Clip", 2.0, 3.0)), (("Clip", -3.0, -1.0), ("Relu",))],
    ids=["disjoint clips (result 2)", "relu of a negative clip (result 0)"],
)
def test_recognize_clip_chains_with_crossing_bounds_are_kept(first: tuple, second: tuple) -> None:
    # merging the bounds would give Clip(x, lo, hi) with lo > hi, which onnxruntime evaluates to hi
    nodes, inits = [], []
    for index, (spec, source, out) in enumerate(((first, "x", "m"), (second, "m", "y"))):
        if spec[0] == "Clip":
            nodes.append(node("Clip", [source, f"lo{index}", f"hi{index}"], [out]))
            inits += [const(f"lo{index}", spec[1]), const(f"hi{index}", spec[2])]
        else:
            nodes.append(node("Relu", [source], [out]))
    check_unchanged(make_model(nodes, X, Y, inits), "recognize-patterns")


@pytest.mark.parametrize("case", ["non-constant bound", "tensor bounds", "crossed bounds"])
def test_recognize_min_max_negative_variants(case: str) -> None:
    inputs = list(X)
    inits = [const("lo", 0.0), const("hi", 6.0)]
    nodes = [node("Min", ["x", "hi"], ["m"]), node("Max", ["m", "lo"], ["y"])]
    if case == "non-constant bound":
        inputs.append(("hi", []))
        inits = [const("lo", 0.0)]
    elif case == "tensor bounds":  # Clip takes scalars only
        inits = [const("lo", rand((8,), 1, -1.0, 0.0)), const("hi", rand((8,), 2, 0.0, 1.0))]
    else:  # Max(Min(x, 0), 6) is 6 everywhere; Clip(x, 6, 0) is not
        inits = [const("lo", 6.0), const("hi", 0.0)]
    model = make_model(nodes, inputs, Y, inits)
    check_unchanged(model, "recognize-patterns", shapes={"hi": []})


# --- annotate-activations -----------------------------------------------------------------------------------------

CONV_IN = [("x", [1, 3, 6, 6])]
CONV_OUT = [("y", [1, 4, 6, 6])]


def _conv_act(
    act: str, act_inputs: list[str] | None = None, inits: list[onnx.TensorProto] = (), **attrs: object
) -> onnx.ModelProto:
    return make_model(
        [node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), node(act, ["c", *(act_inputs or [])], ["y"], **attrs)],
        CONV_IN,
        CONV_OUT,
        [const("w", rand((4, 3, 3, 3))), const("b", rand((4,), 2)), *inits],
    )


def _annotations(model: onnx.ModelProto) -> dict[str, dict[str, str]]:
    return {n.name: {p.key: p.value for p in n.metadata_props} for n in model.graph.node if n.metadata_props}


@pytest.mark.parametrize(
    ("act", "extra", "inits", "attrs", "expected"),
    [
        ("Relu", None, [], {}, {}),
        ("LeakyRelu", None, [], {"alpha": 0.2}, {"alpha": 0.2}),
        ("HardSigmoid", None, [], {"alpha": 0.25, "beta": 0.4}, {"alpha": 0.25, "beta": 0.4}),
        ("Clip", ["lo", "hi"], [const("lo", 0.0), const("hi", 6.0)], {}, {"bounds": [0.0, 6.0]}),
    ],
)
def test_annotate_conv_activation(act: str, extra: list[str] | None, inits: list, attrs: dict, expected: dict) -> None:
    model = _conv_act(act, extra, inits, **attrs)
    result = check_rewrite(model, "annotate-activations", ops(model))
    assert result.ir_version >= 10
    notes = _annotations(result)
    conv = next(n for n in result.graph.node if n.op_type == "Conv")
    activation = next(n for n in result.graph.node if n.op_type == act)
    fused = json.loads(notes[conv.name]["edgecc.fused_activation"])
    assert fused["op_type"] == act
    for key, value in expected.items():
        assert fused["attributes"][key] == pytest.approx(value)
    assert notes[activation.name]["edgecc.fused_into"] == conv.name


def test_annotate_gemm_activation_and_unnamed_nodes() -> None:
    model = make_model(
        [helper.make_node("Gemm", ["x", "w"], ["g"]), helper.make_node("Relu", ["g"], ["y"])],
        [("x", [3, 6])],
        [("y", [3, 4])],
        [const("w", rand((6, 4)))],
    )
    result = check_rewrite(model, "annotate-activations", ops(model))
    gemm = next(n for n in result.graph.node if n.op_type == "Gemm")
    relu = next(n for n in result.graph.node if n.op_type == "Relu")
    assert "edgecc.fused_activation" in {p.key for p in gemm.metadata_props}
    fused_into = {p.key: p.value for p in relu.metadata_props}["edgecc.fused_into"]
    assert fused_into and fused_into == gemm.name, "the annotation must name the node the activation fuses into"


@pytest.mark.parametrize(
    "case",
    [
        "conv output used twice",
        "conv output is a graph output",
        "clip with run-time bound",
        "matmul producer",
        "non-fusable activation",
    ],
)
def test_annotate_activations_negative_variants(case: str) -> None:
    w = const("w", rand((4, 3, 3, 3)))
    if case == "conv output used twice":
        model = make_model(
            [node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), node("Relu", ["c"], ["y"]), node("Sigmoid", ["c"], ["s"])],
            CONV_IN,
            [*CONV_OUT, ("s", [1, 4, 6, 6])],
            [w],
        )
    elif case == "conv output is a graph output":  # fusing would lose the pre-activation output
        model = make_model(
            [node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), node("Relu", ["c"], ["y"])],
            CONV_IN,
            [*CONV_OUT, ("c", [1, 4, 6, 6])],
            [w],
        )
    elif case == "clip with run-time bound":
        model = make_model(
            [node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), node("Clip", ["c", "lo", "hi"], ["y"])],
            [*CONV_IN, ("hi", [])],
            CONV_OUT,
            [w, const("lo", 0.0)],
        )
    elif case == "matmul producer":
        model = make_model(
            [node("MatMul", ["x", "m"], ["c"]), node("Relu", ["c"], ["y"])],
            [("x", [3, 6])],
            [("y", [3, 4])],
            [const("m", rand((6, 4)))],
        )
    else:
        model = make_model(
            [node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), node("Sigmoid", ["c"], ["y"])], CONV_IN, CONV_OUT, [w]
        )
    result = check_unchanged(model, "annotate-activations", shapes={"hi": []})
    assert _annotations(result) == {}
    assert result.ir_version == model.ir_version


def test_annotate_activations_is_idempotent() -> None:
    model = _conv_act("Relu")
    result, report = optimize(model, ["annotate-activations"], max_iterations=4)
    assert report.passes[0].rewrites == 1
    assert report.reached_fixed_point
    again, report2 = optimize(result, ["annotate-activations"])
    assert report2.passes[0].rewrites == 0
    assert _annotations(again) == _annotations(result)
    feeds = feeds_for(model)
    np.testing.assert_array_equal(ort_run(again, feeds)[0], ort_run(model, feeds)[0])
