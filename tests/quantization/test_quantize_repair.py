"""Accuracy repair (CLE, bias correction, --accuracy-goal), integer I/O and target schemes."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import onnx

from edgecc.ortrun import OrtRunner
from tests.quantization.helpers import run_quantize
from tests.quantization.models import make_bias_model, make_cle_model, make_hostile_model


def _report(result, path):
    assert result.returncode == 0, result.stderr
    return json.loads(path.read_text())


def _sqnr(ref, got):
    return 20 * np.log10(np.linalg.norm(ref) / np.linalg.norm(ref - got))


def test_cle_rescues_per_tensor_int8(tmp_path):
    model = make_cle_model(tmp_path / "cle.onnx")
    data = tmp_path / "calib.npz"
    np.savez(data, x=np.random.default_rng(1).standard_normal((40, 1, 3, 12, 12)).astype(np.float32))
    plain = _report(
        run_quantize(model, "-o", tmp_path / "a.onnx", "--calibration", data, "--per-tensor", "--report", tmp_path / "a.json"),
        tmp_path / "a.json",
    )
    cle = _report(
        run_quantize(
            model, "-o", tmp_path / "b.onnx", "--calibration", data, "--per-tensor", "--cle", "--report", tmp_path / "b.json"
        ),
        tmp_path / "b.json",
    )
    before, after = float(plain["outputs"][0]["sqnr_db"]), float(cle["outputs"][0]["sqnr_db"])
    assert before < 10, before  # the badly scaled channels collapse
    assert after >= before + 20 and after > 25, (before, after)  # stated margin: +20 dB
    assert ["conv1", "conv2"] in cle["equalized_pairs"] and ["conv2", "conv3"] in cle["equalized_pairs"]
    # the equalised float model computes the same function: the quantised result tracks the original float model
    x = np.random.default_rng(2).standard_normal((4, 3, 12, 12)).astype(np.float32)
    ref = OrtRunner(str(model)).run({"x": x})["y"]
    assert _sqnr(ref, OrtRunner(str(tmp_path / "b.onnx")).run({"x": x})["y"]) > 25


def test_bias_correction_removes_the_weight_rounding_shift(tmp_path):
    model = make_bias_model(tmp_path / "bias.onnx")
    rng = np.random.default_rng(0)
    data = tmp_path / "calib.npz"
    np.savez(data, x=(5 + 0.5 * rng.standard_normal((40, 1, 4, 16, 16))).astype(np.float32))
    outs = {}
    for flag in ("", "--bias-correction"):
        out = tmp_path / f"m{bool(flag)}.onnx"
        result = run_quantize(model, "-o", out, "--calibration", data, "--per-tensor", *([flag] if flag else []), "-q")
        assert result.returncode == 0, result.stderr
        outs[bool(flag)] = out
    x = (5 + 0.5 * rng.standard_normal((8, 4, 16, 16))).astype(np.float32)
    ref = OrtRunner(str(model)).run({"x": x})["y"][:, 1:]
    plain = OrtRunner(str(outs[False])).run({"x": x})["y"][:, 1:]
    corrected = OrtRunner(str(outs[True])).run({"x": x})["y"][:, 1:]
    shift_plain = np.abs((plain - ref).mean(axis=(0, 2, 3))).max()
    shift_corrected = np.abs((corrected - ref).mean(axis=(0, 2, 3))).max()
    assert shift_corrected < shift_plain / 2, (shift_plain, shift_corrected)
    assert _sqnr(ref, corrected) > _sqnr(ref, plain) + 3


def test_accuracy_goal_keeps_exactly_the_hostile_layer_float(tmp_path):
    model = make_hostile_model(tmp_path / "hostile.onnx")
    data = tmp_path / "calib.npz"
    np.savez(data, x=np.random.default_rng(1).standard_normal((60, 1, 32)).astype(np.float32))
    plain = _report(
        run_quantize(model, "-o", tmp_path / "a.onnx", "--calibration", data, "--report", tmp_path / "a.json"),
        tmp_path / "a.json",
    )
    assert plain["outputs"][0]["cosine"] < 0.5  # the hostile layer destroys int8 accuracy
    worst = max(plain["layers"], key=lambda layer: float(layer["drop_db"]))
    assert worst["node"] == "fc2_hostile"
    out = tmp_path / "b.onnx"
    result = run_quantize(model, "-o", out, "--calibration", data, "--accuracy-goal", "0.99", "--report", tmp_path / "b.json")
    repaired = _report(result, tmp_path / "b.json")
    assert repaired["float_layers"] == ["fc2_hostile"]
    assert repaired["goal"]["met"] and repaired["goal"]["value"] >= 0.99
    assert repaired["outputs"][0]["cosine"] >= 0.99
    assert "fc2_hostile" in result.stderr
    quantized = onnx.load(str(out))
    inits = {t.name: t for t in quantized.graph.initializer}
    weights = {n.name: n.input[1] for n in quantized.graph.node if n.op_type == "Gemm"}
    assert inits["w2"].data_type == onnx.TensorProto.FLOAT and weights["fc2_hostile"] == "w2"
    assert weights["fc1"] not in inits and weights["fc3"] not in inits  # fed by DequantizeLinear: still int8


def test_integer_io(tmp_path, digits):
    out = tmp_path / "int_io.onnx"
    report = _report(
        run_quantize(
            digits.model, "-o", out, "--calibration", digits.calibration, "--integer-io", "--report", tmp_path / "q.json"
        ),
        tmp_path / "q.json",
    )
    model = onnx.load(str(out))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    io = report["io_quantization"]
    x_params, y_params = io["x"], io["logits"]
    x = digits.test_x
    qx = np.clip(np.round(x / x_params["scale"]) + x_params["zero_point"], 0, 255).astype(np.uint8)
    qy = OrtRunner(str(out)).run({"x": qx})["logits"]
    logits = (qy.astype(np.float32) - y_params["zero_point"]) * y_params["scale"]
    float_logits = OrtRunner(str(digits.model)).run({"x": x})["logits"]
    assert (logits.argmax(1) == float_logits.argmax(1)).mean() >= 0.97


def test_target_scheme(tmp_path, digits):
    out = tmp_path / "t.onnx"
    if importlib.util.find_spec("edgecc.targets") is None:
        result = run_quantize(digits.model, "-o", out, "--target", "qnn-htp", "--calibration", digits.calibration)
        assert result.returncode == 2 and "targets are not available" in result.stderr
        return
    from edgecc.targets import get_target

    scheme = get_target("qnn-htp").quant_scheme
    report = _report(
        run_quantize(
            digits.model, "-o", out, "--target", "qnn-htp", "--calibration", digits.calibration, "--report", tmp_path / "q.json"
        ),
        tmp_path / "q.json",
    )
    assert report["scheme"] == scheme.describe()
    assert report["settings"]["scheme"]["weight_type"] == scheme.weight_type
    assert report["outputs"][0]["cosine"] > 0.99
