"""The measurement core: noise, cost-model and vendor estimates, evaluation data."""

from __future__ import annotations

import copy
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgecc.data import read_evaluation
from edgecc.errors import InvalidInputError
from edgecc.inputs import TensorInfo
from edgecc.pipeline.benchmark import estimated_latency, robust_noise, vendor_latency_us
from tests.conftest import make_conv_onnx, run_edgecc


def test_robust_noise_ignores_one_outlier() -> None:
    values = [1.0, 1.1, 0.9, 1.0, 50.0]
    assert robust_noise(values) == pytest.approx(1.4826 * 0.1)
    assert robust_noise([2.0]) == 0.0


def test_vendor_latency_from_vela_style_figures() -> None:
    assert vendor_latency_us({"inferences_per_second": 250.0}) == pytest.approx(4000.0)
    assert vendor_latency_us({"cycles": 500_000, "clock_hz": 500e6}) == pytest.approx(1000.0)
    assert vendor_latency_us({"inference_time_s": 0.002}) == pytest.approx(2000.0)
    assert vendor_latency_us({"sram_bytes": 1024}) is None


def test_estimates_from_a_real_manifest_and_a_vendor_partition(tmp_path: Path) -> None:
    model = tmp_path / "cnn.onnx"
    make_conv_onnx(model, batch=1)
    bundle = tmp_path / "cnn.edgecc"
    assert run_edgecc("compile", model, "--target", "qnn-htp", "--archive", "-o", bundle).returncode == 0
    with zipfile.ZipFile(bundle) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    plain = estimated_latency(manifest)
    chosen = manifest["estimates"][manifest["estimates"]["partitioner"]]["total_us"]
    assert plain["latency_ms"] == pytest.approx(chosen / 1e3) and plain["source"].startswith("estimated: cost model")
    assert plain["speedup_vs_cpu"] == pytest.approx(manifest["estimates"]["all-cpu"]["total_us"] / chosen, rel=1e-3)
    vendor = copy.deepcopy(manifest)
    part = vendor["partitions"][0]
    part["vendor"] = {"estimates": {"inferences_per_second": 1e6 / (2 * part["estimated_us"])}}
    doubled = estimated_latency(vendor)
    assert "vendor estimator" in doubled["source"]
    assert doubled["latency_ms"] == pytest.approx((chosen + part["estimated_us"]) / 1e3, rel=1e-4)


def test_evaluation_data_checks(tmp_path: Path) -> None:
    inputs = [TensorInfo("x", (1, 3), "float32")]
    good = tmp_path / "good.npz"
    np.savez(good, x=np.ones((4, 3), np.float32), labels=np.arange(4))
    feeds, labels = read_evaluation(good, inputs)
    assert len(feeds) == 4 and feeds[0]["x"].shape == (1, 3) and list(labels) == [0, 1, 2, 3]
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.ones((4, 3), np.float32), labels=np.ones(3))
    with pytest.raises(InvalidInputError, match="'labels' must be 4 integers"):
        read_evaluation(bad, inputs)
