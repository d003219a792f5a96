"""Layout-only ops at the graph edges: a Reshape that only moves size-1 axes is a permutation (no operator), and with
integer io the input's QuantizeLinear / DequantizeLinear behind Transpose/Reshape makes an integer TFLite input.
Checked on a small model and on the real Keras mini-Xception (tf2onnx writes its 1-channel NHWC->NCHW transpose as a
Reshape); every artifact is run with the TFLite interpreter against onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecc.onnxutil import infer_shapes
from edgecc.targets.tflite import compare_with_onnx, emit_tflite
from tests.conftest import SAMPLES, run_edgecc
from tests.targets.tflite.models import quantized

MINI_XCEPTION = SAMPLES / "models" / "keras_gender_mini_xception" / "gender_mini_XCEPTION.21-0.95.hdf5"


def _nhwc_one_channel(rng: np.random.Generator) -> onnx.ModelProto:
    """x [1,8,8,1] -> Reshape [1,1,8,8] (tf2onnx's 1-channel transpose) -> Conv -> Relu -> Transpose to NHWC -> y."""
    w = numpy_helper.from_array((rng.standard_normal((4, 1, 3, 3)) * 0.5).astype(np.float32), "w")
    b = numpy_helper.from_array((rng.standard_normal(4) * 0.1).astype(np.float32), "b")
    shape = numpy_helper.from_array(np.asarray([1, 1, 8, 8], dtype=np.int64), "shape")
    perm = helper.make_node("Transpose", ["r"], ["y"], perm=[0, 2, 3, 1])
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["xr"]),
        helper.make_node("Conv", ["xr", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        perm,
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 8, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 4])],
        initializer=[w, b, shape],
    )
    return infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


@pytest.mark.parametrize("io_type", ["float32", "int8", "uint8"])
def test_unit_axis_reshape_is_bookkeeping(io_type: str) -> None:
    rng = np.random.default_rng(0)
    model = _nhwc_one_channel(rng)
    feeds = [{"x": rng.uniform(-1, 1, (1, 8, 8, 1)).astype(np.float32)} for _ in range(6)]
    float_art = emit_tflite(model)
    assert float_art.operators == ["CONV_2D"]
    assert compare_with_onnx(float_art, model, feeds)["passed"]
    qmodel = infer_shapes(quantized(model, feeds[:4]))
    assert [n.op_type for n in qmodel.graph.node][:2] == ["Reshape", "QuantizeLinear"]  # a float Reshape before the input's Q
    art = emit_tflite(qmodel, io_type=io_type)
    expected = {
        "float32": ["QUANTIZE", "CONV_2D", "DEQUANTIZE"],
        "int8": ["CONV_2D"],
        "uint8": ["QUANTIZE", "CONV_2D", "QUANTIZE"],
    }
    assert art.operators == expected[io_type], art.operators
    assert art.report["internal_transposes"] == 0
    io = art.report["io"]
    assert io["inputs"][0]["dtype"] == ("float32" if io_type == "float32" else io_type)
    assert io["outputs"][0]["perm"] == [0, 1, 2, 3]  # the trailing Transpose is bookkeeping too: NHWC is the output's own layout
    report = compare_with_onnx(art, qmodel, feeds[4:])
    assert report["passed"], report


@pytest.fixture(scope="module")
def mini_xception(tmp_path_factory: pytest.TempPathFactory) -> onnx.ModelProto:
    path = tmp_path_factory.mktemp("mx") / "mx.onnx"
    result = run_edgecc("convert", MINI_XCEPTION, "--input", "input_1:1x64x64x1", "-o", path)
    assert result.returncode == 0, result.stderr
    return infer_shapes(onnx.load(path))


def test_mini_xception_int8_input_feeds_the_first_conv(mini_xception: onnx.ModelProto) -> None:
    from edgecc.targets import get_target
    from edgecc.targets.precision import convert_precision

    assert [n.op_type for n in mini_xception.graph.node][0] == "Reshape"  # [1,64,64,1] -> [1,1,64,64]
    rng = np.random.default_rng(0)
    feeds = [{"input_1": rng.uniform(-1, 1, (1, 64, 64, 1)).astype(np.float32)} for _ in range(6)]
    qmodel = convert_precision(mini_xception, "int8", get_target("ethos-u55-128").scheme_for("int8"), feeds[:4])
    art = emit_tflite(qmodel, io_type="int8", name="mx")
    assert art.operators[0] == "CONV_2D", art.operators[:4]
    assert "TRANSPOSE" not in art.operators and "RESHAPE" not in art.operators[:2]
    assert art.report["internal_transposes"] == 0 and not art.report["float_nodes"]
    entry = art.report["io"]["inputs"][0]
    assert entry["dtype"] == "int8" and entry["perm"] == [0, 1, 2, 3]
    report = compare_with_onnx(art, qmodel, feeds[4:])
    assert report["outputs"][0]["max_steps"] <= 2, report
