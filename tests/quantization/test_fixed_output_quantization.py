"""Softmax, Sigmoid and Tanh outputs get the fixed 8-bit scales integer runtimes assume (TFLite: 1/256, 1/128)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecc.ortrun import OrtRunner
from edgecc.quantization import QuantOptions, quantize_model
from edgecc.quantization.scheme import QuantScheme


def _model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((6, 3, 3, 3)).astype(np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Softmax", ["c"], ["prob"], name="softmax", axis=1),
        helper.make_node("Sigmoid", ["c"], ["gate"], name="sigmoid"),
        helper.make_node("Tanh", ["c"], ["squash"], name="tanh"),
    ]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 6, 8, 8]) for n in ("prob", "gate", "squash")]
    graph = helper.make_graph(nodes, "fixed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])], outputs, [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(
    ("activation_type", "zero_points"),
    [("int8", {"prob": -128, "gate": -128, "squash": 0}), ("uint8", {"prob": 0, "gate": 0, "squash": 128})],
)
def test_fixed_scales_and_numerics(activation_type: str, zero_points: dict[str, int]) -> None:
    model = _model()
    rng = np.random.default_rng(1)
    feeds = [{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(6)]
    quantized, _ = quantize_model(
        model, QuantScheme(activation_type=activation_type), feeds, QuantOptions(holdout=0.0, per_layer_report=False)
    )
    init = {i.name: numpy_helper.to_array(i) for i in quantized.graph.initializer}
    producers = {o: n for n in quantized.graph.node for o in n.output}
    scales = {"prob": 1 / 256, "gate": 1 / 256, "squash": 1 / 128}
    for output, scale in scales.items():
        dq = producers[output]
        if output == "squash" and dq.op_type == "Tanh":
            continue  # onnxruntime's QDQ quantiser leaves Tanh in float: nothing to fix
        assert dq.op_type == "DequantizeLinear", output
        assert float(init[dq.input[1]]) == scale and int(init[dq.input[2]]) == zero_points[output]
    reference, candidate = OrtRunner(model).run(feeds[0]), OrtRunner(quantized).run(feeds[0])
    ops = {"prob": "Softmax", "gate": "Sigmoid", "squash": "Tanh"}
    for output, scale in scales.items():
        # the conv and the op input are quantised too: a couple of input steps (slope <= 1) plus one output step;
        # a wrong fixed zero point would clip half the range away (errors near 0.5)
        op = next(n for n in quantized.graph.node if n.op_type == ops[output])
        in_scale = float(init[producers[op.input[0]].input[1]])
        assert np.abs(reference[output] - candidate[output]).max() <= 2 * in_scale + scale, output
