"""Tests on the real models in ../shared/models (run by `make test-shared`; CI has that folder).

Models without a redistributable licence stay there; these tests read them in place.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.conftest import REPO, SAMPLES, run_edgecc

pytestmark = pytest.mark.shared

SHARED = Path(os.environ.get("EDGECC_SHARED_MODELS", REPO.parent / "shared" / "models"))

MODEL_SUFFIXES = {".pt", ".th", ".pth", ".onnx", ".prototxt", ".caffemodel", ".pb", ".json", ".params", ".hdf5", ".h5", ".tflite"}


def _model_files() -> list[Path]:
    assert SHARED.is_dir(), f"{SHARED} is missing: set EDGECC_SHARED_MODELS"
    return sorted(p for p in SHARED.rglob("*") if p.is_file() and p.suffix in MODEL_SUFFIXES and "_samples" not in p.parts)


PYTORCH_MODELS = [
    ("resnet20_cifar10", "resnet20-12fca82f.th", "resnet20.py:resnet20", ["logits"]),
    ("facenet_pnet", "pnet.pt", "pnet.py:pnet", ["out0", "out1"]),
]


@pytest.mark.parametrize(("folder", "weights", "factory", "outputs"), PYTORCH_MODELS)
def test_pytorch_models_match_every_reference(
    folder: str, weights: str, factory: str, outputs: list[str], tmp_path: Path
) -> None:
    model_dir = SHARED / "pytorch" / folder
    refs = sorted((model_dir / "ref").glob("*.npz"))
    assert refs, f"no reference files in {model_dir / 'ref'}"
    for ref_path in refs:
        ref = np.load(ref_path)
        shape = "x".join(map(str, ref["in__input"].shape))
        np.save(tmp_path / "input.npy", ref["in__input"])
        out = tmp_path / f"{folder}_{ref_path.stem}.onnx"
        result = run_edgecc(
            "convert",
            f"{SAMPLES / 'pytorch' / factory}",
            model_dir / weights,
            "--input",
            f"input:{shape}",
            "--data",
            f"input={tmp_path / 'input.npy'}",
            "-o",
            out,
        )
        assert result.returncode == 0, result.stderr
        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        got = session.run(None, {"input": ref["in__input"]})
        for value, name in zip(got, outputs):
            want = ref[f"out__{name}"]
            span = max(float(want.max() - want.min()), 1e-6)
            assert float(np.abs(value - want).max()) <= 1e-4 * span, (ref_path.name, name)


@pytest.mark.parametrize("model_file", _model_files(), ids=lambda p: str(p.relative_to(SHARED)))
def test_every_shared_model_file_gets_an_answer_not_a_crash(model_file: Path, tmp_path: Path) -> None:
    """inspect and convert of any real model file: success, or one clear line with a documented exit code."""
    for args in (("inspect", model_file), ("convert", model_file, "-o", tmp_path / "out.onnx", "--no-verify")):
        result = run_edgecc(*args)
        assert result.returncode in (0, 2, 3, 4, 6), (args, result.stderr)
        assert "Traceback" not in result.stderr
        if result.returncode != 0:
            errors = [line for line in result.stderr.splitlines() if line.startswith("edgecc: error:")]
            assert len(errors) == 1, result.stderr
            assert not (tmp_path / "out.onnx").exists()
