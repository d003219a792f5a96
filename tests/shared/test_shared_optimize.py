"""Real models from ../shared/models, converted without cleanup, then `edgecc optimize -O3`: verified, never larger."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SAMPLES, run_edgecc
from tests.shared.test_shared_models import SHARED

pytestmark = pytest.mark.shared

MODELS = {
    "resnet20_pytorch": [
        f"{SAMPLES}/pytorch/resnet20.py:resnet20",
        f"{SHARED}/pytorch/resnet20_cifar10/resnet20-12fca82f.th",
        "--input",
        "input:1x3x32x32",
    ],
    "mtcnn_pnet_caffe": [
        f"{SHARED}/caffe/mtcnn_pnet/det1.prototxt",
        f"{SHARED}/caffe/mtcnn_pnet/det1.caffemodel",
        "--input",
        "data:1x3x12x12",
    ],
    "lenet_caffe": [
        f"{SHARED}/caffe/lenet_mnist/lenet.prototxt",
        f"{SHARED}/caffe/lenet_mnist/lenet_iter_10000.caffemodel",
        "--input",
        "data:1x1x28x28",
    ],
    "mtcnn_det1_mxnet": [
        f"{SHARED}/mxnet/mtcnn_det1/det1-symbol.json",
        f"{SHARED}/mxnet/mtcnn_det1/det1-0001.params",
        "--input",
        "data:1x3x12x12",
    ],
    "lenet_caffe2": [
        f"{SHARED}/caffe2/lenet_mnist/predict_net.pb",
        f"{SHARED}/caffe2/lenet_mnist/init_net.pb",
        "--input",
        "1:1x1x28x28",
    ],
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_optimize_O3_on_converted_real_model(name: str, tmp_path: Path) -> None:  # noqa: N802 - the level's name
    raw = tmp_path / "raw.onnx"
    converted = run_edgecc("convert", *MODELS[name], "--no-optimize", "-o", raw)
    assert converted.returncode == 0, converted.stderr
    optimized = run_edgecc("optimize", raw, "-O3", "-o", tmp_path / "opt.onnx", "--json")
    assert optimized.returncode == 0, optimized.stderr
    document = optimized.json()
    assert document["verification"]["passed"] is True
    assert document["report"]["nodes_after"] <= document["report"]["nodes_before"]
