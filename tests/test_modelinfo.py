"""edgecc.modelinfo: MACs computed by hand from the shapes, parameters, op histogram."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecc.modelinfo import MAC_COUNTERS, describe_onnx, format_bytes, format_count
from tests.conftest import make_conv_onnx

F = TensorProto.FLOAT


def _model(nodes, inputs, outputs, initializers=(), opset: int = 17, **kwargs) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], **kwargs)
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _weight(name: str, *shape: int, dtype=np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.random.default_rng(len(name)).standard_normal(shape).astype(dtype), name)


def _ort_output_shape(model: onnx.ModelProto, feeds: dict) -> tuple[int, ...]:
    """The real output shape, from onnxruntime, to check the shapes used in the hand computations."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return tuple(session.run(None, feeds)[0].shape)


def test_small_cnn_by_hand():
    info = describe_onnx(make_conv_onnx(batch=1))
    # Conv: output 1x8x16x16 (pads 1), each output element = 3 in-channels x 3 x 3 MACs
    conv = (1 * 8 * 16 * 16) * (3 * 3 * 3)
    # Gemm: [1, 8] x [8, 4] -> M=1, N=4, K=8
    gemm = 1 * 4 * 8
    assert info.macs_by_op == {"Conv": conv, "Gemm": gemm}
    assert info.macs == conv + gemm == 55328
    assert info.macs_unknown_nodes == []
    assert info.parameters == 8 * 3 * 3 * 3 + 8 + 8 * 4 + 4
    assert info.parameter_bytes == 4 * info.parameters
    assert info.nodes == 6
    assert dict(info.op_histogram) == {"Conv": 1, "Relu": 1, "MaxPool": 1, "GlobalAveragePool": 1, "Flatten": 1, "Gemm": 1}
    assert info.opsets == {"ai.onnx": 17}
    assert info.ir_version == 8


def test_dynamic_batch_leaves_macs_unknown():
    info = describe_onnx(make_conv_onnx())  # batch "N"
    assert info.macs == 0
    assert info.macs_unknown_nodes == ["conv", "fc"]
    assert info.inputs[0].shape == ("N", 3, 16, 16)
    assert info.parameters == 260  # parameters do not depend on shapes


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "attrs"),
    [
        ((2, 4, 10, 10), (6, 2, 3, 3), {"group": 2, "strides": [2, 2]}),
        ((1, 4, 8, 8), (4, 1, 3, 3), {"group": 4, "pads": [1, 1, 1, 1]}),  # depthwise
        ((1, 3, 9, 7), (5, 3, 2, 3), {"dilations": [2, 1], "strides": [1, 2]}),
        ((3, 2, 11), (4, 2, 5), {}),  # 1-D convolution
    ],
)
def test_conv_macs(x_shape, w_shape, attrs):
    model = _model(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", **attrs)],
        [helper.make_tensor_value_info("x", F, list(x_shape))],
        [helper.make_tensor_value_info("y", F, [None] * len(x_shape))],
        [_weight("w", *w_shape)],
    )
    # by hand: output spatial size per dim = floor((in + pads - dilation*(k-1) - 1) / stride) + 1
    spatial = len(x_shape) - 2
    pads = attrs.get("pads", [0] * 2 * spatial)
    strides = attrs.get("strides", [1] * spatial)
    dilations = attrs.get("dilations", [1] * spatial)
    out_spatial = [
        (x_shape[2 + i] + pads[i] + pads[i + spatial] - dilations[i] * (w_shape[2 + i] - 1) - 1) // strides[i] + 1
        for i in range(spatial)
    ]
    out_shape = (x_shape[0], w_shape[0], *out_spatial)
    assert _ort_output_shape(model, {"x": np.zeros(x_shape, np.float32)}) == out_shape
    group = attrs.get("group", 1)
    in_per_group = x_shape[1] // group
    kernel = int(np.prod(w_shape[2:]))
    expected = int(np.prod(out_shape)) * in_per_group * kernel
    info = describe_onnx(model)
    assert info.macs_by_op == {"Conv": expected}
    assert info.macs == expected
    assert info.parameters == int(np.prod(w_shape))


@pytest.mark.parametrize(
    ("a_shape", "b_shape", "attrs", "m", "n", "k"),
    [
        ((5, 7), (7, 3), {}, 5, 3, 7),
        ((7, 5), (7, 3), {"transA": 1}, 5, 3, 7),
        ((5, 7), (3, 7), {"transB": 1}, 5, 3, 7),
        ((7, 5), (3, 7), {"transA": 1, "transB": 1, "alpha": 0.5}, 5, 3, 7),
    ],
)
def test_gemm_macs(a_shape, b_shape, attrs, m, n, k):
    model = _model(
        [helper.make_node("Gemm", ["a", "b", "c"], ["y"], name="gemm", **attrs)],
        [helper.make_tensor_value_info("a", F, list(a_shape))],
        [helper.make_tensor_value_info("y", F, [None, None])],
        [_weight("b", *b_shape), _weight("c", n)],
    )
    assert _ort_output_shape(model, {"a": np.zeros(a_shape, np.float32)}) == (m, n)
    info = describe_onnx(model)
    assert info.macs_by_op == {"Gemm": m * n * k}
    assert info.parameters == int(np.prod(b_shape)) + n


@pytest.mark.parametrize(
    ("a_shape", "b_shape", "expected"),
    [
        ((4, 5), (5, 6), 4 * 6 * 5),
        ((2, 3, 4, 5), (5, 6), 2 * 3 * 4 * 6 * 5),  # batched, B broadcast
        ((2, 1, 4, 5), (3, 5, 6), 2 * 3 * 4 * 6 * 5),  # both broadcast
        ((5,), (5, 6), 6 * 5),  # vector x matrix
        ((4, 5), (5,), 4 * 5),  # matrix x vector
    ],
)
def test_matmul_macs(a_shape, b_shape, expected):
    a = np.zeros(a_shape, np.float32)
    b = np.zeros(b_shape, np.float32)
    out_shape = (a @ b).shape
    model = _model(
        [helper.make_node("MatMul", ["a", "b"], ["y"], name="mm")],
        [helper.make_tensor_value_info("a", F, list(a_shape))],
        [helper.make_tensor_value_info("y", F, [None] * len(out_shape))],
        [_weight("b", *b_shape)],
    )
    assert _ort_output_shape(model, {"a": a}) == out_shape
    # by hand: every output element is a dot product over the inner dimension
    assert expected == int(np.prod(out_shape)) * a_shape[-1]
    info = describe_onnx(model)
    assert info.macs_by_op == {"MatMul": expected}


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "attrs"),
    [
        ((1, 4, 5, 5), (4, 3, 3, 3), {"strides": [2, 2]}),
        ((2, 4, 6, 6), (4, 2, 3, 3), {"group": 2, "strides": [2, 2], "output_padding": [1, 1]}),
        ((1, 2, 7), (2, 5, 4), {"pads": [1, 2]}),
    ],
)
def test_conv_transpose_macs(x_shape, w_shape, attrs):
    model = _model(
        [helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="deconv", **attrs)],
        [helper.make_tensor_value_info("x", F, list(x_shape))],
        [helper.make_tensor_value_info("y", F, [None] * len(x_shape))],
        [_weight("w", *w_shape)],
    )
    out_shape = _ort_output_shape(model, {"x": np.zeros(x_shape, np.float32)})
    # by hand: every input element is scattered into (out channels / group) x kernel positions
    group = attrs.get("group", 1)
    out_per_group = w_shape[1]  # weight is [C_in, C_out / group, k...]
    assert out_shape[1] == group * out_per_group
    expected = int(np.prod(x_shape)) * out_per_group * int(np.prod(w_shape[2:]))
    info = describe_onnx(model)
    assert info.macs_by_op == {"ConvTranspose": expected}


def test_macs_of_a_whole_network_add_up():
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="c1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="r1"),
        helper.make_node("ConvTranspose", ["r1", "w2"], ["d1"], name="d1", strides=[2, 2]),
        helper.make_node("Flatten", ["d1"], ["f"], name="flat"),
        helper.make_node("MatMul", ["f", "w3"], ["m"], name="mm"),
        helper.make_node("Gemm", ["m", "w4"], ["y"], name="gemm", transB=1),
    ]
    # x 1x2x4x4 -> c1 1x4x4x4 -> d1 1x3x9x9 -> f 1x243 -> m 1x10 -> y 1x6
    model = _model(
        nodes,
        [helper.make_tensor_value_info("x", F, [1, 2, 4, 4])],
        [helper.make_tensor_value_info("y", F, [1, 6])],
        [_weight("w1", 4, 2, 3, 3), _weight("w2", 4, 3, 3, 3), _weight("w3", 243, 10), _weight("w4", 6, 10)],
    )
    assert _ort_output_shape(model, {"x": np.zeros((1, 2, 4, 4), np.float32)}) == (1, 6)
    expected = {
        "Conv": (1 * 4 * 4 * 4) * 2 * 9,
        "ConvTranspose": (1 * 4 * 4 * 4) * 3 * 9,
        "MatMul": 10 * 243,
        "Gemm": 6 * 10,
    }
    info = describe_onnx(model)
    assert info.macs_by_op == dict(sorted(expected.items()))
    assert info.macs == sum(expected.values())
    assert info.parameters == 4 * 2 * 9 + 4 * 3 * 9 + 243 * 10 + 6 * 10
    assert info.to_dict()["macs"] == info.macs


def test_parameter_counts_and_bytes_by_dtype():
    initializers = [
        _weight("f32", 3, 4),  # 12 x 4 bytes
        numpy_helper.from_array(np.ones((5, 2), np.float16), "f16"),  # 10 x 2
        numpy_helper.from_array(np.arange(7, dtype=np.int64), "i64"),  # 7 x 8
        numpy_helper.from_array(np.ones(9, np.int8), "i8"),  # 9 x 1
        numpy_helper.from_array(np.array(2.0, np.float64), "f64_scalar"),  # 1 x 8
    ]
    const = helper.make_node("Constant", [], ["k"], name="k", value=numpy_helper.from_array(np.ones((2, 3), np.float32)))
    nodes = [const, helper.make_node("Add", ["x", "k"], ["y"], name="add")]
    for tensor in initializers:  # keep every initializer used
        nodes.append(helper.make_node("Identity", [tensor.name], [tensor.name + "_out"], name="id_" + tensor.name))
    outputs = [helper.make_tensor_value_info("y", F, [2, 3])] + [
        helper.make_tensor_value_info(t.name + "_out", t.data_type, list(t.dims)) for t in initializers
    ]
    model = _model(nodes, [helper.make_tensor_value_info("x", F, [2, 3])], outputs, initializers)
    info = describe_onnx(model)
    assert info.parameters == 12 + 10 + 7 + 9 + 1 + 6
    assert info.parameter_bytes == 12 * 4 + 10 * 2 + 7 * 8 + 9 * 1 + 1 * 8 + 6 * 4
    assert info.macs == 0 and info.macs_by_op == {} and info.macs_unknown_nodes == []


def test_op_histogram_sorted_and_custom_domains():
    nodes = [
        helper.make_node("Relu", ["x"], ["r1"], name="r1"),
        helper.make_node("Relu", ["r1"], ["r2"], name="r2"),
        helper.make_node("Relu", ["r2"], ["r3"], name="r3"),
        helper.make_node("Abs", ["r3"], ["a1"], name="a1"),
        helper.make_node("Abs", ["a1"], ["a2"], name="a2"),
        helper.make_node("Neg", ["a2"], ["n"], name="n"),
        helper.make_node("Ceil", ["n"], ["c"], name="c"),
        helper.make_node("FusedThing", ["c"], ["y"], name="custom", domain="com.vendor"),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", F, [4])], [helper.make_tensor_value_info("y", F, [4])]
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.vendor", 1)],
        producer_name="maker",
        producer_version="2.1",
    )
    model.ir_version = 8
    model.metadata_props.add(key="author", value="me")
    info = describe_onnx(model, source={"framework": "onnx"})
    assert info.op_histogram == [("Relu", 3), ("Abs", 2), ("Ceil", 1), ("Neg", 1), ("com.vendor.FusedThing", 1)]
    assert info.nodes == 8
    assert info.opsets == {"ai.onnx": 17, "com.vendor": 1}
    assert info.producer == "maker 2.1"
    assert info.metadata == {"author": "me"}
    data = info.to_dict()
    assert data["op_histogram"] == {"Relu": 3, "Abs": 2, "Ceil": 1, "Neg": 1, "com.vendor.FusedThing": 1}
    assert data["source"] == {"framework": "onnx"}
    json.dumps(data)


def test_mac_counters_registered():
    for op in ("Conv", "ConvTranspose", "Gemm", "MatMul", "ConvInteger", "QLinearConv", "MatMulInteger", "QLinearMatMul"):
        assert op in MAC_COUNTERS


def test_formatting():
    assert format_count(999) == "999"
    assert format_count(1234) == "1.23K"
    assert format_count(1_234_567) == "1.23M"
    assert format_count(55_328) == "55.33K"
    assert format_count(2_500_000_000) == "2.50G"
    assert format_bytes(1023) == "1023 B"
    assert format_bytes(1024) == "1.00 KiB"
    assert format_bytes(3 * 1024**2) == "3.00 MiB"
    assert format_bytes(5 * 1024**3 // 2) == "2.50 GiB"
