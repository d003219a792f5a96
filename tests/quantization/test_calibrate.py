"""edgecc.quantization.calibrate: statistics and ranges stay finite on extreme activations."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from edgecc.quantization.calibrate import collect_statistics, select_range


def _relu_model():
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="relu"), helper.make_node("Neg", ["r"], ["y"], name="neg")],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("method", ["percentile", "entropy", "mse"])
def test_histogram_calibrators_on_activations_near_the_float32_limit(method):
    """Library callers bypass the CLI's data bound: 3e38 activations once overflowed the histogram (IndexError)."""
    x = np.linspace(-1, 1, 16, dtype=np.float32).reshape(2, 8)
    x[0, 3] = 3e38
    x[1, 5] = np.nan
    stats = collect_statistics(_relu_model(), [{"x": x}], histograms=True)
    for s in stats.values():
        lo, hi = select_range(s, method, symmetric=True)
        assert np.isfinite(lo) and np.isfinite(hi) and lo <= hi
