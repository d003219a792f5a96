"""Models below opset 13 (PyTorch 1.x exports at opset 9/11) are raised to opset 13 before quantising, said in the
report, never refused: before, onnxruntime's quantiser upgraded them to 11 only and wrote per-channel
DequantizeLinear nodes with an `axis` that opset 11 lacks (the model would not load: exit 3). The oracle is
onnxruntime on the float file; the opset-9 model then compiles for Ethos-U55 with the real Vela (the manifest's
`preparation` records the opset raise and the folding)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgecc.onnxutil import default_opset
from edgecc.opset import convert_opset
from edgecc.quantization import QuantOptions, QuantScheme, quantize_model
from edgecc.verify import compute_metrics, tolerance_for
from tests.conftest import run_edgecc
from tests.legacy_models import sample_input, ultraface_like
from tests.passes.helpers import ort_run


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ultraface_like(tmp_path_factory.mktemp("legacy") / "ultraface_like_opset9.onnx")


@pytest.mark.parametrize("opset", [9, 11])
def test_models_below_opset_13_are_raised_and_quantised(legacy: Path, opset: int) -> None:
    model = onnx.load(str(legacy))
    if opset != 9:
        model = convert_opset(model, opset)
    feeds = [{"input": sample_input(seed)} for seed in range(8)]
    scheme = QuantScheme(precision="int8", per_channel=True)
    quantised, report = quantize_model(model, scheme, feeds, QuantOptions(mode="static", holdout=0.25), name="legacy")
    assert default_opset(quantised) == 13
    assert any(f"opset {opset} raised to 13" in note for note in report.notes)
    assert any(n.op_type == "DequantizeLinear" and any(a.name == "axis" for a in n.attribute) for n in quantised.graph.node)
    check = {"input": sample_input(99)}
    for expected, got in zip(ort_run(model, check), ort_run(quantised, check)):
        metrics = compute_metrics("out", expected, got, tolerance_for("int8"))
        assert metrics.sqnr_db > 25, metrics


def test_an_opset_9_model_compiles_for_ethos_u55_on_the_npu(legacy: Path, tmp_path: Path) -> None:
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    for seed in range(4):
        np.save(calibration / f"{seed}.npy", sample_input(seed))
    bundle = tmp_path / "legacy.edgecc"
    result = run_edgecc(
        "compile", legacy, "--target", "ethos-u55-128", "--calibration", f"input={calibration}", "-o", bundle, "--json"
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads((bundle / "manifest.json").read_text())
    placed = {p["device"]: p for p in manifest["partitions"]}
    assert "ethos-u55-128" in placed, manifest["partitions"]
    assert manifest["verification"]["passed"] is True
    preparation = manifest["preparation"]  # what compile did before placing: the opset raise, BatchNorm folding
    assert preparation["opset"]["from"] == 9 and preparation["opset"]["to"] == 13
    assert preparation["rewrites"]["constant-initializer-inputs"] == 39
    assert preparation["rewrites"]["fold-batchnorm"] == 7
    assert preparation["nodes_after"] < preparation["nodes_before"]
