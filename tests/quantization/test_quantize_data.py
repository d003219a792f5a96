"""Calibration loaders (images, .npz/.npy dirs, one .npz, module:function, random) and bad calibration input."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import onnx
import pytest

from tests.conftest import Scratch, assert_clean_failure, make_conv_onnx
from tests.quantization.helpers import run_quantize
from tests.quantization.models import digits_data, make_cle_model


def _write_images(folder, count=12, size=16):
    import cv2

    folder.mkdir()
    x, _ = digits_data()
    for i in range(count):
        image = cv2.resize((x[i, 0] * 255).astype(np.uint8), (size, size), interpolation=cv2.INTER_LINEAR)
        assert cv2.imwrite(str(folder / f"img{i}.png"), image)
    return folder


def _ok(result):
    assert result.returncode == 0, result.stderr
    return result


def test_image_directory_with_normalisation(digits, tmp_path):
    images = _write_images(tmp_path / "images")
    out, report = tmp_path / "q.onnx", tmp_path / "q.json"
    _ok(run_quantize(digits.model, "-o", out, "--calibration", images, "--mean", "0.0", "--std", "1.0", "--report", report, "-q"))
    data = json.loads(report.read_text())
    assert data["calibration"].startswith("12 images") and data["outputs"][0]["cosine"] > 0.99


def test_image_layout_and_size_options(tmp_path):
    images = tmp_path / "rgb"
    images.mkdir()
    import cv2

    rng = np.random.default_rng(0)
    for i in range(6):
        cv2.imwrite(str(images / f"{i}.jpg"), rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))
    model = make_cle_model(tmp_path / "m.onnx")  # N x 3 x 12 x 12
    out = tmp_path / "q.onnx"
    _ok(
        run_quantize(
            model,
            "-o",
            out,
            "--calibration",
            images,
            "--mean",
            "0.485,0.456,0.406",
            "--std",
            "0.229,0.224,0.225",
            "--layout",
            "nchw",
            "--size",
            "12",
            "--bgr",
            "-q",
        )
    )
    assert out.exists()


def test_npz_and_npy_directories_and_single_npz(digits, tmp_path):
    x, _ = digits_data()
    npz_dir, npy_dir = tmp_path / "npz", tmp_path / "npy"
    npz_dir.mkdir()
    npy_dir.mkdir()
    for i in range(10):
        np.savez(npz_dir / f"s{i}.npz", x=x[i : i + 1])
        np.save(npy_dir / f"s{i}.npy", x[i : i + 1])
    single = tmp_path / "all.npz"
    np.savez(single, x=x[:10])  # leading axis = samples of batch 1
    for source in (npz_dir, npy_dir, single):
        out, report = tmp_path / f"{source.stem}.onnx", tmp_path / f"{source.stem}.json"
        _ok(run_quantize(digits.model, "-o", out, "--calibration", source, "--report", report, "--json"))
        data = json.loads(report.read_text())
        assert data["calibration_samples"] + data["evaluation_samples"] == 10


def test_module_function(digits, tmp_path):
    (tmp_path / "calibdata.py").write_text(
        textwrap.dedent("""
        from tests.quantization.models import digits_data

        def feeds():
            x, _ = digits_data()
            for i in range(8):
                yield {"x": x[i : i + 1]}
    """)
    )
    out = tmp_path / "q.onnx"
    import tests

    root = str(__import__("pathlib").Path(tests.__file__).parents[1])
    _ok(run_quantize(digits.model, "-o", out, "--calibration", "calibdata:feeds", "-q", cwd=tmp_path, env={"PYTHONPATH": root}))
    assert out.exists()


def test_random_calibration_warns(digits, tmp_path):
    out = tmp_path / "q.onnx"
    result = _ok(run_quantize(digits.model, "-o", out, "--calibration", "random"))
    assert "warning" in result.stderr and "random" in result.stderr


def _bad(result, out, *words):
    assert result.returncode == 3, (result.returncode, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("edgecc: error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in errors[0], errors[0]
    assert not out.exists()


def test_bad_calibration_inputs(digits, tmp_path):
    x, _ = digits_data()
    out = tmp_path / "q.onnx"
    wrong_shape = tmp_path / "shape.npz"
    np.savez(wrong_shape, x=np.zeros((4, 1, 1, 9, 9), np.float32))
    _bad(run_quantize(digits.model, "-o", out, "--calibration", wrong_shape), out, "shape.npz", "'x'", "shape")
    wrong_dtype = tmp_path / "dtype.npz"
    np.savez(wrong_dtype, x=(x[:4] * 16).astype(np.int64))
    _bad(run_quantize(digits.model, "-o", out, "--calibration", wrong_dtype), out, "dtype.npz", "int64")
    wrong_name = tmp_path / "name.npz"
    np.savez(wrong_name, image=x[:4])
    _bad(run_quantize(digits.model, "-o", out, "--calibration", wrong_name), out, "name.npz", "'image'", "not a model input")
    empty = tmp_path / "empty"
    empty.mkdir()
    _bad(run_quantize(digits.model, "-o", out, "--calibration", empty), out, "empty", "holds no images")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    _bad(run_quantize(digits.model, "-o", out, "--calibration", broken), out, "a.png", "cannot be decoded")


def test_model_without_float_weights(digits, tmp_path):
    quantized = tmp_path / "int8.onnx"
    _ok(run_quantize(digits.model, "-o", quantized, "--calibration", digits.calibration, "-q"))
    out = tmp_path / "again.onnx"
    _bad(run_quantize(quantized, "-o", out, "--calibration", digits.calibration), out, "int8.onnx", "no float weights")
    assert onnx.load(str(quantized)).graph.node


@pytest.mark.parametrize(
    "kind, method",
    [("nan", "minmax"), ("inf", "entropy"), ("huge", "entropy"), ("huge", "percentile"), ("huge", "mse")],
)
def test_calibration_data_must_be_finite_and_bounded(scratch: Scratch, kind, method):
    """NaN/inf were calibrated into a model (exit 0); 3e38 crashed the histogram calibrators (IndexError, exit 1)."""
    make_conv_onnx(scratch.files / "cnn.onnx")
    x = np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32)
    x[1, 0, 2, 3] = {"nan": np.nan, "inf": np.inf, "huge": 3e38}[kind]
    data = scratch.files / f"{kind}.npz"
    np.savez(data, x=x)
    before = scratch.snapshot()
    out = scratch.files / "q.onnx"
    result = scratch.run("quantize", scratch.files / "cnn.onnx", "-o", out, "--calibration", data, "--method", method)
    line = assert_clean_failure(result, 3, data.name, "'x'")
    assert ("must be finite" if kind != "huge" else "beyond the calibration bound") in line
    assert scratch.snapshot() == before and not out.exists()
    scratch.assert_nothing_left()
