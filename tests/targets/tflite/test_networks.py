"""Real networks (ResNet-20 CIFAR-10, MTCNN P-Net), float and int8: TFLite interpreter vs onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from edgecc.targets.tflite import TfliteRunner, compare_with_onnx, emit_tflite
from tests.targets.helpers import convert_pnet, convert_resnet20
from tests.targets.tflite.models import quantized

NETWORKS = {"resnet20": (convert_resnet20, "x", (1, 3, 32, 32)), "pnet": (convert_pnet, "data", (1, 3, 100, 75))}


@pytest.fixture(scope="module")
def networks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[onnx.ModelProto, onnx.ModelProto, list]]:
    folder = tmp_path_factory.mktemp("nets")
    result = {}
    for name, (convert, input_name, shape) in NETWORKS.items():
        model = onnx.load(convert(folder / f"{name}.onnx"))
        rng = np.random.default_rng(0)
        feeds = [{input_name: rng.uniform(-1, 1, shape).astype(np.float32)} for _ in range(6)]
        result[name] = (model, quantized(model, feeds[:4]), feeds[4:])
    return result


@pytest.mark.parametrize("name", sorted(NETWORKS))
@pytest.mark.parametrize("precision", ["float", "int8"])
def test_network_matches_onnxruntime(networks: dict, name: str, precision: str, tmp_path: Path) -> None:
    float_model, int8_model, feeds = networks[name]
    model = float_model if precision == "float" else int8_model
    artifact = emit_tflite(model, name=name)
    assert artifact.report["internal_transposes"] == 0  # NHWC end to end: the host transposes at the boundary
    assert "CONV_2D" in artifact.operators
    report = compare_with_onnx(artifact, model, feeds)
    assert report["passed"], report
    for output in report["outputs"]:
        assert output["kind"] == ("float" if precision == "float" else "int8")
    # the artifact is self-describing: a runner over the file alone returns ONNX-layout outputs
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(artifact.data)
    runner = TfliteRunner(path, name=name)
    assert [i.name for i in runner.inputs] == [i.name for i in model.graph.input]
    outputs = runner.run(feeds[0])
    for out in model.graph.output:
        assert outputs[out.name].shape == tuple(d.dim_value for d in out.type.tensor_type.shape.dim)
