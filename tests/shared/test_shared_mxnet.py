"""The real MXNet model in ../shared/models/mxnet (no licence file: read in place, never copied).

mtcnn_det1 is MTCNN's P-Net saved by MXNet 0.8 (attributes under `param`, legacy
NDArray records in the params file). The same network exists in Caffe
(caffe/mtcnn_pnet, trained in MATLAB: RGB input and transposed images); both
conversions must agree once the input and output are mapped between the two.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.conftest import REPO, run_edgecc

pytestmark = pytest.mark.shared

SHARED = Path(os.environ.get("EDGECC_SHARED_MODELS", REPO.parent / "shared" / "models"))
DET1 = SHARED / "mxnet" / "mtcnn_det1"
PNET = SHARED / "caffe" / "mtcnn_pnet"


def _run(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def _close(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.shape == want.shape, (what, got.shape, want.shape)
    span = max(float(want.max() - want.min()), 1e-6)
    err = float(np.abs(got - want).max())
    assert err <= 1e-4 * span, f"{what}: max abs error {err:.3g} over range {span:.3g}"


def test_mtcnn_det1_matches_every_mxnet_reference(tmp_path: Path) -> None:
    refs = sorted((DET1 / "ref").glob("*.npz"))
    assert refs, f"no reference files in {DET1 / 'ref'}"
    for ref_path in refs:
        ref = np.load(ref_path)
        shape = "x".join(map(str, ref["in__data"].shape))
        out = tmp_path / f"det1_{ref_path.stem}.onnx"
        result = run_edgecc(
            "convert", DET1 / "det1-symbol.json", DET1 / "det1-0001.params", "--input", f"data:{shape}", "-o", out
        )
        assert result.returncode == 0, result.stderr
        got = _run(out, {"data": ref["in__data"]})
        for key in ref.files:
            if key.startswith("out__"):
                _close(got[key[5:]], ref[key], f"{ref_path.name}/{key}")


def test_mtcnn_det1_by_prefix_and_epoch_is_fully_convolutional(tmp_path: Path) -> None:
    """Without --input the input keeps dynamic sizes; a 100x75 image gives the P-Net map size."""
    out = tmp_path / "det1.onnx"
    result = run_edgecc("convert", DET1 / "det1", "--epoch", "1", "-o", out)
    assert result.returncode == 0, result.stderr
    image = np.random.default_rng(0).uniform(-1, 1, (1, 3, 75, 100)).astype(np.float32)
    got = _run(out, {"data": image})
    assert got["prob1_output"].shape == (1, 2, 33, 45)
    np.testing.assert_allclose(got["prob1_output"].sum(axis=1), 1.0, rtol=1e-5)


def test_mxnet_and_caffe_pnet_agree(tmp_path: Path) -> None:
    """Same P-Net in two frameworks: MXNet takes BGR upright images, Caffe RGB transposed ones."""
    caffe_ref = np.load(PNET / "ref" / "face_100x75.npz")
    x_caffe = caffe_ref["in__data"]  # 1x3x100x75: RGB, (x-127.5)/128, transposed
    x_mxnet = np.ascontiguousarray(x_caffe[:, ::-1].transpose(0, 1, 3, 2))  # BGR, upright 75x100
    caffe_onnx, mxnet_onnx = tmp_path / "caffe.onnx", tmp_path / "mxnet.onnx"
    shape = "x".join(map(str, x_caffe.shape))
    result = run_edgecc("convert", PNET / "det1.prototxt", PNET / "det1.caffemodel", "--input", f"data:{shape}", "-o", caffe_onnx)
    assert result.returncode == 0, result.stderr
    result = run_edgecc("convert", DET1 / "det1-symbol.json", DET1 / "det1-0001.params", "-o", mxnet_onnx)
    assert result.returncode == 0, result.stderr
    caffe = _run(caffe_onnx, {"data": x_caffe})
    mxnet = _run(mxnet_onnx, {"data": x_mxnet})
    # outputs come back transposed from Caffe; the box-regression channel order is the same
    _close(mxnet["prob1_output"], caffe["prob1"].transpose(0, 1, 3, 2), "prob1")
    _close(mxnet["conv4_2_output"], caffe["conv4-2"].transpose(0, 1, 3, 2), "conv4_2")
    # and the Caffe conversion still reproduces Caffe's own reference on that input
    _close(caffe["prob1"], caffe_ref["out__prob1"], "caffe prob1")
