"""Fusion passes: fold-batchnorm, fold-affine, matmul-add-to-gemm, fold-pad."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from tests.passes.helpers import assert_same_outputs, check_rewrite, check_unchanged, const, make_model, node, ops, optimize, rand


def _bn_params(prefix: str, channels: int, seed: int = 1) -> list[onnx.TensorProto]:
    rng = np.random.default_rng(seed)
    return [
        const(f"{prefix}.scale", rng.uniform(0.5, 1.5, channels)),
        const(f"{prefix}.bias", rng.uniform(-1, 1, channels)),
        const(f"{prefix}.mean", rng.uniform(-1, 1, channels)),
        const(f"{prefix}.var", rng.uniform(0.1, 2.0, channels)),
    ]


def _bn(source: str, out: str, prefix: str = "bn", epsilon: float = 1e-5) -> onnx.NodeProto:
    return node(
        "BatchNormalization",
        [source, f"{prefix}.scale", f"{prefix}.bias", f"{prefix}.mean", f"{prefix}.var"],
        [out],
        epsilon=epsilon,
    )


# --- fold-batchnorm -----------------------------------------------------------------------------------------------


def test_fold_batchnorm_into_conv() -> None:
    model = make_model(
        [node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), _bn("c", "y", epsilon=1e-3)],
        [("x", ["N", 3, 8, 8])],
        [("y", ["N", 4, 8, 8])],
        [const("w", rand((4, 3, 3, 3))), const("b", rand((4,), 2)), *_bn_params("bn", 4)],
    )
    check_rewrite(model, "fold-batchnorm", {"Conv": 1})


def test_fold_batchnorm_into_depthwise_conv_without_bias() -> None:
    model = make_model(
        [node("Conv", ["x", "w"], ["c"], group=4, pads=[1, 1, 1, 1]), _bn("c", "y")],
        [("x", [2, 4, 6, 6])],
        [("y", [2, 4, 6, 6])],
        [const("w", rand((4, 1, 3, 3))), *_bn_params("bn", 4)],
    )
    check_rewrite(model, "fold-batchnorm", {"Conv": 1})


@pytest.mark.parametrize("group", [1, 2])
def test_fold_batchnorm_into_conv_transpose(group: int) -> None:
    # weight [C_in, C_out / group, kH, kW]; output channels = 3 * group
    model = make_model(
        [node("ConvTranspose", ["x", "w", "b"], ["c"], strides=[2, 2], group=group), _bn("c", "y")],
        [("x", [1, 4, 5, 5])],
        [("y", [1, 3 * group, 11, 11])],
        [const("w", rand((4, 3, 3, 3))), const("b", rand((3 * group,), 3)), *_bn_params("bn", 3 * group)],
    )
    check_rewrite(model, "fold-batchnorm", {"ConvTranspose": 1})


@pytest.mark.parametrize(
    ("attrs", "bias_shape"),
    [
        ({}, (4,)),
        ({"transB": 1}, (4,)),
        ({"transA": 1}, (4,)),
        ({"alpha": 2.0, "beta": 0.5}, (4,)),
        ({}, None),
        ({}, (1,)),
        ({}, (3, 1)),
        ({}, (3, 4)),
    ],
    ids=["plain", "transB", "transA", "alpha-beta", "no bias", "scalar bias", "row bias", "full bias"],
)
def test_fold_batchnorm_into_gemm(attrs: dict[str, object], bias_shape: tuple[int, ...] | None) -> None:
    w = rand((4, 6)) if attrs.get("transB") else rand((6, 4))
    x_shape = [6, 3] if attrs.get("transA") else [3, 6]
    inputs = ["x", "w", "b"] if bias_shape else ["x", "w"]
    model = make_model(
        [node("Gemm", inputs, ["g"], **attrs), _bn("g", "y")],
        [("x", x_shape)],
        [("y", [3, 4])],
        [const("w", w), *([const("b", rand(bias_shape, 5))] if bias_shape else []), *_bn_params("bn", 4)],
    )
    check_rewrite(model, "fold-batchnorm", {"Gemm": 1})


def test_fold_batchnorm_with_parameters_shared_by_two_batchnorms() -> None:
    model = make_model(
        [node("Conv", ["x", "w"], ["c"]), _bn("c", "y"), _bn("z", "y2")],
        [("x", [1, 3, 6, 6]), ("z", [1, 4, 2, 2])],
        [("y", [1, 4, 4, 4]), ("y2", [1, 4, 2, 2])],
        [const("w", rand((4, 3, 3, 3))), *_bn_params("bn", 4)],
    )
    check_rewrite(model, "fold-batchnorm", {"BatchNormalization": 1, "Conv": 1})


def test_fold_batchnorm_into_matmul() -> None:
    model = make_model(
        [node("MatMul", ["x", "w"], ["m"]), _bn("m", "y")],
        [("x", [3, 6])],
        [("y", [3, 4])],
        [const("w", rand((6, 4))), *_bn_params("bn", 4)],
    )
    check_rewrite(model, "fold-batchnorm", {"MatMul": 1, "Add": 1})


def _conv_bn() -> tuple[list[onnx.NodeProto], list, list, list[onnx.TensorProto]]:
    nodes = [node("Conv", ["x", "w", "b"], ["c"]), _bn("c", "y")]
    inputs = [("x", [1, 3, 6, 6])]
    outputs = [("y", [1, 4, 4, 4])]
    inits = [const("w", rand((4, 3, 3, 3))), const("b", rand((4,), 2)), *_bn_params("bn", 4)]
    return nodes, inputs, outputs, inits


def test_fold_batchnorm_keeps_bn_whose_input_has_two_consumers() -> None:
    nodes, inputs, outputs, inits = _conv_bn()
    nodes.append(node("Relu", ["c"], ["r"]))
    model = make_model(nodes, inputs, [*outputs, ("r", [1, 4, 4, 4])], inits)
    check_unchanged(model, "fold-batchnorm")


def test_fold_batchnorm_keeps_bn_whose_input_is_a_graph_output() -> None:
    nodes, inputs, outputs, inits = _conv_bn()
    model = make_model(nodes, inputs, [*outputs, ("c", [1, 4, 4, 4])], inits)
    check_unchanged(model, "fold-batchnorm")


def test_fold_batchnorm_keeps_conv_with_non_constant_weight() -> None:
    nodes, inputs, outputs, inits = _conv_bn()
    model = make_model(nodes, [*inputs, ("w", [4, 3, 3, 3])], outputs, [i for i in inits if i.name != "w"])
    check_unchanged(model, "fold-batchnorm")


def test_fold_batchnorm_keeps_bn_with_non_constant_statistics() -> None:
    nodes, inputs, outputs, inits = _conv_bn()
    model = make_model(nodes, [*inputs, ("bn.var", [4])], outputs, [i for i in inits if i.name != "bn.var"])
    check_unchanged(model, "fold-batchnorm", shapes={"bn.var": [4]})


def test_fold_batchnorm_keeps_initializer_that_is_also_a_graph_input() -> None:
    # IR < 4 style: the weight is an initializer listed as a graph input, so a caller may override it
    nodes, inputs, outputs, inits = _conv_bn()
    model = make_model(nodes, [*inputs, ("w", [4, 3, 3, 3])], outputs, inits, ir_version=8)
    result, _ = optimize(model, ["fold-batchnorm"])
    assert ops(result) == ops(model)
    assert "w" in [i.name for i in result.graph.input]


def test_fold_batchnorm_keeps_3d_matmul() -> None:
    # BatchNormalization normalises axis 1 (3 here), not the MatMul's last axis (4)
    model = make_model(
        [node("MatMul", ["x", "w"], ["m"]), _bn("m", "y")],
        [("x", [2, 3, 6])],
        [("y", [2, 3, 4])],
        [const("w", rand((6, 4))), *_bn_params("bn", 3)],
    )
    check_unchanged(model, "fold-batchnorm")


def test_fold_batchnorm_with_weight_shared_by_two_convs_keeps_numerics() -> None:
    model = make_model(
        [node("Conv", ["x", "w"], ["c1"]), _bn("c1", "y1"), node("Conv", ["x", "w"], ["y2"])],
        [("x", [1, 3, 6, 6])],
        [("y1", [1, 4, 4, 4]), ("y2", [1, 4, 4, 4])],
        [const("w", rand((4, 3, 3, 3))), *_bn_params("bn", 4)],
    )
    result, _ = optimize(model, ["fold-batchnorm"])
    assert ops(result)["Conv"] == 2
    assert_same_outputs(model, result)


# --- fold-affine --------------------------------------------------------------------------------------------------


def _conv(bias: bool = True, **attrs: object) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    inputs = ["x", "w", "b"] if bias else ["x", "w"]
    inits = [const("w", rand((4, 3, 3, 3))), *([const("b", rand((4,), 2))] if bias else [])]
    return [node("Conv", inputs, ["c"], pads=[1, 1, 1, 1], **attrs)], inits


X_CONV = [("x", [2, 3, 5, 5])]
Y_CONV = [("y", [2, 4, 5, 5])]


@pytest.mark.parametrize("shape", [(1, 4, 1, 1), (4, 1, 1), (1,), ()])
def test_fold_affine_mul_into_conv(shape: tuple[int, ...]) -> None:
    nodes, inits = _conv()
    k = const("k", np.random.default_rng(3).uniform(0.5, 2.0, int(np.prod(shape))).reshape(shape))
    model = make_model([*nodes, node("Mul", ["c", "k"], ["y"])], X_CONV, Y_CONV, [*inits, k])
    check_rewrite(model, "fold-affine", {"Conv": 1})


def test_fold_affine_add_then_mul_into_conv_without_bias_commuted() -> None:
    nodes, inits = _conv(bias=False)
    model = make_model(
        [*nodes, node("Add", ["k1", "c"], ["a"]), node("Mul", ["a", "k2"], ["y"])],
        X_CONV,
        Y_CONV,
        [*inits, const("k1", rand((1, 4, 1, 1), 4)), const("k2", rand((4, 1, 1), 5, 0.5, 2.0))],
    )
    check_rewrite(model, "fold-affine", {"Conv": 1})


@pytest.mark.parametrize(("trans_b", "beta"), [(0, 1.0), (1, 0.5)])
def test_fold_affine_into_gemm(trans_b: int, beta: float) -> None:
    w = rand((4, 6)) if trans_b else rand((6, 4))
    model = make_model(
        [
            node("Gemm", ["x", "w", "b"], ["g"], transB=trans_b, beta=beta),
            node("Mul", ["g", "k"], ["m"]),
            node("Add", ["m", "k2"], ["y"]),
        ],
        [("x", [3, 6])],
        [("y", [3, 4])],
        [const("w", w), const("b", rand((4,), 5)), const("k", rand((4,), 6, 0.5, 2.0)), const("k2", rand((1, 4), 7))],
    )
    check_rewrite(model, "fold-affine", {"Gemm": 1})


def test_fold_affine_keeps_gemm_with_row_bias() -> None:
    # C of shape [M, 1] adds one value per row; with M == N it must not be mistaken for a per-column bias
    model = make_model(
        [node("Gemm", ["x", "w", "b"], ["g"]), node("Add", ["g", "k"], ["y"])],
        [("x", [4, 6])],
        [("y", [4, 4])],
        [const("w", rand((6, 4))), const("b", rand((4, 1), 5)), const("k", rand((4,), 6))],
    )
    result, _ = optimize(model, ["fold-affine"])
    assert_same_outputs(model, result)


@pytest.mark.parametrize(
    "case",
    ["spatial constant", "per-width constant", "non-constant factor", "shared product", "shared weight", "product is an output"],
)
def test_fold_affine_negative_variants(case: str) -> None:
    nodes, inits = _conv()
    inputs, outputs = list(X_CONV), list(Y_CONV)
    k = const("k", rand((1, 4, 1, 1), 3, 0.5, 2.0))
    if case == "spatial constant":
        k = const("k", rand((1, 1, 5, 5), 3, 0.5, 2.0))
    elif case == "per-width constant":  # [5] broadcasts along W (5), not channels
        k = const("k", rand((5,), 3, 0.5, 2.0))
    nodes.append(node("Mul", ["c", "k"], ["y"]))
    if case == "non-constant factor":
        inputs.append(("k", [1, 4, 1, 1]))
        k = None
    elif case == "shared product":
        nodes.append(node("Relu", ["c"], ["r"]))
        outputs.append(("r", [2, 4, 5, 5]))
    elif case == "shared weight":
        nodes.append(node("Conv", ["x", "w"], ["r"], pads=[1, 1, 1, 1]))
        outputs.append(("r", [2, 4, 5, 5]))
    elif case == "product is an output":
        outputs.append(("c", [2, 4, 5, 5]))
    model = make_model(nodes, inputs, outputs, [*inits, *([k] if k is not None else [])])
    check_unchanged(model, "fold-affine", shapes={"k": [1, 4, 1, 1]})


@pytest.mark.parametrize("attrs", [{"transA": 1}, {"alpha": 2.0}])
def test_fold_affine_keeps_gemm_with_trans_a_or_alpha(attrs: dict[str, object]) -> None:
    x_shape = [6, 3] if attrs.get("transA") else [3, 6]
    model = make_model(
        [node("Gemm", ["x", "w", "b"], ["g"], **attrs), node("Mul", ["g", "k"], ["y"])],
        [("x", x_shape)],
        [("y", [3, 4])],
        [const("w", rand((6, 4))), const("b", rand((4,), 5)), const("k", rand((4,), 6, 0.5, 2.0))],
    )
    check_unchanged(model, "fold-affine")


# --- matmul-add-to-gemm -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bias_shape", [(4,), (1, 4), (3, 1), (3, 4)])
def test_matmul_add_to_gemm(bias_shape: tuple[int, ...]) -> None:
    model = make_model(
        [node("MatMul", ["x", "w"], ["m"]), node("Add", ["m", "b"], ["y"])],
        [("x", [3, 6])],
        [("y", [3, 4])],
        [const("w", rand((6, 4))), const("b", rand(bias_shape, 2))],
    )
    check_rewrite(model, "matmul-add-to-gemm", {"Gemm": 1})


def test_matmul_add_to_gemm_absorbs_transposes() -> None:
    model = make_model(
        [
            node("Transpose", ["x"], ["xt"], perm=[1, 0]),
            node("Transpose", ["w"], ["wt"], perm=[1, 0]),
            node("MatMul", ["xt", "wt"], ["m"]),
            node("Add", ["m", "b"], ["y"]),
        ],
        [("x", [6, 3]), ("w", [4, 6])],
        [("y", [3, 4])],
        [const("b", rand((4,), 2))],
    )
    check_rewrite(model, "matmul-add-to-gemm", {"Gemm": 1})


@pytest.mark.parametrize("case", ["3-d input", "rank-3 bias", "bias broadcasts the rows up", "1-d input", "product used twice"])
def test_matmul_add_to_gemm_negative_variants(case: str) -> None:
    x_shape, bias_shape, y_shape = [3, 6], (4,), [3, 4]
    extra_nodes, extra_outputs = [], []
    if case == "3-d input":
        x_shape, y_shape = [2, 3, 6], [2, 3, 4]
    elif case == "rank-3 bias":  # the sum is 3-D, Gemm's output is 2-D
        bias_shape, y_shape = (1, 1, 4), [1, 3, 4]
    elif case == "bias broadcasts the rows up":  # [1, 4] + [3, 4]: Gemm's C must broadcast *to* [M, N]
        x_shape, bias_shape, y_shape = [1, 6], (3, 4), [3, 4]
    elif case == "1-d input":
        x_shape, bias_shape, y_shape = [6], (4,), [4]
    elif case == "product used twice":
        extra_nodes, extra_outputs = [node("Relu", ["m"], ["r"])], [("r", [3, 4])]
    model = make_model(
        [node("MatMul", ["x", "w"], ["m"]), node("Add", ["m", "b"], ["y"]), *extra_nodes],
        [("x", x_shape)],
        [("y", y_shape), *extra_outputs],
        [const("w", rand((6, 4))), const("b", rand(bias_shape, 2))],
    )
    check_unchanged(onnx.shape_inference.infer_shapes(model), "matmul-add-to-gemm")


# --- fold-pad -----------------------------------------------------------------------------------------------------


def _pad(pads: list[int], value: float | None = None, mode: str = "constant") -> tuple[onnx.NodeProto, list[onnx.TensorProto]]:
    inputs = ["x", "pads"] + (["value"] if value is not None else [])
    inits = [const("pads", pads, np.int64)] + ([const("value", value)] if value is not None else [])
    return node("Pad", inputs, ["p"], mode=mode), inits


def test_fold_pad_into_conv() -> None:
    pad, inits = _pad([0, 0, 1, 2, 0, 0, 2, 1], 0.0)
    model = make_model(
        [pad, node("Conv", ["p", "w", "b"], ["y"], pads=[1, 0, 0, 1])],
        [("x", [1, 3, 6, 6])],
        [("y", [1, 4, 8, 8])],
        [*inits, const("w", rand((4, 3, 3, 3))), const("b", rand((4,), 2))],
    )
    check_rewrite(onnx.shape_inference.infer_shapes(model), "fold-pad", {"Conv": 1})


def test_fold_pad_into_maxpool_with_minus_infinity() -> None:
    pad, inits = _pad([0, 0, 1, 1, 0, 0, 1, 1], -np.inf)
    model = make_model(
        [pad, node("MaxPool", ["p"], ["y"], kernel_shape=[3, 3], strides=[2, 2])],
        [("x", [1, 2, 7, 7])],
        [("y", [1, 2, 4, 4])],
        inits,
    )
    check_rewrite(onnx.shape_inference.infer_shapes(model), "fold-pad", {"MaxPool": 1})


def test_fold_pad_into_averagepool_counting_padding() -> None:
    pad, inits = _pad([0, 0, 1, 0, 0, 0, 0, 1])
    model = make_model(
        [pad, node("AveragePool", ["p"], ["y"], kernel_shape=[2, 2], count_include_pad=1, pads=[0, 1, 1, 0])],
        [("x", [1, 2, 6, 6])],
        [("y", [1, 2, 7, 7])],
        inits,
    )
    check_rewrite(onnx.shape_inference.infer_shapes(model), "fold-pad", {"AveragePool": 1})


@pytest.mark.parametrize(
    "case",
    [
        "conv reflect",
        "conv non-zero value",
        "conv channel pad",
        "conv negative pad",
        "maxpool zero value",
        "maxpool large finite value",
        "averagepool without count_include_pad",
        "averagepool -inf value",
        "padded tensor used twice",
    ],
)
def test_fold_pad_negative_variants(case: str) -> None:
    x = [("x", [1, 3, 6, 6])]
    value: float | None = 0.0
    pads = [0, 0, 1, 1, 0, 0, 1, 1]
    mode = "constant"
    if case == "conv reflect":
        mode, value = "reflect", None
    elif case == "conv non-zero value":
        value = 1.5
    elif case == "conv channel pad":
        pads = [0, 1, 1, 1, 0, 0, 1, 1]
    elif case == "conv negative pad":
        pads = [0, 0, -1, 1, 0, 0, 1, 1]
    elif case == "maxpool large finite value":
        value = -3.0e38
    elif case == "averagepool -inf value":
        value = -np.inf
    pad, inits = _pad(pads, value, mode)
    consumer_input = "p"
    extra, extra_out = [], []
    if case.startswith("conv") or case == "padded tensor used twice":
        consumer = node("Conv", [consumer_input, "w"], ["y"])
        inits.append(const("w", rand((4, 4 if case == "conv channel pad" else 3, 3, 3))))
        if case == "padded tensor used twice":
            extra, extra_out = [node("Relu", ["p"], ["r"])], [("r", None)]
    elif case.startswith("maxpool"):
        consumer = node("MaxPool", [consumer_input], ["y"], kernel_shape=[2, 2], strides=[2, 2])
    else:
        consumer = node(
            "AveragePool", [consumer_input], ["y"], kernel_shape=[2, 2], count_include_pad=0 if "without" in case else 1
        )
    model = make_model([pad, consumer, *extra], x, [("y", None), *extra_out], inits, check=False)
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model, full_check=True)
    check_unchanged(model, "fold-pad")


@pytest.mark.parametrize("pool", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize(
    ("kernel", "ceil_mode", "pads"),
    [
        # ceil_mode: with an explicit Pad the last window (start 6) is real input; as pool padding it is dropped
        (3, 1, [0, 0, 0, 0, 0, 0, 2, 2]),
        # pool pads must be smaller than the kernel (onnxruntime refuses the model otherwise)
        (2, 0, [0, 0, 2, 2, 0, 0, 0, 0]),
    ],
)
def test_fold_pad_into_pool_keeps_pads_the_pool_cannot_express(pool: str, kernel: int, ceil_mode: int, pads: list[int]) -> None:
    pad, inits = _pad(pads, -np.inf if pool == "MaxPool" else 0.0)
    extra = {"count_include_pad": 1} if pool == "AveragePool" else {}
    model = make_model(
        [pad, node(pool, ["p"], ["y"], kernel_shape=[kernel, kernel], strides=[2, 2], ceil_mode=ceil_mode, **extra)],
        [("x", [1, 3, 6, 6])],
        [("y", None)],
        inits,
        check=False,
    )
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model, full_check=True)
    check_unchanged(model, "fold-pad")


def test_fold_pad_into_pool_with_ceil_mode_and_small_pads() -> None:
    # ceil_mode with pads whose windows all start inside the input folds safely
    pad, inits = _pad([0, 0, 1, 1, 0, 0, 1, 1], -np.inf)
    model = make_model(
        [pad, node("MaxPool", ["p"], ["y"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)],
        [("x", [1, 2, 6, 6])],
        [("y", [1, 2, 4, 4])],
        inits,
    )
    result, _ = optimize(onnx.shape_inference.infer_shapes(model), ["fold-pad"])
    assert_same_outputs(model, result)


def test_fold_pad_into_averagepool_ceil_mode_keeps_numerics() -> None:
    pad, inits = _pad([0, 0, 1, 1, 0, 0, 1, 1])
    model = make_model(
        [pad, node("AveragePool", ["p"], ["y"], kernel_shape=[3, 3], strides=[2, 2], count_include_pad=1, ceil_mode=1)],
        [("x", [1, 2, 6, 6])],
        [("y", [1, 2, 4, 4])],
        inits,
    )
    model = onnx.shape_inference.infer_shapes(model)
    result, _ = optimize(model, ["fold-pad"])
    assert_same_outputs(model, result)


def test_fold_pad_with_axes_input_keeps_numerics() -> None:
    # opset 18 Pad with `axes`: pads only list the spatial axes
    model = make_model(
        [node("Pad", ["x", "pads", "", "axes"], ["p"]), node("Conv", ["p", "w"], ["y"])],
        [("x", [1, 3, 6, 6])],
        [("y", [1, 4, 6, 6])],
        [const("pads", [1, 1, 1, 1], np.int64), const("axes", [2, 3], np.int64), const("w", rand((4, 3, 3, 3)))],
        opset=18,
    )
    model = onnx.shape_inference.infer_shapes(model)
    result, _ = optimize(model, ["fold-pad"])
    assert_same_outputs(model, result)


# --- div-to-mul -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("divisor", [np.float32(6.0), np.linspace(0.5, 2.0, 4, dtype=np.float32).reshape(1, 4, 1, 1)])
def test_div_by_a_float_constant_becomes_mul(divisor: np.ndarray) -> None:
    model = make_model(
        [node("Relu", ["x"], ["r"]), node("Div", ["r", "c"], ["y"])],
        [("x", [1, 4, 5, 5])],
        [("y", [1, 4, 5, 5])],
        [const("c", divisor)],
    )
    check_rewrite(model, "div-to-mul", {"Mul": 1, "Relu": 1})


def test_div_to_mul_then_folds_into_the_conv_before_it() -> None:
    model = make_model(
        [node("Conv", ["x", "w", "b"], ["c"]), node("Div", ["c", "six"], ["y"])],
        [("x", [1, 3, 5, 5])],
        [("y", [1, 4, 5, 5])],
        [const("w", rand((4, 3, 1, 1))), const("b", rand((4,), 1)), const("six", np.float32(6.0))],
    )
    check_rewrite(model, ["div-to-mul", "fold-affine"], {"Conv": 1})


@pytest.mark.parametrize("case", ["zero in divisor", "divisor not constant", "integer division"])
def test_div_to_mul_keeps_divisions_it_cannot_invert(case: str) -> None:
    dtype = np.int64 if case == "integer division" else np.float32
    values = np.array([2.0, 0.0, 1.0, 3.0], dtype=np.float32).reshape(1, 4, 1, 1) if case == "zero in divisor" else 3
    inputs: list = [("x", [1, 4, 5, 5])]
    initializers = [] if case == "divisor not constant" else [const("c", values, dtype=dtype)]
    if case == "divisor not constant":
        inputs.append(("c", [1, 4, 1, 1]))
    if case == "integer division":
        from onnx import TensorProto, helper

        model = make_model(
            [node("Shape", ["x"], ["s"]), node("Div", ["s", "c"], ["y"])],
            inputs,
            [helper.make_tensor_value_info("y", TensorProto.INT64, [4])],
            initializers,
        )
    else:
        model = make_model([node("Div", ["x", "c"], ["y"])], inputs, [("y", [1, 4, 5, 5])], initializers)
    check_unchanged(model, "div-to-mul")


def test_div_to_mul_with_one_divisor_shared_by_several_divs() -> None:
    """Attention scales: one constant divides several tensors (BERT's val_117): each Mul gets a valid reciprocal."""
    model = make_model(
        [node("Div", ["x", "c"], ["a"]), node("Div", ["a", "c"], ["b"]), node("Div", ["b", "c"], ["y"])],
        [("x", [1, 4, 5, 5])],
        [("y", [1, 4, 5, 5])],
        [const("c", np.float32(8.0))],
    )
    result = check_rewrite(model, "div-to-mul", {"Mul": 3})
    initializers = {t.name for t in result.graph.initializer}
    assert all(n.input[1] in initializers for n in result.graph.node)
