"""Bad input: unsupported ops listed with node names (exit-4 error), support queries, non-TFLite files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecc.errors import EXIT_INVALID_INPUT, EXIT_UNSUPPORTED, InvalidInputError, UnsupportedOperator
from edgecc.targets.graph import analyse
from edgecc.targets.tflite import TFLITE_OP_FOR, TfliteRunner, emit_tflite, writer_supports


def _model() -> onnx.ModelProto:
    w = numpy_helper.from_array(np.ones((4, 4, 3, 3), np.float32), "w")
    g = numpy_helper.from_array(np.ones((4, 2, 3, 3), np.float32), "g")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["a"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Erf", ["a"], ["b"], name="the_erf"),
        helper.make_node("Conv", ["b", "g"], ["c"], name="grouped", pads=[1, 1, 1, 1], group=2),
        helper.make_node("Resize", ["c", "", "s"], ["y"], name="cubic", mode="cubic"),
    ]
    graph = helper.make_graph(
        nodes,
        "bad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16, 16])],
        initializer=[w, g, numpy_helper.from_array(np.asarray([1, 1, 2, 2], np.float32), "s")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_every_unsupported_node_is_listed() -> None:
    with pytest.raises(UnsupportedOperator) as info:
        emit_tflite(_model(), name="bad")
    error = info.value
    assert error.exit_code == EXIT_UNSUPPORTED
    assert [(n.node, n.op_type) for n in error.nodes] == [("the_erf", "Erf"), ("grouped", "Conv"), ("cubic", "Resize")]
    assert "group=2" in error.message and "cubic" in error.message


def test_writer_supports_matches_emit() -> None:
    verdicts = {v.name: writer_supports(v) for v in analyse(_model()).views}
    assert verdicts["conv"] == (True, "")
    assert not verdicts["the_erf"][0] and "Erf" in verdicts["the_erf"][1]
    assert not verdicts["grouped"][0] and not verdicts["cubic"][0]
    table = TFLITE_OP_FOR
    assert table["Conv"] == ("CONV_2D", "DEPTHWISE_CONV_2D", "PAD") and "QuantizeLinear" in table


def test_runner_rejects_a_file_that_is_not_tflite(tmp_path: Path) -> None:
    path = tmp_path / "x.tflite"
    path.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(InvalidInputError) as info:
        TfliteRunner(path, name="x.tflite")
    assert info.value.exit_code == EXIT_INVALID_INPUT and "TFL3" in info.value.message


def test_bad_io_type() -> None:
    from edgecc.errors import UsageError

    with pytest.raises(UsageError):
        emit_tflite(_model(), io_type="int4")
