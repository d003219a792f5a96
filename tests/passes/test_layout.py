"""Layout passes: optimize-transposes, collapse-reshapes."""

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

NCHW = [("x", [2, 3, 4, 5])]
TO_NHWC = [0, 2, 3, 1]
TO_NCHW = [0, 3, 1, 2]


# --- optimize-transposes ------------------------------------------------------------------------------------------


def test_transposes_sink_through_elementwise_ops_and_cancel() -> None:
    # NCHW -> NHWC, elementwise work with NHWC-shaped constants, back to NCHW: the transposes cancel,
    # the constants are permuted into NCHW
    model = make_model(
        [
            node("Transpose", ["x"], ["t"], perm=TO_NHWC),
            node("Relu", ["t"], ["r"]),
            node("Add", ["r", "bias"], ["a"]),  # [3] broadcasts over the NHWC channel axis
            node("Mul", ["a", "scale"], ["m"]),  # [4, 5, 3]: varies over H, W and C
            node("LeakyRelu", ["m"], ["l"], alpha=0.3),
            node("Sub", ["l", "shift"], ["s"]),  # scalar
            node("Transpose", ["s"], ["y"], perm=TO_NCHW),
        ],
        NCHW,
        [("y", [2, 3, 4, 5])],
        [const("bias", rand((3,), 1)), const("scale", rand((4, 5, 3), 2)), const("shift", 0.25)],
    )
    result = check_rewrite(
        model, "optimize-transposes", {"Add": 1, "LeakyRelu": 1, "Mul": 1, "Relu": 1, "Sub": 1}, ignore=("Identity",)
    )
    # the NHWC constants now broadcast in NCHW: [3] -> [1, 3, 1, 1], [4, 5, 3] -> [1, 3, 4, 5]
    dims = sorted(tuple(t.dims) for t in result.graph.initializer if np.prod(t.dims) > 1)
    assert dims == [(1, 3, 1, 1), (1, 3, 4, 5)]


def test_transposes_cancel_around_one_elementwise_op() -> None:
    model = make_model(
        [
            node("Transpose", ["x"], ["t"], perm=TO_NHWC),
            node("Add", ["t", "bias"], ["a"]),
            node("Transpose", ["a"], ["y"], perm=TO_NCHW),
        ],
        NCHW,
        [("y", [2, 3, 4, 5])],
        [const("bias", rand((3,), 1))],
    )
    result = check_rewrite(model, "optimize-transposes", {"Add": 1}, ignore=("Identity",))
    assert [tuple(t.dims) for t in result.graph.initializer] == [(1, 3, 1, 1)]


def test_transposes_merge_transposed_operands_and_cancel() -> None:
    model = make_model(
        [
            node("Transpose", ["a"], ["ta"], perm=TO_NHWC),
            node("Transpose", ["b"], ["tb"], perm=TO_NHWC),
            node("Add", ["ta", "tb"], ["s"]),
            node("Sigmoid", ["s"], ["g"]),
            node("Transpose", ["g"], ["y"], perm=TO_NCHW),
        ],
        [("a", [2, 3, 4, 5]), ("b", [2, 3, 4, 5])],
        [("y", [2, 3, 4, 5])],
    )
    check_rewrite(model, "optimize-transposes", {"Add": 1, "Sigmoid": 1}, ignore=("Identity",))


def test_transposes_cancel_back_to_back() -> None:
    model = make_model(
        [
            node("Transpose", ["x"], ["t1"], perm=TO_NHWC),
            node("Transpose", ["t1"], ["t2"], perm=TO_NCHW),
            node("Transpose", ["t2"], ["t3"], perm=[0, 1, 2, 3]),  # identity permutation
            node("Transpose", ["t3"], ["t4"], perm=[1, 0, 2, 3]),
            node("Transpose", ["t4"], ["t5"], perm=[0, 1, 3, 2]),  # merges with the one before
            node("Exp", ["t5"], ["y"]),
        ],
        NCHW,
        [("y", [3, 2, 5, 4])],
    )
    check_rewrite(model, "optimize-transposes", {"Exp": 1, "Transpose": 1}, ignore=("Identity",))


def test_transposes_without_perm_cancel() -> None:
    # Transpose without `perm` reverses the axes; two of them are the identity
    model = make_model(
        [node("Transpose", ["x"], ["t1"]), node("Transpose", ["t1"], ["t2"]), node("Exp", ["t2"], ["y"])],
        NCHW,
        [("y", [2, 3, 4, 5])],
    )
    check_rewrite(model, "optimize-transposes", {"Exp": 1}, ignore=("Identity",))


@pytest.mark.parametrize(
    "case",
    [
        "nothing to cancel",
        "transpose shared",
        "non-elementwise op between",
        "non-constant operand",
        "constant broadcasts rank up",
    ],
)
def test_transposes_negative_variants(case: str) -> None:
    inputs, outputs, inits = list(NCHW), [("y", [2, 3, 4, 5])], []
    middle = [node("Relu", ["t"], ["r"])]
    if case == "nothing to cancel":
        # a lone transpose before an elementwise op: sinking gains nothing, so nothing may move
        nodes = [node("Transpose", ["x"], ["t"], perm=TO_NHWC), node("Relu", ["t"], ["y"])]
        outputs = [("y", [2, 4, 5, 3])]
    elif case == "transpose shared":
        nodes = [node("Transpose", ["x"], ["t"], perm=TO_NHWC), *middle, node("Transpose", ["r"], ["y"], perm=TO_NCHW)]
        outputs.append(("t", [2, 4, 5, 3]))
    elif case == "non-elementwise op between":
        nodes = [
            node("Transpose", ["x"], ["t"], perm=TO_NHWC),
            node("Softmax", ["t"], ["r"], axis=-1),  # softmax over the last axis: C in NHWC, W in NCHW
            node("Transpose", ["r"], ["y"], perm=TO_NCHW),
        ]
    elif case == "non-constant operand":
        nodes = [
            node("Transpose", ["x"], ["t"], perm=TO_NHWC),
            node("Add", ["t", "z"], ["r"]),
            node("Transpose", ["r"], ["y"], perm=TO_NCHW),
        ]
        inputs.append(("z", [3]))
    else:  # a [1, 2, 4, 5, 3] constant makes the sum 5-D: the permutation no longer applies
        nodes = [
            node("Transpose", ["x"], ["t"], perm=TO_NHWC),
            node("Mul", ["t", "k"], ["r"]),
            node("Transpose", ["r"], ["y"], perm=[0, 1, 4, 2, 3]),
        ]
        inits = [const("k", rand((1, 2, 4, 5, 3), 3))]
        outputs = [("y", [1, 2, 3, 4, 5])]
    model = make_model(nodes, inputs, outputs, inits)
    check_unchanged(model, "optimize-transposes", shapes={"z": [3]})


def test_transposes_sub_with_constant_first_keeps_order() -> None:
    # c - Transpose(x): operand order matters for Sub/Div
    model = make_model(
        [
            node("Transpose", ["x"], ["t"], perm=TO_NHWC),
            node("Sub", ["c", "t"], ["s"]),
            node("Div", ["s", "d"], ["q"]),
            node("Transpose", ["q"], ["y"], perm=TO_NCHW),
        ],
        NCHW,
        [("y", [2, 3, 4, 5])],
        [const("c", rand((5, 3), 1)), const("d", rand((3,), 2, 1.0, 2.0))],
    )
    result, _ = optimize(model, ["optimize-transposes"])
    assert_same_outputs(model, result)


# --- collapse-reshapes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("producer", ["Flatten", "Reshape", "Squeeze", "Unsqueeze"])
def test_collapse_reshape_chains(producer: str) -> None:
    x_shape = [2, 1, 12, 5] if producer == "Squeeze" else [2, 3, 4, 5]
    first = {
        "Flatten": node("Flatten", ["x"], ["i"], axis=2),
        "Reshape": node("Reshape", ["x", "s1"], ["i"]),
        "Squeeze": node("Squeeze", ["x", "axes"], ["i"]),
        "Unsqueeze": node("Unsqueeze", ["x", "axes"], ["i"]),
    }[producer]
    model = make_model(
        [first, node("Reshape", ["i", "s2"], ["y"])],
        [("x", x_shape)],
        [("y", [10, 12])],
        [const("s1", [6, -1], np.int64), const("axes", [1], np.int64), const("s2", [10, -1], np.int64)],
    )
    check_rewrite(model, "collapse-reshapes", {"Reshape": 1})


def test_collapse_unsqueeze_chain() -> None:
    model = make_model(
        [node("Unsqueeze", ["x", "a1"], ["u"]), node("Unsqueeze", ["u", "a2"], ["y"])],
        [("x", [3, 4])],
        [("y", [1, 3, 1, 4])],
        [const("a1", [0], np.int64), const("a2", [2], np.int64)],
    )
    check_rewrite(model, "collapse-reshapes", {"Unsqueeze": 1}, ignore=("Constant",))


@pytest.mark.parametrize(
    "case", ["zero copies a dim", "intermediate used twice", "shape not constant", "intermediate is an output"]
)
def test_collapse_reshapes_negative_variants(case: str) -> None:
    nodes = [node("Flatten", ["x"], ["i"], axis=1), node("Reshape", ["i", "s"], ["y"])]
    inputs, outputs = [("x", [2, 3, 4, 5])], [("y", [2, 6, 10])]
    inits = [const("s", [0, 6, -1], np.int64)]  # 0: copy dim 0 of the *flattened* tensor
    if case != "zero copies a dim":
        inits = [const("s", [2, 6, -1], np.int64)]
    if case == "intermediate used twice":
        nodes.append(node("Relu", ["i"], ["r"]))
        outputs.append(("r", [2, 60]))
    elif case == "shape not constant":
        inputs.append(helper.make_tensor_value_info("s", TensorProto.INT64, [3]))
        inits = []
    elif case == "intermediate is an output":
        outputs.append(("i", [2, 60]))
    model = make_model(nodes, inputs, outputs, inits)
    if case == "shape not constant":
        result, _ = optimize(model, ["collapse-reshapes"])
        assert ops(result) == ops(model)
        feeds = {"x": rand((2, 3, 4, 5)), "s": np.array([2, 6, -1], np.int64)}
        np.testing.assert_array_equal(ort_run(result, feeds)[0], ort_run(model, feeds)[0])
        return
    check_unchanged(model, "collapse-reshapes")


def test_collapse_reshape_with_zero_in_first_shape_keeps_numerics() -> None:
    # Reshape(Reshape(x, [0, -1]), [6, -1]): the first 0 is resolved against x; the collapse must keep the values
    model = make_model(
        [node("Reshape", ["x", "s1"], ["i"]), node("Reshape", ["i", "s2"], ["y"])],
        [("x", [2, 3, 4, 5])],
        [("y", [6, 20])],
        [const("s1", [0, -1], np.int64), const("s2", [6, -1], np.int64)],
    )
    result, _ = optimize(model, ["collapse-reshapes"])
    assert ops(result) == {"Reshape": 1}
    assert_same_outputs(model, result)


# --- merge-slices -------------------------------------------------------------------------------------------------


def _slices(p1: dict[str, list[int]], p2: dict[str, list[int]], dtype2: type = np.int64, extra: bool = False) -> onnx.ModelProto:
    inits = []
    for tag, params, dtype in (("1", p1, np.int64), ("2", p2, dtype2)):
        inits += [const(f"{k}{tag}", params[k], dtype) for k in ("starts", "ends", "axes", "steps")]
    nodes = [
        node("Slice", ["x", "starts1", "ends1", "axes1", "steps1"], ["s"]),
        node("Slice", ["s", "starts2", "ends2", "axes2", "steps2"], ["y"]),
    ]
    outputs = [("y", None)]
    if extra:
        nodes.append(node("Neg", ["s"], ["n"]))
        outputs.append(("n", None))
    model = make_model(nodes, [("x", [4, 6, 8, 10])], outputs, inits, check=False)
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.mark.parametrize(
    ("p1", "p2"),
    [
        ({"starts": [1], "ends": [5], "axes": [1], "steps": [1]}, {"starts": [2], "ends": [7], "axes": [2], "steps": [2]}),
        # negative axes, negative steps, out-of-range ends
        (
            {"starts": [-1, 0], "ends": [-100, 3], "axes": [-1, 0], "steps": [-2, 1]},
            {"starts": [5], "ends": [1], "axes": [1], "steps": [-1]},
        ),
    ],
    ids=["positive", "negative axes and steps"],
)
def test_merge_slices_on_disjoint_axes(p1: dict, p2: dict) -> None:
    check_rewrite(_slices(p1, p2), "merge-slices", {"Slice": 1})


@pytest.mark.parametrize("case", ["same axis", "same axis written negative", "first slice used twice", "parameter dtypes differ"])
def test_merge_slices_negative_variants(case: str) -> None:
    p1 = {"starts": [1], "ends": [5], "axes": [1], "steps": [1]}
    p2 = {"starts": [0], "ends": [3], "axes": [2], "steps": [1]}
    if case == "same axis":
        p2["axes"] = [1]
    elif case == "same axis written negative":
        p2["axes"] = [-3]
    model = _slices(p1, p2, np.int32 if case == "parameter dtypes differ" else np.int64, extra=case == "first slice used twice")
    check_unchanged(model, "merge-slices")
