"""`edgecc bench` end to end: real models, sane numbers, result documents, baselines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SAMPLES, make_conv_onnx, make_mlp_onnx, run_edgecc

CIFAR10_CAT = 3  # CIFAR-10 class index of "cat": the true label of the sample's reference image


@pytest.fixture(scope="module")
def resnet20(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The real ResNet-20 converted by edgecc, and labelled evaluation data made from the real CIFAR-10 cat image."""
    folder = tmp_path_factory.mktemp("resnet20")
    model = folder / "resnet20.onnx"
    result = run_edgecc(
        "convert",
        SAMPLES / "pytorch" / "resnet20.py:resnet20",
        SAMPLES / "models" / "resnet20_cifar10" / "resnet20-12fca82f.th",
        "--input",
        "input:1x3x32x32",
        "--no-verify",
        "-o",
        model,
    )
    assert result.returncode == 0, result.stderr
    with np.load(SAMPLES / "models" / "resnet20_cifar10" / "ref" / "cat_32x32.npz") as ref:
        image = ref["in__input"]
    rng = np.random.default_rng(0)
    images = np.concatenate([image, image[..., ::-1]] + [image + rng.normal(0, 0.05, image.shape) for _ in range(2)]).astype(
        np.float32
    )
    evaluation = folder / "eval.npz"
    np.savez(evaluation, input=images, labels=np.full(len(images), CIFAR10_CAT, dtype=np.int64))
    return model, evaluation


def _check_record(record: dict) -> None:
    measured = record["latency"]["measured"]
    assert 0 < measured["min_ms"] <= measured["p50_ms"] <= measured["p90_ms"] <= measured["p99_ms"]
    assert measured["throughput_per_s"] > 0 and measured["noise_ms"] >= 0
    assert len(measured["repeat_p50_ms"]) == measured["repeats"]
    assert measured["source"].startswith("measured")
    estimated = record["latency"]["estimated"]
    assert estimated["source"].startswith("estimated")
    assert estimated["latency_ms"] > 0 and estimated["cpu_latency_ms"] > 0 and estimated["speedup_vs_cpu"] > 0
    memory = record["memory"]
    assert memory["peak_rss_bytes"] > 10 * 2**20 and memory["artifact_bytes"] > 0


def test_bench_resnet20_on_targets_with_labels(resnet20: tuple[Path, Path], tmp_path: Path) -> None:
    model, evaluation = resnet20
    out = tmp_path / "bench.json"
    result = run_edgecc(
        "bench",
        model,
        "--target",
        "cpu",
        "--target",
        "hisilicon-npu",
        "--eval",
        evaluation,
        "--runs",
        "10",
        "--repeats",
        "3",
        "-o",
        out,
        "--json",
    )
    assert result.returncode == 0, result.stderr
    printed = result.json()
    document = json.loads(out.read_text())
    assert printed["records"] == document["records"]
    assert document["schema_version"] == 2 and document["kind"] == "edgecc.bench"
    assert document["machine"]["cores"] >= 1 and document["packages"]["onnxruntime"]
    assert [r["target"] for r in document["records"]] == ["cpu", "hisilicon-npu"]
    cpu, npu = document["records"]
    for record in (cpu, npu):
        _check_record(record)
    assert cpu["precision"] == "fp32" and npu["precision"] == "int8"
    assert cpu["accuracy"]["cosine_min"] > 0.99999  # fp32 on the CPU: the float model itself
    assert npu["accuracy"]["cosine_min"] > 0.95 and npu["accuracy"]["sqnr_db_min"] > 10
    assert cpu["accuracy"]["task"]["value"] == 1.0  # the real network recognises the real cat
    assert npu["accuracy"]["task"]["reference_value"] == 1.0
    assert cpu["latency"]["estimated"]["speedup_vs_cpu"] == pytest.approx(1.0)
    assert npu["latency"]["estimated"]["speedup_vs_cpu"] > 1.0  # an NPU that runs ResNet-20's convolutions


def test_bench_bundle_uses_its_reference(tmp_path: Path) -> None:
    model = tmp_path / "cnn.onnx"
    make_conv_onnx(model, batch=1)
    bundle = tmp_path / "cnn.edgecc"
    assert run_edgecc("compile", model, "--target", "mali-gpu", "--archive", "-o", bundle).returncode == 0
    result = run_edgecc("bench", bundle, "--runs", "5", "--repeats", "2", "--json")
    assert result.returncode == 0, result.stderr
    record = result.json()["records"][0]
    _check_record(record)
    assert record["target"] == "mali-gpu" and record["precision"] == "fp16"
    assert 0.999 < record["accuracy"]["cosine_min"] <= 1.0
    assert "reference inputs" in result.json()["inputs_from"]


def _measured_finding(result) -> dict:
    return next(f for f in result.json()["comparison"]["findings"] if f["check"] == "latency:measured")


def test_bench_baseline_rerun_passes_and_real_slowdown_fails_on_a_busy_machine(tmp_path: Path, cpu_load: list) -> None:
    # every run below is made while a busy loop per core runs; the slow model is the same MLP with every layer twice
    model, doubled = tmp_path / "mlp.onnx", tmp_path / "mlp_doubled.onnx"
    make_mlp_onnx(model, layers=6)
    make_mlp_onnx(doubled, layers=12)
    base = tmp_path / "base.json"
    args = ("--runs", "3", "--repeats", "20")
    assert run_edgecc("bench", model, *args, "-o", base).returncode == 0
    document = json.loads(base.read_text())
    assert document["schema_version"] == 2 and len(document["records"][0]["latency"]["measured"]["repeat_p50_ms"]) == 20
    # the same model again, as a separate run (--baseline) and interleaved with itself (--ab): no regression
    rerun = run_edgecc("bench", model, *args, "--baseline", base, "--json")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert rerun.json()["comparison"]["regressions"] == 0
    same = run_edgecc("bench", model, *args, "--ab", model, "--json")
    assert same.returncode == 0, same.stdout + same.stderr
    assert _measured_finding(same)["threshold"]["paired"] and not _measured_finding(same)["regression"]
    # twice the work: a measured latency regression, separate and interleaved (the estimate regresses as well)
    slow = run_edgecc("bench", doubled, *args, "--baseline", base, "--json")
    assert slow.returncode == 5, slow.stderr
    assert _measured_finding(slow)["regression"], _measured_finding(slow)["message"]
    slow_ab = run_edgecc("bench", doubled, *args, "--ab", model, "--json")
    assert slow_ab.returncode == 5, slow_ab.stderr
    finding = _measured_finding(slow_ab)
    assert finding["regression"] and finding["threshold"]["paired"] and finding["threshold"]["ratio"] > 1.5, finding
    assert "interleaved A/B" in finding["message"]
    assert all(proc.poll() is None for proc in cpu_load)


def test_bench_reads_a_version_1_baseline(tmp_path: Path) -> None:
    model = tmp_path / "cnn.onnx"
    make_conv_onnx(model, batch=1)
    old = tmp_path / "old.json"
    assert run_edgecc("bench", model, "--runs", "3", "--repeats", "10", "-o", old).returncode == 0
    document = json.loads(old.read_text())
    document["schema_version"] = 1
    for record in document["records"]:  # a version 1 measurement: no timer resolution, no A/B session
        for key in ("timer_resolution_ms", "interleaved", "threads"):
            record["latency"]["measured"].pop(key)
    old.write_text(json.dumps(document))
    result = run_edgecc("bench", model, "--runs", "3", "--repeats", "10", "--baseline", old, "--json")
    assert result.returncode == 0, result.stderr
    assert "separate runs, 10/10 repeats" in _measured_finding(result)["message"]


def test_bench_baseline_of_another_schema_version_is_exit_3(tmp_path: Path) -> None:
    model = tmp_path / "cnn.onnx"
    make_conv_onnx(model, batch=1)
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"schema_version": 0, "kind": "edgecc.bench", "records": []}))
    result = run_edgecc("bench", model, "--baseline", old)
    assert result.returncode == 3
    assert "schema version 0" in result.stderr and "old.json" in result.stderr
    assert "Traceback" not in result.stderr


def test_bench_bad_input(tmp_path: Path) -> None:
    model = tmp_path / "cnn.onnx"
    make_conv_onnx(model, batch=1)
    unknown = run_edgecc("bench", model, "--target", "no-such-npu")
    assert unknown.returncode == 2 and "no-such-npu" in unknown.stderr
    evaluation = tmp_path / "eval.npz"
    np.savez(evaluation, wrong=np.zeros((2, 1, 3, 16, 16), np.float32))
    bad = run_edgecc("bench", model, "--eval", evaluation)
    assert bad.returncode == 3 and "eval.npz" in bad.stderr and "'x'" not in bad.stderr and "x" in bad.stderr
    tflite = SAMPLES / "models" / "tflite_hello_world_float" / "hello_world_float.tflite"
    framework = run_edgecc("bench", tflite)
    assert framework.returncode == 2 and "edgecc convert" in framework.stderr
