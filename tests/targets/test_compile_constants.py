"""Constant-only nodes (weight DequantizeLinear of quantised models) never cross partition boundaries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from edgecc.pipeline.compile import CompileOptions, compile_model
from edgecc.quantization import QuantOptions, quantize_model
from edgecc.quantization.scheme import QuantScheme
from edgecc.targets import get_target
from edgecc.targets.graph import analyse
from edgecc.targets.plan import constant_nodes, sink_constant_nodes
from tests.targets.helpers import mixed_model


@pytest.fixture(scope="module")
def quantised_mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[onnx.ModelProto, list[dict[str, np.ndarray]]]:
    model = onnx.load(mixed_model(tmp_path_factory.mktemp("c") / "mixed.onnx"))
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.standard_normal((1, 3, 96, 96)).astype(np.float32)} for _ in range(4)]
    quantised, _ = quantize_model(
        model, QuantScheme(activation_type="int8"), feeds, QuantOptions(holdout=0.0, per_layer_report=False)
    )
    return quantised, feeds


def test_sinking_puts_each_weight_dequantize_just_before_its_consumer(quantised_mixed: tuple[onnx.ModelProto, list]) -> None:
    model, _ = quantised_mixed
    initializers = {i.name for i in model.graph.initializer}
    first = [n.op_type for n in model.graph.node[:3]]
    sunk = sink_constant_nodes(model)
    assert sorted(n.SerializeToString() for n in sunk.graph.node) == sorted(n.SerializeToString() for n in model.graph.node)
    onnx.checker.check_model(sunk)  # still topologically sorted
    views = analyse(sunk).views
    producers = constant_nodes(views, initializers)
    assert producers, f"the quantised model has weight DequantizeLinear nodes (first ops {first})"
    for tensor, index in producers.items():
        consumers = [i for i, v in enumerate(views) if tensor in v.inputs]
        assert consumers and min(consumers) == index + 1 or views[index + 1].outputs[0] in producers, tensor


def test_split_quantised_model_keeps_weights_inside_partitions(
    quantised_mixed: tuple[onnx.ModelProto, list], tmp_path: Path
) -> None:
    model, feeds = quantised_mixed
    out = tmp_path / "q.edgecc"
    result = compile_model(
        model, get_target("hisilicon-npu"), str(out), options=CompileOptions(), path="q.onnx", calibration=feeds
    )
    manifest = result.manifest
    assert manifest["verification"]["passed"]
    devices = [p["device"] for p in manifest["partitions"]]
    assert devices == ["hisilicon-npu", "cpu", "hisilicon-npu"], devices  # Erf splits the NPU work in two; Q/DQ stay with it
    initializers = {i.name for i in model.graph.initializer}
    constants = set(constant_nodes(analyse(model).views, initializers))
    for part in manifest["partitions"]:
        crossing = {t["name"] for t in [*part["inputs"], *part["outputs"]]} & constants
        assert not crossing, f"{part['name']} exchanges constant tensors {crossing}"
        artifact = onnx.load(str(out / part["artifact"]))
        produced = {o for n in artifact.graph.node for o in n.output}
        read = {i for n in artifact.graph.node for i in n.input if i}
        assert read <= produced | {i.name for i in artifact.graph.initializer} | {i.name for i in artifact.graph.input}


def _int64_shape_between_accelerator_nodes() -> onnx.ModelProto:
    """Conv -> Constant(int64 shape) -> Reshape -> Conv: a Constant the GPU cannot hold as a tensor, between two GPU nodes
    (the pattern of timm's EfficientFormerV2 attention, which crashed compile for mali-gpu)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    w1 = numpy_helper.from_array(rng.standard_normal((64, 32, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((32, 64, 1, 1)).astype(np.float32), "w2")
    shape = numpy_helper.from_array(np.array([1, 64, 16, 64], dtype=np.int64), "shape_value")
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Constant", [], ["shape"], name="shape_constant", value=shape),
        helper.make_node("Reshape", ["c1", "shape"], ["r"], name="reshape"),
        helper.make_node("Conv", ["r", "w2"], ["y"], name="conv2"),
    ]
    graph = helper.make_graph(
        nodes,
        "constant_between",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32, 16, 64])],
        [w1, w2],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_an_int64_constant_read_on_the_accelerator_is_placed_with_its_reader(tmp_path: Path) -> None:
    model = _int64_shape_between_accelerator_nodes()
    out = tmp_path / "m.edgecc"
    result = compile_model(model, get_target("mali-gpu"), str(out), options=CompileOptions(), path="m.onnx")
    manifest = result.manifest
    assert [p["device"] for p in manifest["partitions"]] == ["mali-gpu"], manifest["partitions"]
    assert all(p["outputs"] for p in manifest["partitions"])
    assert manifest["verification"]["passed"]
