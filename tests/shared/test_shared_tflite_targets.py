"""Real models of ../shared/models compiled for the TFLite targets (ethos-u with the real Vela, edgetpu, armnn with the
real Arm NN), verified against onnxruntime and against the original framework's reference outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_edgecc
from tests.shared.test_shared_models import SHARED

pytestmark = pytest.mark.shared

TARGETS = ["ethos-u55-128", "ethos-u85-512", "edgetpu", "armnn"]


@pytest.fixture(scope="module")
def lenet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    folder = tmp_path_factory.mktemp("lenet")
    model_dir = SHARED / "caffe" / "lenet_mnist"
    onnx_path = folder / "lenet.onnx"
    result = run_edgecc(
        "convert",
        model_dir / "lenet.prototxt",
        model_dir / "lenet_iter_10000.caffemodel",
        "--input",
        "data:1x1x28x28",
        "--no-verify",
        "-o",
        onnx_path,
    )
    assert result.returncode == 0, result.stderr
    ref = np.load(model_dir / "ref" / "mnist_samples0to9.npz")
    (folder / "cal").mkdir()
    for i, digit in enumerate(ref["in__data"]):
        np.save(folder / "cal" / f"digit{i}.npy", digit[None])
    return onnx_path, folder / "cal", ref["in__data"], ref["out__prob"]


@pytest.mark.parametrize("target", TARGETS)
def test_lenet_on_every_tflite_target_keeps_caffes_answers(lenet: tuple, target: str, tmp_path: Path) -> None:
    from edgecc.runtime import load

    model, cal, digits, probs = lenet
    out = tmp_path / f"lenet_{target}.edgecc"
    # LeNet is so small that the cost model keeps it on the CPU for the USB-attached Edge TPU: take every supported node
    greedy = ["--partitioner", "greedy"] if target == "edgetpu" else []
    result = run_edgecc("compile", model, "--target", target, "--calibration", f"data={cal}", *greedy, "-o", out)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["verification"]["passed"]
    npu = [p for p in manifest["partitions"] if p["device"] == target]
    assert npu and all(p["vendor"]["verification"]["passed"] for p in npu)
    if target.startswith("ethos-u"):
        assert all(p["vendor"]["estimates"]["inferences_per_second"] > 0 for p in npu)
    if target == "armnn":
        assert all(p["vendor"]["armnn_verification"]["passed"] for p in npu)
    bundle = load(out)
    try:
        got = np.concatenate([bundle.run({"data": d[None]})["prob"] for d in digits])
    finally:
        bundle.close()
    assert (got.argmax(1) == probs.argmax(1)).all(), f"{target}: digits {got.argmax(1)} vs Caffe {probs.argmax(1)}"


def test_gender_mini_xception_through_vela(tmp_path: Path) -> None:
    """Keras 2 HDF5 (SeparableConv2D, BN, residual Add) -> ONNX -> int8 TFLite -> Vela for the Ethos-U55-256."""
    model_dir = SHARED / "keras_h5" / "gender_mini_xception"
    onnx_path = tmp_path / "gender.onnx"
    result = run_edgecc("convert", model_dir / "gender_mini_XCEPTION.21-0.95.hdf5", "--no-verify", "-o", onnx_path)
    assert result.returncode == 0, result.stderr
    ref = np.load(model_dir / "ref" / "aligned_angelina_jolie.npz")
    name = json.loads(run_edgecc("inspect", onnx_path, "--json").stdout)["inputs"][0]["name"]
    np.save(tmp_path / "face.npy", ref["in__input"])
    out = tmp_path / "gender.edgecc"
    result = run_edgecc(
        "compile",
        onnx_path,
        "--target",
        "ethos-u55-256",
        "--input",
        f"{name}:1x64x64x1",
        "--calibration",
        f"{name}={tmp_path / 'face.npy'}",
        "-o",
        out,
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    vendor = next(p for p in manifest["partitions"] if p["device"] == "ethos-u55-256")["vendor"]
    assert vendor["verification"]["passed"] and vendor["estimates"]["cycles_total"] > 0
    assert vendor["cpu_operators"] == len(vendor["cpu_fallback"])
