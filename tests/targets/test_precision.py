"""convert_precision: edgecc's quantiser only, its failures reported as they are (no silent fallback to another quantiser)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import onnx
import pytest

from edgecc import quantization
from edgecc.errors import UnsupportedError
from edgecc.quantization.scheme import QuantScheme
from edgecc.targets.precision import convert_precision
from tests.targets.helpers import mixed_model


@pytest.fixture(scope="module")
def partition(tmp_path_factory: pytest.TempPathFactory) -> tuple[onnx.ModelProto, list[dict[str, np.ndarray]]]:
    model = onnx.load(mixed_model(tmp_path_factory.mktemp("p") / "mixed.onnx"))
    model.graph.name = "p0_rec-npu"
    rng = np.random.default_rng(0)
    return model, [{"x": rng.standard_normal((1, 3, 96, 96)).astype(np.float32)} for _ in range(2)]


def _failing(exc: Exception) -> Any:
    def quantize_model(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return quantize_model


def test_an_edgecc_error_of_the_quantiser_propagates_unchanged(partition: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    model, feeds = partition
    error = UnsupportedError("the quantiser cannot handle it")
    monkeypatch.setattr(quantization, "quantize_model", _failing(error))
    with pytest.raises(UnsupportedError) as info:
        convert_precision(model, "int8", QuantScheme(), feeds)
    assert info.value is error and info.value.exit_code == 4


def test_any_other_quantiser_exception_stays_a_visible_bug_naming_the_partition(
    partition: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, feeds = partition
    monkeypatch.setattr(quantization, "quantize_model", _failing(ZeroDivisionError("scale of 0")))
    with pytest.raises(ZeroDivisionError, match="scale of 0") as info:
        convert_precision(model, "int8", QuantScheme(), feeds)
    assert any("partition 'p0_rec-npu'" in note for note in getattr(info.value, "__notes__", []))


def test_quantising_uses_edgeccs_quantiser_and_leaves_the_root_logger_alone(partition: tuple) -> None:
    model, feeds = partition
    root = logging.getLogger()
    before = root.level
    quantized = convert_precision(model, "int8", QuantScheme(), feeds)
    assert root.level == before
    stamp = {p.key: p.value for p in quantized.metadata_props}["edgecc.precision_converter"]
    assert stamp == "edgecc.quantization.quantize_model (minmax, QDQ)"


def _weightless_partition(first_op: str) -> onnx.ModelProto:
    """A partition an accelerator runs whole that starts with a latent op (Relu, Resize) on its float input and has no
    weights: Relu/Resize -> Add(x, x) -> Mul by a scalar."""
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.array(0.5, np.float32), "half")]
    if first_op == "Resize":
        inits.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"))
        first = helper.make_node(
            "Resize",
            ["x", "", "scales"],
            ["a"],
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        )
        shape = [1, 4, 16, 16]
    else:
        first = helper.make_node("Relu", ["x"], ["a"])
        shape = [1, 4, 8, 8]
    graph = helper.make_graph(
        [first, helper.make_node("Add", ["a", "a"], ["s"]), helper.make_node("Mul", ["s", "half"], ["y"])],
        "p1_npu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("first_op", ["Relu", "Resize"])
def test_a_weightless_partition_is_quantised_from_its_first_input(first_op: str) -> None:
    """Placement can give an accelerator a partition of Add/Mul/Resize only, whose input comes from the CPU: it is
    quantised whole (before: "has no float weights to quantise", or a float input the int8 writer refused)."""
    from edgecc.ortrun import OrtRunner
    from edgecc.targets.tflite import compare_with_onnx, emit_tflite

    model = _weightless_partition(first_op)
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.uniform(-2, 2, (1, 4, 8, 8)).astype(np.float32)} for _ in range(8)]
    quantized = convert_precision(model, "int8", QuantScheme(activation_type="int8"), feeds)
    producers = {o: n.op_type for n in quantized.graph.node for o in n.output}
    readers = [n for n in quantized.graph.node if "x" in n.input]
    assert [n.op_type for n in readers] == ["QuantizeLinear"], [(n.op_type, list(n.input)) for n in quantized.graph.node]
    first = next(n for n in quantized.graph.node if n.op_type == first_op)
    assert producers[first.input[0]] == "DequantizeLinear"
    artifact = emit_tflite(quantized, name="p1_npu")  # the int8 writer takes it whole
    assert artifact.report["quantized"]
    assert compare_with_onnx(artifact, quantized, feeds[:2])["passed"]
    float_out = OrtRunner(model, name="float").run(feeds[0])["y"]
    int8_out = OrtRunner(quantized, name="int8").run(feeds[0])["y"]
    assert np.abs(int8_out - float_out).max() <= 0.05 * np.abs(float_out).max()
