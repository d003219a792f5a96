"""`edgecc compile` end to end on real models for every built-in target, mixed support, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgecc.runtime import load
from tests.targets.helpers import cat_image, convert_pnet, convert_resnet20, dynamic_model, face_image, mixed_model, run_cmd

BUILTINS = ("cpu", "mali-gpu", "qnn-htp", "hisilicon-npu")
COSINE = {"fp32": 0.999999, "fp16": 0.9999, "int8": 0.99}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "resnet20": convert_resnet20(root / "resnet20.onnx"),
        "resnet20_data": cat_image(root / "cat.npy"),
        "pnet": convert_pnet(root / "pnet.onnx"),
        "pnet_data": face_image(root / "face.npy"),
        "mixed": mixed_model(root / "mixed.onnx"),
    }


def _float_outputs(model: Path, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from edgecc.ortrun import OrtRunner

    return OrtRunner(model).run(feed)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("target", BUILTINS)
@pytest.mark.parametrize("model", ["resnet20", "pnet"])
def test_compile_run_and_verify_real_models(models: dict[str, Path], tmp_path: Path, target: str, model: str) -> None:
    data_name = {"resnet20": "x", "pnet": "data"}[model]
    data = models[f"{model}_data"]
    out = tmp_path / f"{model}.edgecc"
    result = run_cmd("compile", models[model], "--target", target, "--calibration", f"{data_name}={data}", "-o", out, "--json")
    assert result.returncode == 0, result.stderr
    doc = result.json()
    precision = doc["precision"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["target"]["name"] == target and manifest["verification"]["passed"]
    assert {p["device"] for p in manifest["partitions"]} <= {"cpu", target}
    if target != "cpu":
        assert target in {p["device"] for p in manifest["partitions"]}, "the accelerator should win on these models"
    for part in manifest["partitions"]:
        assert (out / part["artifact"]).is_file()
        assert part["precision"] == (precision if part["device"] == target else "fp32")
    est = manifest["estimates"]
    assert est["optimal"]["total_us"] <= min(est["greedy"]["total_us"], est["first-split"]["total_us"]) + 1e-6
    # the runtime reproduces the float model within the precision's tolerance on the real input
    feed = {data_name: np.load(data)}
    expected = _float_outputs(models[model], feed)
    got = load(out).run(feed)
    for name, value in expected.items():
        assert got[name].shape == value.shape and got[name].dtype == np.float32
        assert _cosine(got[name], value) >= COSINE[precision]
    if model == "resnet20":  # the real image keeps its class
        assert int(np.argmax(got["output"])) == int(np.argmax(expected["output"]))


@pytest.mark.parametrize("target", ["mali-gpu", "hisilicon-npu", "qnn-htp"])
def test_unsupported_op_in_the_middle_splits_the_graph(models: dict[str, Path], tmp_path: Path, target: str) -> None:
    out = tmp_path / "mixed.edgecc"
    result = run_cmd("compile", models["mixed"], "--target", target, "-o", out, "--json")
    assert result.returncode == 0, result.stderr
    doc = result.json()
    devices = [p["device"] for p in doc["partitions"]]
    assert len(devices) >= 3 and devices[:3] == [target, "cpu", target]
    erf = next(p for p in doc["placement"] if p["node"] == "erf")
    assert erf["device"] == "cpu" and "Erf is not in" in erf["reason"]
    transfers = doc["transfers"]
    assert any(t["tensor"] == "c2" for t in transfers) and any(t["tensor"] == "e" for t in transfers)
    assert "estimated latency by partitioner" not in result.stderr  # --json: nothing but the document
    human = run_cmd("compile", models["mixed"], "--target", target, "-o", tmp_path / "again.edgecc")
    assert human.returncode == 0 and "first-split" in human.stderr and "greedy" in human.stderr


def test_partitioner_choice_and_partition_limit(models: dict[str, Path], tmp_path: Path) -> None:
    first = run_cmd(
        "compile",
        models["mixed"],
        "--target",
        "hisilicon-npu",
        "--partitioner",
        "first-split",
        "-o",
        tmp_path / "a.edgecc",
        "--json",
    )
    assert first.returncode == 0, first.stderr
    assert [p["device"] for p in first.json()["partitions"]] == ["hisilicon-npu", "cpu"]
    limited = run_cmd(
        "compile", models["mixed"], "--target", "hisilicon-npu", "--max-partitions", "2", "-o", tmp_path / "b.edgecc", "--json"
    )
    assert limited.returncode == 0, limited.stderr
    assert len(limited.json()["partitions"]) <= 2


def test_archive_is_deterministic_and_runs(models: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "1").mkdir()
    (tmp_path / "2").mkdir()
    a, b = tmp_path / "1" / "m.edgecc", tmp_path / "2" / "m.edgecc"
    for out in (a, b):
        result = run_cmd("compile", models["mixed"], "--target", "mali-gpu", "--archive", "-o", out)
        assert result.returncode == 0, result.stderr
    assert a.is_file() and a.read_bytes() == b.read_bytes()
    ran = run_cmd("run", a, "--json")
    assert ran.returncode == 0, ran.stderr
    assert not list(tmp_path.glob("*/.*"))  # no staging leftovers


def test_unknown_target_lists_the_known_ones(models: dict[str, Path], tmp_path: Path) -> None:
    result = run_cmd("compile", models["mixed"], "--target", "tpu9000", "-o", tmp_path / "x.edgecc")
    assert result.returncode == 2
    assert "unknown target 'tpu9000'" in result.stderr and "hisilicon-npu" in result.stderr and "mali-gpu" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "x.edgecc").exists()


def test_dynamic_shapes_on_a_static_target_name_the_input(tmp_path: Path) -> None:
    model = dynamic_model(tmp_path / "dyn.onnx")
    result = run_cmd("compile", model, "--target", "hisilicon-npu", "-o", tmp_path / "x.edgecc")
    assert result.returncode == 4
    assert "'x'" in result.stderr and "static shapes" in result.stderr and "--input x:" in result.stderr
    assert not (tmp_path / "x.edgecc").exists()
    fixed = run_cmd("compile", model, "--target", "hisilicon-npu", "--input", "x:1x3x96x96", "-o", tmp_path / "y.edgecc")
    assert fixed.returncode == 0, fixed.stderr
    on_cpu = run_cmd("compile", model, "--target", "cpu", "-o", tmp_path / "z.edgecc")
    assert on_cpu.returncode == 0, on_cpu.stderr


def test_numerics_outside_tolerance_exit_5_and_leave_nothing(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "strict.edgecc"
    result = run_cmd("compile", models["mixed"], "--target", "hisilicon-npu", "--min-cosine", "0.99999999", "-o", out)
    assert result.returncode == 5, result.stderr
    assert "tolerance" in result.stderr and not out.exists() and not list(tmp_path.glob(".*"))
