"""Trained digits conv net: static int8, dynamic and fp16 keep top-1 within 1 point; every method/format runs."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from edgecc.data import DataOptions, load_samples
from edgecc.onnxutil import graph_inputs
from edgecc.ortrun import OrtRunner
from edgecc.quantization.core import QuantOptions, quantize_model
from edgecc.quantization.scheme import QuantScheme
from tests.quantization.helpers import run_quantize
from tests.quantization.models import run_model


def _accuracy(path, digits) -> float:
    return float((run_model(path, digits.test_x).argmax(1) == digits.test_y).mean())


def test_static_int8_keeps_accuracy_and_reports(digits, tmp_path):
    out, report = tmp_path / "int8.onnx", tmp_path / "q.json"
    result = run_quantize(digits.model, "-o", out, "--calibration", digits.calibration, "--report", report)
    assert result.returncode == 0, result.stderr
    float_accuracy = _accuracy(digits.model, digits)
    assert float_accuracy > 0.85
    assert abs(_accuracy(out, digits) - float_accuracy) <= 0.01
    data = json.loads(report.read_text())
    assert data["mode"] == "static" and data["settings"]["method"] == "percentile"
    (logits,) = data["outputs"]
    assert logits["cosine"] > 0.999 and logits["top1"] >= 0.95 and float(logits["sqnr_db"]) > 25
    assert data["evaluation_samples"] == 40 and data["calibration_samples"] == 160
    assert {layer["op_type"].split("+")[0] for layer in data["layers"]} >= {"Conv", "Gemm"}
    assert data["size_after"] < 0.6 * data["size_before"]
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert "quantised (int8" in result.stderr and "SQNR" in result.stderr


def test_dynamic_keeps_accuracy(digits, tmp_path):
    out = tmp_path / "dyn.onnx"
    result = run_quantize(digits.model, "-o", out, "--mode", "dynamic", "--calibration", digits.calibration, "-q")
    assert result.returncode == 0, result.stderr
    assert abs(_accuracy(out, digits) - _accuracy(digits.model, digits)) <= 0.01
    assert any(n.op_type in ("ConvInteger", "MatMulInteger", "DynamicQuantizeLinear") for n in onnx.load(str(out)).graph.node)


@pytest.mark.parametrize("io16", [False, True])
def test_fp16_keeps_accuracy(digits, tmp_path, io16):
    out = tmp_path / "fp16.onnx"
    args = ["--keep-io-float16"] if io16 else []
    result = run_quantize(digits.model, "-o", out, "--mode", "fp16", "--keep-sensitive-fp32", *args, "-q")
    assert result.returncode == 0, result.stderr
    model = onnx.load(str(out))
    want = onnx.TensorProto.FLOAT16 if io16 else onnx.TensorProto.FLOAT
    assert model.graph.input[0].type.tensor_type.elem_type == want
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    x = digits.test_x.astype(np.float16 if io16 else np.float32)
    accuracy = float((run_model(out, x).argmax(1) == digits.test_y).mean())
    assert abs(accuracy - _accuracy(digits.model, digits)) <= 0.01


VARIANTS = [
    ("minmax", "qdq", QuantScheme()),
    ("percentile", "qdq", QuantScheme()),
    ("entropy", "qdq", QuantScheme()),
    ("mse", "qoperator", QuantScheme()),
    ("minmax", "qoperator", QuantScheme(per_channel=False)),
    ("mse", "qdq", QuantScheme(activation_type="int8", symmetric_activations=True)),
    ("mse", "qdq", QuantScheme(per_channel=False, weight_type="uint8", symmetric_weights=False)),
    ("percentile", "qdq", QuantScheme(activation_type="int16", symmetric_activations=True)),
]


def test_every_method_and_format_runs(digits):
    model = onnx.load(str(digits.model))
    feeds = load_samples(str(digits.calibration), graph_inputs(model), DataOptions(option="--calibration", max_samples=60)).feeds
    reference = OrtRunner(model).run({"x": digits.test_x})["logits"].argmax(1)
    for method, fmt, scheme in VARIANTS:
        options = QuantOptions(method=method, quant_format=fmt, per_layer_report=False)
        quantized, report = quantize_model(model, scheme, feeds, options)
        got = OrtRunner(quantized).run({"x": digits.test_x})["logits"].argmax(1)
        agreement = float((got == reference).mean())
        assert agreement >= 0.95, (method, fmt, scheme, agreement)
        assert report.outputs[0].cosine > 0.99, (method, fmt, scheme)
        if fmt == "qoperator":
            assert any(n.op_type.startswith("QLinear") for n in quantized.graph.node)


def test_exclude_by_op_type_keeps_gemm_float(digits, tmp_path):
    out = tmp_path / "ex.onnx"
    result = run_quantize(digits.model, "-o", out, "--calibration", digits.calibration, "--exclude", "Gemm", "-q")
    assert result.returncode == 0, result.stderr
    model = onnx.load(str(out))
    (gemm,) = [n for n in model.graph.node if n.op_type == "Gemm"]
    inits = {t.name: t for t in model.graph.initializer}
    assert inits[gemm.input[1]].data_type == onnx.TensorProto.FLOAT
