"""The harness's command lines: dynamic inputs fixed from the samples for targets that need static shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from conformance.harness import _static_inputs


def _dynamic_batch_model(path: Path) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["input_1"], ["y"])],
        "g",
        [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["batch", 8, 8, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8, 8, 3])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_dynamic_inputs_get_their_samples_shape_for_static_targets(tmp_path: Path) -> None:
    model = _dynamic_batch_model(tmp_path / "m.onnx")
    feeds = tmp_path / "samples.npz"
    np.savez(feeds, input_1=np.zeros((8, 1, 8, 8, 3), np.float32))
    assert _static_inputs(model, feeds, "ethos-u55-128") == ["--input", "input_1:1x8x8x3"]
    assert _static_inputs(model, feeds, "cpu") == []
