"""The real Caffe models in ../shared/models/caffe (run by `make test-shared`): refs from Caffe itself and OpenCV per layer.

lenet_mnist has no licence file, so it stays in the shared folder; mtcnn_pnet (MIT) is also in samples/.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from edgecc.converters.options import ConvertOptions
from edgecc.inputs import InputSpec
from tests.conftest import REPO, run_edgecc
from tests.converters.caffe.helpers import compare_with_opencv

pytestmark = pytest.mark.shared

SHARED = Path(os.environ.get("EDGECC_SHARED_MODELS", REPO.parent / "shared" / "models"))

MODELS = [
    ("lenet_mnist", "lenet.prototxt", "lenet_iter_10000.caffemodel", "data", ["prob"]),
    ("mtcnn_pnet", "det1.prototxt", "det1.caffemodel", "data", ["prob1", "conv4-2"]),
]


@pytest.mark.parametrize(("folder", "prototxt", "caffemodel", "input_name", "outputs"), MODELS)
def test_caffe_models_match_every_reference(
    folder: str, prototxt: str, caffemodel: str, input_name: str, outputs: list[str], tmp_path: Path
) -> None:
    model_dir = SHARED / "caffe" / folder
    refs = sorted((model_dir / "ref").glob("*.npz"))
    assert refs, f"no reference files in {model_dir / 'ref'}"
    for ref_path in refs:
        ref = np.load(ref_path)
        data = ref[f"in__{input_name}"]
        np.save(tmp_path / "input.npy", data)
        out = tmp_path / f"{folder}_{ref_path.stem}.onnx"
        shape = "x".join(map(str, data.shape))
        result = run_edgecc(
            "convert",
            model_dir / prototxt,
            model_dir / caffemodel,
            "--input",
            f"{input_name}:{shape}",
            "--data",
            f"{input_name}={tmp_path / 'input.npy'}",
            "-o",
            out,
            "--json",
        )
        assert result.returncode == 0, result.stderr
        assert result.json()["verification"]["passed"]
        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {input_name: data})))
        for name in outputs:
            want = ref[f"out__{name}"]
            span = max(float(want.max() - want.min()), 1e-6)
            assert float(np.abs(got[name] - want).max()) <= 1e-4 * span, (ref_path.name, name)
        if folder == "lenet_mnist":
            assert list(got["prob"].argmax(axis=1)) == list(want.argmax(axis=1))


@pytest.mark.parametrize(("folder", "prototxt", "caffemodel", "input_name", "outputs"), MODELS)
def test_caffe_models_match_opencv_layer_by_layer(
    folder: str, prototxt: str, caffemodel: str, input_name: str, outputs: list[str]
) -> None:
    model_dir = SHARED / "caffe" / folder
    ref = np.load(min((model_dir / "ref").glob("*.npz")))
    data = ref[f"in__{input_name}"]
    options = ConvertOptions(framework="caffe", inputs=(InputSpec(input_name, tuple(data.shape)),))
    errors = compare_with_opencv([model_dir / prototxt, model_dir / caffemodel], {input_name: data}, options=options)
    assert set(outputs) <= set(errors) and len(errors) >= 6
