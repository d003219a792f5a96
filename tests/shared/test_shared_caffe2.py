"""The real Caffe2 models in ../shared/models/caffe2 (no licence file: read in place, never copied).

Each comes with ref/*.npz produced by an independent NetDef executor: edgecc's ONNX must reproduce
`out__*` from `in__*` within max abs error <= 1e-4 of the output range.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tests.conftest import REPO, run_edgecc

pytestmark = pytest.mark.shared

SHARED = Path(os.environ.get("EDGECC_SHARED_MODELS", REPO.parent / "shared" / "models"))
CAFFE2 = SHARED / "caffe2"


def _model_dirs() -> list[Path]:
    assert CAFFE2.is_dir(), f"{CAFFE2} is missing: set EDGECC_SHARED_MODELS"
    return sorted(p.parent for p in CAFFE2.glob("*/predict_net.pb"))


def test_there_is_a_caffe2_model() -> None:
    assert any(d.name == "lenet_mnist" for d in _model_dirs())


@pytest.mark.parametrize("model_dir", _model_dirs(), ids=lambda p: p.name)
def test_caffe2_model_reproduces_every_reference(model_dir: Path, tmp_path: Path) -> None:
    refs = sorted((model_dir / "ref").glob("*.npz"))
    assert refs, f"no reference files in {model_dir / 'ref'}"
    for ref_path in refs:
        ref = np.load(ref_path, allow_pickle=False)
        inputs = {k[len("in__") :]: ref[k] for k in ref.files if k.startswith("in__")}
        outputs = {k[len("out__") :]: ref[k] for k in ref.files if k.startswith("out__")}
        specs = [arg for name, value in inputs.items() for arg in ("--input", f"{name}:{'x'.join(map(str, value.shape))}")]
        out = tmp_path / f"{model_dir.name}_{ref_path.stem}.onnx"
        result = run_edgecc("convert", model_dir / "predict_net.pb", model_dir / "init_net.pb", *specs, "-o", out)
        assert result.returncode == 0, result.stderr
        model = onnx.load(str(out))
        assert [o.name for o in model.graph.output] == list(outputs)  # Caffe2 blob names are kept
        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        got = session.run(list(outputs), inputs)
        for value, (name, want) in zip(got, outputs.items()):
            span = max(float(want.max() - want.min()), 1e-6)
            error = float(np.abs(value - want).max())
            assert error <= 1e-4 * span, (ref_path.name, name, error, span)
            if want.ndim == 2 and want.shape[1] > 1:
                assert (value.argmax(1) == want.argmax(1)).all()


def test_lenet_dynamic_batch_and_init_net_first(tmp_path: Path) -> None:
    model_dir = CAFFE2 / "lenet_mnist"
    ref = np.load(model_dir / "ref" / "mnist_samples0to9_0to1.npz", allow_pickle=False)
    out = tmp_path / "lenet.onnx"
    result = run_edgecc("convert", model_dir / "init_net.pb", model_dir / "predict_net.pb", "--input", "1:Nx1x28x28", "-o", out)
    assert result.returncode == 0, result.stderr
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for count in (1, 3):
        got = session.run(None, {"1": ref["in__1"][:count]})[0]
        np.testing.assert_allclose(got, ref["out__26"][:count], atol=1e-4 * float(np.ptp(ref["out__26"])))


def test_lenet_truncated_init_net_is_exit_3(tmp_path: Path) -> None:
    model_dir = CAFFE2 / "lenet_mnist"
    data = (model_dir / "init_net.pb").read_bytes()
    for keep in (0.3, 0.999):
        cut = tmp_path / "init_net.pb"
        cut.write_bytes(data[: int(len(data) * keep)])
        result = run_edgecc("convert", model_dir / "predict_net.pb", cut, "--input", "1:1x1x28x28", "-o", tmp_path / "m.onnx")
        assert result.returncode == 3, result.stderr
        assert "Traceback" not in result.stderr and str(cut) in result.stderr
        assert not (tmp_path / "m.onnx").exists()
