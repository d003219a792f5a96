"""One DATA value, one meaning: the same --calibration value in quantize, compile, bench and a zoo file.

Shown for a folder of samples, an .npz with a sample axis, NAME=DIR and `random`, through the installed entry point.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgecc.data import DataOptions, load_samples
from edgecc.inputs import TensorInfo
from tests.conftest import make_conv_onnx, run_edgecc

SAMPLES = 6
INPUTS = [TensorInfo("x", (1, 3, 16, 16), "float32")]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("calibration")
    make_conv_onnx(folder / "cnn.onnx", batch=1)
    data = np.random.default_rng(3).standard_normal((SAMPLES, 1, 3, 16, 16)).astype(np.float32)
    (folder / "samples").mkdir()
    for index, sample in enumerate(data):
        np.save(folder / "samples" / f"s{index}.npy", sample)
    np.savez(folder / "axis.npz", x=data)
    return folder


#: form -> the DATA value, relative to the work folder
FORMS = {"folder": "samples", "npz-sample-axis": "axis.npz", "name-dir": "x=samples", "random": "random"}


def _absolute(work: Path, value: str) -> str:
    if value == "random":
        return value
    name, sep, location = value.partition("=")
    return f"{name}={work / location}" if sep else str(work / value)


@pytest.mark.parametrize("form", ["folder", "npz-sample-axis", "name-dir"])
def test_the_forms_read_the_same_samples(work: Path, form: str) -> None:
    reference = load_samples(_absolute(work, "samples"), INPUTS).feeds
    for option in ("--calibration", "--data", "calibration"):
        feeds = load_samples(_absolute(work, FORMS[form]), INPUTS, DataOptions(option=option)).feeds
        assert len(feeds) == SAMPLES
        for got, want in zip(feeds, reference):
            np.testing.assert_array_equal(got["x"], want["x"])


@pytest.mark.slow
@pytest.mark.parametrize("form", list(FORMS))
def test_one_value_works_in_quantize_compile_bench_and_zoo(work: Path, form: str, tmp_path: Path) -> None:
    value = _absolute(work, FORMS[form])
    model = work / "cnn.onnx"
    expected = SAMPLES if form != "random" else None

    quantized = run_edgecc("quantize", model, "--calibration", value, "-o", tmp_path / "q.onnx", "--json")
    assert quantized.returncode == 0, quantized.stderr
    report = quantized.json()["report"]
    assert report["calibration_samples"] + report["evaluation_samples"] == (expected or 16)  # random: quantize's 16 samples

    bundle = tmp_path / "npu.edgecc"
    compiled = run_edgecc("compile", model, "--target", "hisilicon-npu", "--calibration", value, "-o", bundle, "--json")
    assert compiled.returncode == 0, compiled.stderr
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["reference"]["samples"] == (expected or 4)  # random: compile's --samples (4)

    bench = run_edgecc(
        "bench", model, "--target", "hisilicon-npu", "--calibration", value, "--runs", "2", "--repeats", "2", "--json"
    )
    assert bench.returncode == 0, bench.stderr
    assert bench.json()["records"][0]["target"] == "hisilicon-npu"

    zoo = tmp_path / "zoo.toml"
    zoo_value = FORMS[form].replace("samples", str(work / "samples")).replace("axis.npz", str(work / "axis.npz"))
    zoo.write_text(
        "\n".join(
            [
                "[zoo]",
                'targets = ["hisilicon-npu"]',
                "runs = 2",
                "repeats = 2",
                "samples = 4",
                "",
                "[[model]]",
                'name = "cnn"',
                f'files = ["{model}"]',
                f'calibration = "{zoo_value}"',
                "",
            ]
        )
    )
    ran = run_edgecc("zoo", "run", zoo, "-o", tmp_path / "results", "--strict", "--json")
    assert ran.returncode == 0, ran.stderr
    [pair] = list((tmp_path / "results" / "results").glob("cnn@*.json"))
    record = json.loads(pair.read_text())
    assert record["status"] == "ok", record.get("failure")
    holdout = record["record"]["quantized_model"]["holdout_samples"]
    assert holdout == round((expected or 4) * 0.25)  # the zoo holds a quarter of the calibration samples out
