"""edgecc.opset: opset up/down conversion, edgecc's own opset-18 downgrade adapters, blockers reported at once."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecc.errors import UnsupportedError, UnsupportedOperator, UsageError
from edgecc.onnxutil import default_opset
from edgecc.opset import DOWNGRADE_ADAPTERS, convert_opset, downgrade
from tests.conftest import make_conv_onnx

F = TensorProto.FLOAT
I64 = TensorProto.INT64


def _run(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _assert_same_outputs(original: onnx.ModelProto, converted: onnx.ModelProto, feeds: dict, *, exact: bool = False) -> None:
    expected = _run(original, feeds)
    got = _run(converted, feeds)
    assert len(expected) == len(got)
    for e, g in zip(expected, got):
        assert e.shape == g.shape
        if exact:
            np.testing.assert_array_equal(g, e)
        else:
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def _model(nodes, inputs, outputs, initializers=(), opset: int = 18) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------- up and down on a small CNN


@pytest.mark.parametrize(("source", "target"), [(11, 17), (13, 18), (17, 11), (17, 13), (18, 13)])
def test_convert_opset_up_and_down_keeps_numerics(source, target):
    original = make_conv_onnx(opset=source, seed=source)
    converted = convert_opset(original, target)
    assert default_opset(converted) == target
    assert default_opset(original) == source  # the input is not modified
    onnx.checker.check_model(converted)
    _assert_same_outputs(original, converted, {"x": _rand(2, 3, 16, 16, seed=target)})


def test_convert_opset_same_version_is_identity():
    model = make_conv_onnx()
    assert convert_opset(model, 17) is model


def test_convert_opset_target_out_of_range():
    model = make_conv_onnx()
    with pytest.raises(UsageError):
        convert_opset(model, 5)
    with pytest.raises(UsageError):
        convert_opset(model, onnx.defs.onnx_opset_version() + 1)


# ---------------------------------------------------------------- opset-18 nodes lowered to 17


def _pad18() -> onnx.ModelProto:
    pads = numpy_helper.from_array(np.array([0, 1, 2, 0, 0, 3, 1, 0], np.int64), "pads")
    value = numpy_helper.from_array(np.array(1.5, np.float32), "value")
    return _model(
        [helper.make_node("Pad", ["x", "pads", "value"], ["y"], name="pad", mode="constant")],
        [helper.make_tensor_value_info("x", F, [2, 3, 4, 5])],
        [helper.make_tensor_value_info("y", F, [2, 7, 7, 5])],
        [pads, value],
    )


def _reduce_mean18(keepdims: int = 0) -> onnx.ModelProto:
    axes = numpy_helper.from_array(np.array([1, -1], np.int64), "axes")
    out = [2, 4] if not keepdims else [2, 1, 4, 1]
    return _model(
        [helper.make_node("ReduceMean", ["x", "axes"], ["y"], name="mean", keepdims=keepdims)],
        [helper.make_tensor_value_info("x", F, [2, 3, 4, 5])],
        [helper.make_tensor_value_info("y", F, out)],
        [axes],
    )


def _split18() -> onnx.ModelProto:
    return _model(
        [helper.make_node("Split", ["x"], ["a", "b", "c"], name="split", axis=-2, num_outputs=3)],
        [helper.make_tensor_value_info("x", F, [2, 7, 4])],
        [helper.make_tensor_value_info(n, F, [2, s, 4]) for n, s in zip("abc", (3, 3, 1))],
    )


@pytest.mark.parametrize("make", [_pad18, _reduce_mean18, _split18], ids=["Pad", "ReduceMean", "Split"])
def test_single_opset18_node_to_17(make):
    original = make()
    converted = convert_opset(original, 17)
    assert default_opset(converted) == 17
    onnx.checker.check_model(converted, full_check=True)
    shape = [d.dim_value for d in original.graph.input[0].type.tensor_type.shape.dim]
    _assert_same_outputs(original, converted, {"x": _rand(*shape, seed=4)}, exact=True)


def _mixed18() -> onnx.ModelProto:
    """Pad-18 -> ReduceMean-18 (axes from a Constant node) -> Split-18 (num_outputs) -> ReduceMax-18 (axes initializer)."""
    initializers = [
        numpy_helper.from_array(np.array([0, 0, 1, 2, 0, 0, 2, 0], np.int64), "pads"),
        numpy_helper.from_array(np.array([1], np.int64), "max_axes"),
    ]
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["padded"], name="pad", mode="reflect"),
        helper.make_node("Constant", [], ["mean_axes"], name="mean_axes", value=numpy_helper.from_array(np.array([3], np.int64))),
        helper.make_node("ReduceMean", ["padded", "mean_axes"], ["mean"], name="mean", keepdims=1),
        helper.make_node("Split", ["mean"], ["s0", "s1", "s2"], name="split", axis=2, num_outputs=3),
        helper.make_node("ReduceMax", ["s0", "max_axes"], ["m0"], name="max0", keepdims=0),
        helper.make_node("ReduceSum", ["s2"], ["sum2"], name="sum2", keepdims=1),
        helper.make_node("ReduceL2", ["s1"], ["l2"], name="l2all", keepdims=0),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", F, [2, 3, 5, 6])],
        [
            helper.make_tensor_value_info("m0", F, [2, 3, 1]),
            helper.make_tensor_value_info("s1", F, [2, 3, 3, 1]),
            helper.make_tensor_value_info("sum2", F, [1, 1, 1, 1]),
            helper.make_tensor_value_info("l2", F, []),
        ],
        initializers,
    )


def test_onnx_converter_alone_cannot_lower_the_mixed_model():
    """The premise of the adapter tests: onnx's own converter has no 18 -> 17 adapter for Pad/Split."""
    with pytest.raises(RuntimeError):  # onnx's C++ adapter lookup: "No Adapter To Version $17 for Pad"
        onnx.checker.check_model(onnx.version_converter.convert_version(_mixed18(), 17))


def test_mixed_opset18_model_to_17_with_edgecc_adapters():
    original = _mixed18()
    converted = convert_opset(original, 17)
    assert default_opset(converted) == 17
    onnx.checker.check_model(converted, full_check=True)
    by_name = {n.name: n for n in converted.graph.node}
    # Reduce* with an axes input got an axes attribute instead
    mean = by_name["mean"]
    assert list(mean.input) == ["padded"]
    assert helper.get_attribute_value(next(a for a in mean.attribute if a.name == "axes")) == [3]
    assert list(by_name["max0"].input) == ["s0"]
    # Split with num_outputs got explicit sizes: 1 + 5 + 2 = 8 split 3 ways -> 3, 3, 2
    split = by_name["split"]
    assert not any(a.name == "num_outputs" for a in split.attribute)
    sizes = {t.name: numpy_helper.to_array(t) for t in converted.graph.initializer}[split.input[1]]
    assert sizes.tolist() == [3, 3, 2]
    for seed in range(3):
        _assert_same_outputs(original, converted, {"x": _rand(2, 3, 5, 6, seed=seed)}, exact=True)


def test_downgrade_directly():
    original = _mixed18()
    lowered = downgrade(original, 17)
    assert default_opset(lowered) == 17
    assert default_opset(original) == 18
    assert len(original.graph.node[2].input) == 2  # the original ReduceMean is untouched
    _assert_same_outputs(original, lowered, {"x": _rand(2, 3, 5, 6, seed=9)}, exact=True)


def test_reduce_all_axes_with_empty_axes_input():
    original = _model(
        [
            helper.make_node("Pad", ["x", "pads"], ["p"], name="pad"),
            helper.make_node("ReduceMean", ["p", ""], ["y"], name="mean_all", keepdims=0),
        ],
        [helper.make_tensor_value_info("x", F, [2, 3])],
        [helper.make_tensor_value_info("y", F, [])],
        [numpy_helper.from_array(np.array([0, 1, 0, 1], np.int64), "pads")],
    )
    converted = convert_opset(original, 17)
    assert default_opset(converted) == 17
    _assert_same_outputs(original, converted, {"x": _rand(2, 3, seed=2)})


def test_adapters_registered():
    for op in (
        "ReduceMean",
        "ReduceMax",
        "ReduceMin",
        "ReduceProd",
        "ReduceL1",
        "ReduceL2",
        "ReduceSum",
        "Split",
        "BatchNormalization",
    ):
        assert op in DOWNGRADE_ADAPTERS


# ---------------------------------------------------------------- blockers, all reported at once


def _blocked18() -> onnx.ModelProto:
    initializers = [
        numpy_helper.from_array(np.array([1, 1], np.int64), "pads"),
        numpy_helper.from_array(np.array([0], np.int64), "pad_axes"),
    ]
    nodes = [
        # unknown rank: the target shape is a run-time input of unknown length
        helper.make_node("Reshape", ["x", "shape"], ["reshaped"], name="reshape"),
        helper.make_node("Pad", ["reshaped", "pads", "", "pad_axes"], ["padded"], name="pad_with_axes"),
        helper.make_node("Mish", ["x"], ["mish"], name="mish_is_new_in_18"),
        helper.make_node("ReduceMean", ["x", "runtime_axes"], ["mean"], name="mean_runtime_axes"),
        helper.make_node("Split", ["x"], ["s0", "s1"], name="split_dynamic_axis", axis=0, num_outputs=2),
        helper.make_node("Relu", ["x"], ["fine"], name="relu_is_fine"),
    ]
    return _model(
        nodes,
        [
            helper.make_tensor_value_info("x", F, ["n", 4]),
            helper.make_tensor_value_info("shape", I64, ["r"]),
            helper.make_tensor_value_info("runtime_axes", I64, [1]),
        ],
        [
            helper.make_tensor_value_info("padded", F, ["p"]),
            helper.make_tensor_value_info("mish", F, ["n", 4]),
            helper.make_tensor_value_info("mean", F, ["a", "b"]),
            helper.make_tensor_value_info("s0", F, ["c", 4]),
            helper.make_tensor_value_info("s1", F, ["d", 4]),
            helper.make_tensor_value_info("fine", F, ["n", 4]),
        ],
        initializers,
    )


def test_unlowerable_nodes_are_all_reported_at_once():
    with pytest.raises(UnsupportedOperator) as info:
        convert_opset(_blocked18(), 17, path="blocked.onnx")
    error = info.value
    assert error.exit_code == 4
    reported = {(n.node, n.op_type) for n in error.nodes}
    assert reported == {
        ("pad_with_axes", "Pad"),
        ("mish_is_new_in_18", "Mish"),
        ("mean_runtime_axes", "ReduceMean"),
        ("split_dynamic_axis", "Split"),
    }
    line = error.one_line()
    for name in ("pad_with_axes", "mish_is_new_in_18", "mean_runtime_axes", "split_dynamic_axis"):
        assert name in line
    assert "relu_is_fine" not in line and "reshape" not in line
    assert "blocked.onnx" in line
    reasons = {n.node: n.reason for n in error.nodes}
    assert "axes" in reasons["pad_with_axes"]
    assert "17" in reasons["mish_is_new_in_18"]
    assert "run time" in reasons["mean_runtime_axes"]
    assert "not known statically" in reasons["split_dynamic_axis"]
    assert error.to_dict()["nodes"] and len(error.to_dict()["nodes"]) == 4


def test_split_num_outputs_below_opset_13_is_refused():
    model = _model(
        [
            helper.make_node("Pad", ["x", "pads"], ["p"], name="pad"),
            helper.make_node("Split", ["p"], ["a", "b"], name="split", axis=1, num_outputs=2),
        ],
        [helper.make_tensor_value_info("x", F, [2, 2])],
        [helper.make_tensor_value_info("a", F, [2, 2]), helper.make_tensor_value_info("b", F, [2, 2])],
        [numpy_helper.from_array(np.array([0, 1, 0, 1], np.int64), "pads")],
    )
    with pytest.raises(UnsupportedOperator) as info:
        convert_opset(model, 12)
    assert [n.node for n in info.value.nodes] == ["split"]


def test_noop_with_empty_axes_is_refused():
    model = _model(
        [
            helper.make_node("Pad", ["x", "pads"], ["p"], name="pad"),
            helper.make_node("ReduceMax", ["p"], ["y"], name="noop_max", noop_with_empty_axes=1),
        ],
        [helper.make_tensor_value_info("x", F, [2, 2])],
        [helper.make_tensor_value_info("y", F, [2, 4])],
        [numpy_helper.from_array(np.array([0, 1, 0, 1], np.int64), "pads")],
    )
    with pytest.raises(UnsupportedOperator) as info:
        convert_opset(model, 17)
    assert [n.node for n in info.value.nodes] == ["noop_max"]


@pytest.mark.parametrize(
    ("op_type", "attrs"),
    [
        ("Softmax", {"axis": 1}),
        ("Softmax", {}),  # default axis: -1 from opset 13 on, 1 before
        ("LogSoftmax", {"axis": 0}),
        ("Softmax", {"axis": -1}),  # the last axis: both definitions agree
    ],
    ids=["softmax-axis1", "softmax-default-axis", "logsoftmax-axis0", "softmax-last-axis"],
)
def test_downgrade_across_softmax_semantics_change(op_type, attrs):
    """Softmax-13 normalises along `axis` (default -1); Softmax-1/11 flatten to 2-D at `axis` (default 1) first.

    When onnx's converter gives up (here because of Pad-18) and edgecc's fallback lowers the
    whole model to opset 12, such a node must either be rewritten or reported, never kept
    as it is with a different meaning.
    """
    original = _model(
        [
            helper.make_node("Pad", ["x", "pads"], ["p"], name="pad"),
            helper.make_node(op_type, ["p"], ["y"], name="softmax", **attrs),
        ],
        [helper.make_tensor_value_info("x", F, [2, 3, 4])],
        [helper.make_tensor_value_info("y", F, [2, 3, 6])],
        [numpy_helper.from_array(np.array([0, 0, 1, 0, 0, 1], np.int64), "pads")],
    )
    try:
        converted = convert_opset(original, 12)
    except UnsupportedOperator as exc:
        assert [n.node for n in exc.nodes] == ["softmax"]
        return
    assert default_opset(converted) == 12
    _assert_same_outputs(original, converted, {"x": _rand(2, 3, 4, seed=1)})


def test_upgrade_failure_is_unsupported_error():
    # an opset-17 model with a node that has no upgrade path (a made-up op in the default domain)
    model = make_conv_onnx()
    model.graph.node.append(helper.make_node("NoSuchOp", ["logits"], ["weird"], name="weird"))
    model.graph.output.append(helper.make_tensor_value_info("weird", F, ["N", 4]))
    with pytest.raises(UnsupportedError) as info:
        convert_opset(model, 18)
    assert info.value.exit_code == 4


# ---------------------------------------------------------------- control flow: nested If at every opset


def _control_flow_feeds() -> list[dict[str, np.ndarray]]:
    """Inputs that take each branch of the nested-If model (max < 0, 0 < max < 0.5, max > 0.5)."""
    rng = np.random.default_rng(3)
    base = rng.standard_normal((3, 4)).astype(np.float32)
    return [{"x": base - 5}, {"x": 0.1 * np.tanh(base) + 0.3}, {"x": base + 1}]


@pytest.mark.parametrize("source", [12, 15, 16, 18])
def test_nested_if_model_converts_to_17_and_runs_in_onnxruntime(source):
    from tests.converters.control_flow import nested_if_model

    original = nested_if_model(source)
    converted = convert_opset(original, 17)
    assert default_opset(converted) == 17
    onnx.checker.check_model(converted, full_check=True)
    for feeds in _control_flow_feeds():
        _assert_same_outputs(original, converted, feeds)


def test_downgrade_lowers_split_and_reduce_inside_nested_subgraphs():
    from tests.converters.control_flow import nested_if_model

    original = nested_if_model(18, batch=3)
    lowered = downgrade(original, 17)
    from edgecc.onnxutil import all_graphs

    graphs = list(all_graphs(lowered.graph))
    assert len(graphs) == 5  # main graph, two outer branches, two inner branches
    splits = [n for g in graphs[1:] for n in g.node if n.op_type == "Split"]
    assert len(splits) == 4 and all(a.name != "num_outputs" for n in splits for a in n.attribute)
    onnx.checker.check_model(lowered, full_check=True)
    for feeds in _control_flow_feeds():
        _assert_same_outputs(original, lowered, feeds)


@pytest.mark.parametrize(("source", "target", "ir_version"), [(9, 17, 8), (11, 13, 7), (17, 18, 8)])
def test_a_converted_model_gets_the_ir_version_of_its_new_opset(source, target, ir_version):
    # onnx's converter keeps the old IR version: a PyTorch-1.x file (IR 4, opset 9) became "IR 4 at opset 17"
    x = helper.make_tensor_value_info("x", F, [1, 4])
    y = helper.make_tensor_value_info("y", F, [1, 4])
    model = helper.make_model(
        helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]),
        opset_imports=[helper.make_opsetid("", source)],
    )
    model.ir_version = 4
    converted = convert_opset(model, target)
    assert default_opset(converted) == target and converted.ir_version == ir_version
    feeds = {"x": np.array([[-1.0, 0.0, 1.0, 2.0]], np.float32)}
    _assert_same_outputs(model, converted, feeds, exact=True)
    model.ir_version = 9  # a higher IR version the model already declares is kept
    assert convert_opset(model, target).ir_version == 9
