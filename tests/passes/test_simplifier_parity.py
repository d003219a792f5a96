"""edgecc -O3 against the best simplifiers (onnxsim, onnxslim, run here on the same file) on a graph in the
PyTorch-1.x form (IR 4, opset 9, every weight also a graph input): no more nodes than either, same outputs.
Before constant-initializer-inputs, -O3 left every BatchNormalization unfolded there (28 nodes against 21)."""

from __future__ import annotations

import onnx

from edgecc.passes import LEVELS
from tests.legacy_models import ultraface_like
from tests.passes.helpers import assert_same_outputs, ops, optimize


def test_o3_is_at_or_below_onnxsim_and_onnxslim_on_a_pytorch_1x_export(tmp_path):
    import onnxsim
    import onnxslim

    path = ultraface_like(tmp_path / "ultraface_like.onnx")
    model = onnx.load(path)
    ours, _ = optimize(model, LEVELS[3])
    simplified, ok = onnxsim.simplify(onnx.load(path))
    assert ok
    slimmed = onnxslim.slim(onnx.load(path))
    counts = {"edgecc -O3": len(ours.graph.node), "onnxsim": len(simplified.graph.node), "onnxslim": len(slimmed.graph.node)}
    assert counts["edgecc -O3"] <= min(counts["onnxsim"], counts["onnxslim"]), counts
    assert "BatchNormalization" not in ops(ours)
    assert_same_outputs(model, ours, rtol=1e-4)
