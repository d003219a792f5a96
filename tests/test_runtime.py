"""The bundle runtime: Python API, `edgecc run` on bundles and models, benchmarks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgecc.ortrun import OrtRunner
from edgecc.runtime import load
from tests.targets.helpers import mixed_model, run_cmd


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("rt")
    model = mixed_model(root / "mixed.onnx")
    fp32 = root / "fp32.edgecc"  # the GPU in fp32: several partitions, numerics must be exact
    result = run_cmd("compile", model, "--target", "mali-gpu", "--precision", "fp32", "-o", fp32)
    assert result.returncode == 0, result.stderr
    x = np.random.default_rng(3).standard_normal((1, 3, 96, 96)).astype(np.float32)
    np.save(root / "x.npy", x)
    return {"model": model, "fp32": fp32, "x": root / "x.npy"}


def test_python_api_matches_the_float_model_across_partitions(built: dict[str, Path]) -> None:
    runner = load(built["fp32"])
    assert len(runner.partitions) >= 3 and {p["device"] for p in runner.partitions} == {"mali-gpu", "cpu"}
    x = np.load(built["x"])
    got = runner.run({"x": x})
    expected = OrtRunner(built["model"]).run({"x": x})
    assert list(got) == ["logits"]
    np.testing.assert_allclose(got["logits"], expected["logits"], rtol=1e-5, atol=1e-5)


def test_run_command_writes_outputs_keyed_by_output_name(built: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.npz"
    result = run_cmd("run", built["fp32"], "--data", f"x={built['x']}", "-o", out)
    assert result.returncode == 0, result.stderr
    with np.load(out) as data:
        assert data.files == ["logits"]
        np.testing.assert_array_equal(data["logits"], load(built["fp32"]).run({"x": np.load(built["x"])})["logits"])
    plain = run_cmd("run", built["model"], "--data", f"x={built['x']}", "-o", tmp_path / "plain.npz")
    assert plain.returncode == 0, plain.stderr
    with np.load(tmp_path / "plain.npz") as a, np.load(out) as b:
        np.testing.assert_allclose(a["logits"], b["logits"], rtol=1e-5, atol=1e-5)


def test_run_without_data_uses_the_reference_inputs(built: dict[str, Path]) -> None:
    runner = load(built["fp32"])
    inputs, outputs = runner.reference()
    assert inputs and len(inputs) == len(outputs)
    np.testing.assert_allclose(runner.run(inputs[0])["logits"], outputs[0]["logits"], rtol=1e-5, atol=1e-5)
    result = run_cmd("run", built["fp32"], "--json")
    assert result.returncode == 0 and result.json()["inputs_from"] == "bundle reference inputs"


def test_benchmark_reports_percentiles_and_bytes_moved(built: dict[str, Path]) -> None:
    result = run_cmd("run", built["fp32"], "--benchmark", "5", "--json")
    assert result.returncode == 0, result.stderr
    bench = result.json()["benchmark"]
    assert bench["runs"] == 5 and set(bench["total_ms"]) >= {"p50", "p90", "p99"}
    assert len(bench["partitions"]) >= 3 and all(p["p50"] > 0 for p in bench["partitions"])
    assert bench["bytes_between_partitions"] > 0
    human = run_cmd("run", built["fp32"], "--benchmark", "3")
    assert human.returncode == 0 and "p99" in human.stderr and "bytes moved between partitions" in human.stderr


def test_bad_feeds_and_missing_bundle(built: dict[str, Path], tmp_path: Path) -> None:
    np.save(tmp_path / "wrong.npy", np.zeros((1, 3, 8, 8), np.float32))
    wrong = run_cmd("run", built["fp32"], "--data", f"x={tmp_path / 'wrong.npy'}")
    assert wrong.returncode == 3 and "96" in wrong.stderr  # data that does not fit the model: exit 3
    missing = run_cmd("run", tmp_path / "nope.edgecc")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
