"""The share of a compiled model the accelerator runs (manifest `offload`, edgecc.pipeline.offload): nodes and MACs
per device, the warning under 50 % of the MACs and `--min-offload` as an error that writes nothing. Oracles: the
placement the manifest records node by node, onnx's shape inference for the MACs, and the real Vela for Ethos-U."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgecc.modelinfo import describe_onnx
from edgecc.pipeline.offload import LOW_OFFLOAD
from tests.conftest import run_edgecc
from tests.legacy_models import sample_input, ultraface_like


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def _consistent(manifest: dict) -> None:
    offload = manifest["offload"]
    placed: dict[str, int] = {}
    for entry in manifest["placement"]:
        device = entry["device"] + (" (vendor CPU fallback)" if entry.get("vendor_fallback") else "")
        placed[device] = placed.get(device, 0) + 1
    assert {d["device"]: d["nodes"] for d in offload["devices"]} == placed
    assert offload["nodes"] == len(manifest["placement"])
    assert offload["macs"] == sum(d["macs"] for d in offload["devices"])
    assert abs(sum(d["node_share"] for d in offload["devices"]) - 1.0) < 1e-3


def test_ethos_u_runs_every_mac_of_a_detector_and_says_so(tmp_path: Path) -> None:
    legacy = ultraface_like(tmp_path / "detector.onnx")
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    for seed in range(4):
        np.save(calibration / f"{seed}.npy", sample_input(seed))
    bundle = tmp_path / "detector.edgecc"
    result = run_edgecc("compile", legacy, "--target", "ethos-u55-128", "--calibration", f"input={calibration}", "-o", bundle)
    assert result.returncode == 0, result.stderr
    manifest = _manifest(bundle)
    _consistent(manifest)
    offload = manifest["offload"]
    assert offload["on_target"]["precisions"] == ["int8"]
    assert offload["on_target"]["mac_share"] == 1.0  # every Conv on the NPU (Vela reports no fallback for them)
    assert offload["macs"] == describe_onnx(onnx.load(str(legacy))).macs  # BatchNorm folding adds no MACs
    assert "offload: ethos-u55-128 runs" in result.stderr and "100.0% of" in result.stderr
    assert "runs only" not in result.stderr


@pytest.fixture
def untakeable(tmp_path: Path) -> Path:
    """A float model of Erf and Sin only: no op of it is on hisilicon-npu's list."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 4, 4])
    graph = helper.make_graph(
        [helper.make_node("Erf", ["x"], ["e"], name="erf"), helper.make_node("Sin", ["e"], ["y"], name="sin")], "g", [x], [y]
    )
    path = tmp_path / "untakeable.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_an_accelerator_that_gets_nothing_is_warned_about(untakeable: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "cpu_only.edgecc"
    result = run_edgecc("compile", untakeable, "--target", "hisilicon-npu", "-o", bundle, "--json")
    assert result.returncode == 0, result.stderr
    offload = result.json()["offload"]
    assert offload["on_target"]["nodes"] == 0 and offload["macs"] == 0
    assert f"under {100 * LOW_OFFLOAD:.0f}%" in result.stderr
    _consistent(_manifest(bundle))


def test_min_offload_is_exit_5_and_writes_nothing(untakeable: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "refused.edgecc"
    result = run_edgecc("compile", untakeable, "--target", "hisilicon-npu", "--min-offload", "0.5", "-o", bundle)
    assert result.returncode == 5, result.stderr
    assert "below --min-offload 50.0%" in result.stderr and "Traceback" not in result.stderr
    assert not bundle.exists()
    existing = tmp_path / "existing.edgecc"  # an earlier bundle at the same path is kept as it was
    assert run_edgecc("compile", untakeable, "--target", "cpu", "-o", existing).returncode == 0
    before = (existing / "manifest.json").read_bytes()
    again = run_edgecc("compile", untakeable, "--target", "hisilicon-npu", "--min-offload", "0.5", "-o", existing)
    assert again.returncode == 5 and (existing / "manifest.json").read_bytes() == before


def test_the_cpu_target_is_never_warned(untakeable: Path, tmp_path: Path) -> None:
    result = run_edgecc("compile", untakeable, "--target", "cpu", "--min-offload", "1", "-o", tmp_path / "cpu.edgecc")
    assert result.returncode == 0, result.stderr
    assert "runs only" not in result.stderr
