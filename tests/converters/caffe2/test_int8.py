"""Quantised (Int8) Caffe2 nets: QDQ ONNX that keeps every scale; results within one quantisation step of
numpy references of the documented Int8 semantics (dequantise, float op, requantise with round-half-even)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.converters.caffe2 import reference as ref
from tests.converters.caffe2.netdefs import op, run_net

RNG = np.random.default_rng(77)


def q_fill(name: str, values: np.ndarray, scale: float, zero: int) -> object:
    return op(
        "Int8GivenTensorFill",
        [],
        [name],
        shape=list(values.shape),
        values=values.astype(np.uint8).tobytes(),
        Y_scale=scale,
        Y_zero_point=zero,
    )


def bias_fill(name: str, values: np.ndarray, scale: float) -> object:
    return op(
        "Int8GivenIntTensorFill",
        [],
        [name],
        shape=list(values.shape),
        values=[int(v) for v in values],
        Y_scale=scale,
        Y_zero_point=0,
    )


def within_one_step(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == np.uint8 and got.shape == want.shape, (got.dtype, got.shape, want.shape)
    diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
    assert diff.max() <= 1, f"{int(diff.max())} quantisation steps off ({int((diff > 0).sum())} of {diff.size} values differ)"


def nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def nchw(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


X_SCALE, X_ZERO = 0.05, 120
W_SCALE, W_ZERO = 0.02, 128


@pytest.fixture
def conv_net_parts():
    x = RNG.uniform(-3, 3, (1, 6, 6, 4)).astype(np.float32)  # NHWC
    wq = RNG.integers(90, 170, (8, 3, 3, 4)).astype(np.uint8)  # [M, kH, kW, C]
    bq = RNG.integers(-500, 500, 8).astype(np.int32)
    return x, wq, bq


@pytest.mark.parametrize("relu", [False, True])
def test_int8_quantize_conv_dequantize(relu: bool, conv_net_parts, tmp_path: Path) -> None:
    x, wq, bq = conv_net_parts
    y_scale, y_zero = 0.4, 100
    conv_type = "Int8ConvRelu" if relu else "Int8Conv"
    ops = [
        op("Int8Quantize", ["x"], ["xq"], Y_scale=X_SCALE, Y_zero_point=X_ZERO),
        op(conv_type, ["xq", "w", "b"], ["yq"], kernel=3, pad=1, stride=2, order="NHWC", Y_scale=y_scale, Y_zero_point=y_zero),
        op("Int8Dequantize", ["yq"], ["y"]),
    ]
    init = [q_fill("w", wq, W_SCALE, W_ZERO), bias_fill("b", bq, X_SCALE * W_SCALE)]
    got = run_net(tmp_path, ops, {}, {"x": x}, ["xq", "yq", "y"], init_ops=init)
    model = run_net.last_model  # type: ignore[attr-defined]
    within_one_step(got["xq"], ref.quantize(x, X_SCALE, X_ZERO))
    xf = ref.dequantize(got["xq"], X_SCALE, X_ZERO)
    wf = ref.dequantize(wq, W_SCALE, W_ZERO).transpose(0, 3, 1, 2)
    real = ref.conv2d(nchw(xf), wf, bq * X_SCALE * W_SCALE, stride=(2, 2), pads=(1, 1, 1, 1))
    if relu:
        real = np.maximum(real, 0)
    want = ref.quantize(nhwc(real), y_scale, y_zero)
    within_one_step(got["yq"], want)
    np.testing.assert_allclose(got["y"], ref.dequantize(got["yq"], y_scale, y_zero), rtol=1e-6)
    scalars = [float(onnx.numpy_helper.to_array(t)) for t in model.graph.initializer if not t.dims]
    for scale in (X_SCALE, W_SCALE, y_scale):  # the QDQ model keeps Caffe2's scales
        assert any(abs(value - np.float32(scale)) < 1e-9 for value in scalars), scale
    assert {n.op_type for n in model.graph.node} >= {"QuantizeLinear", "DequantizeLinear", "Conv"}


def test_int8_fc_relu_pool_add_concat_softmax(tmp_path: Path) -> None:
    """A quantised net with every remaining Int8 op; each op is checked on the uint8 inputs it actually got."""
    x = RNG.uniform(-2, 2, (1, 4, 4, 3)).astype(np.float32)
    fc_w = RNG.integers(60, 200, (5, 24)).astype(np.uint8)
    fc_b = RNG.integers(-200, 200, 5).astype(np.int32)
    s = {
        "x": (0.03, 128),
        "relu": (0.03, 128),
        "max": (0.03, 128),
        "avg": (0.02, 110),
        "add": (0.05, 100),
        "sum": (0.06, 90),
        "cat": (0.06, 90),
        "fc": (0.1, 120),
        "soft": (1 / 256, 0),
    }
    ops = [
        op("Int8Quantize", ["x"], ["xq"], Y_scale=s["x"][0], Y_zero_point=s["x"][1]),
        op("Int8Relu", ["xq"], ["relu"], Y_scale=s["relu"][0], Y_zero_point=s["relu"][1]),
        op("Int8MaxPool", ["relu"], ["max"], kernel=2, stride=2, Y_scale=s["max"][0], Y_zero_point=s["max"][1]),
        op("Int8AveragePool", ["xq"], ["avg"], kernel=2, stride=2, Y_scale=s["avg"][0], Y_zero_point=s["avg"][1]),
        op("Int8Add", ["max", "avg"], ["add"], Y_scale=s["add"][0], Y_zero_point=s["add"][1]),
        op("Int8Sum", ["max", "avg", "add"], ["sum"], Y_scale=s["sum"][0], Y_zero_point=s["sum"][1]),
        op("Int8Concat", ["add", "sum"], ["cat", "cat_info"], Y_scale=s["cat"][0], Y_zero_point=s["cat"][1]),
        op("Int8FC", ["cat", "w", "b"], ["fc"], Y_scale=s["fc"][0], Y_zero_point=s["fc"][1]),
        op("Int8Softmax", ["fc"], ["soft"], Y_scale=s["soft"][0], Y_zero_point=s["soft"][1]),
        op("Int8Dequantize", ["soft"], ["prob"]),
    ]
    init = [q_fill("w", fc_w, W_SCALE, W_ZERO), bias_fill("b", fc_b, s["cat"][0] * W_SCALE)]
    names = ["xq", "relu", "max", "avg", "add", "sum", "cat", "fc", "soft", "prob"]
    got = run_net(tmp_path, ops, {}, {"x": x}, names, init_ops=init)
    f = {k: ref.dequantize(got[k], *s[k]) for k in s if k != "x"}
    f["xq"] = ref.dequantize(got["xq"], *s["x"])
    within_one_step(got["relu"], ref.quantize(np.maximum(f["xq"], 0), *s["relu"]))
    within_one_step(got["max"], ref.quantize(nhwc(ref.pool2d(nchw(f["relu"]), "max", (2, 2), (2, 2))), *s["max"]))
    within_one_step(got["avg"], ref.quantize(nhwc(ref.pool2d(nchw(f["xq"]), "avg", (2, 2), (2, 2))), *s["avg"]))
    within_one_step(got["add"], ref.quantize(f["max"] + f["avg"], *s["add"]))
    within_one_step(got["sum"], ref.quantize(f["max"] + f["avg"] + f["add"], *s["sum"]))
    within_one_step(got["cat"], ref.quantize(np.concatenate([f["add"], f["sum"]], axis=3), *s["cat"]))
    fc_real = ref.fc(f["cat"], ref.dequantize(fc_w, W_SCALE, W_ZERO), fc_b * s["cat"][0] * W_SCALE)
    within_one_step(got["fc"], ref.quantize(fc_real, *s["fc"]))
    within_one_step(got["soft"], ref.quantize(ref.softmax(f["fc"], 1), *s["soft"]))
    np.testing.assert_allclose(got["prob"], f["soft"], rtol=1e-6)


def test_int8_reshape_flatten_sigmoid(tmp_path: Path) -> None:
    x = RNG.uniform(-2, 2, (2, 3, 4)).astype(np.float32)
    ops = [
        op("Int8Quantize", ["x"], ["xq"], Y_scale=0.02, Y_zero_point=128),
        op("Int8Reshape", ["xq"], ["r"], shape=[6, 4], Y_scale=0.02, Y_zero_point=128),
        op("Int8Flatten", ["xq"], ["f"], Y_scale=0.02, Y_zero_point=128),
        op("Int8Sigmoid", ["xq"], ["g"], Y_scale=1 / 256, Y_zero_point=0),
    ]
    got = run_net(tmp_path, ops, {}, {"x": x}, ["xq", "r", "f", "g"])
    np.testing.assert_array_equal(got["r"], got["xq"].reshape(6, 4))
    np.testing.assert_array_equal(got["f"], got["xq"].reshape(2, 12))
    within_one_step(got["g"], ref.quantize(1 / (1 + np.exp(-ref.dequantize(got["xq"], 0.02, 128))), 1 / 256, 0))


def test_int8_relu_fused_variants_and_conv_transpose(tmp_path: Path) -> None:
    x = RNG.uniform(-2, 2, (1, 3, 3, 2)).astype(np.float32)  # NHWC
    a = RNG.uniform(-2, 2, (2, 6)).astype(np.float32)
    wt = RNG.integers(100, 160, (2, 2, 2, 3)).astype(np.uint8)  # ConvTranspose NHWC filter [C_in, kH, kW, C_out]
    fw = RNG.integers(100, 160, (4, 6)).astype(np.uint8)
    s = {"xq": (0.02, 128), "aq": (0.02, 128), "ct": (0.05, 128), "fc": (0.05, 10), "add": (0.04, 20), "sum": (0.05, 5)}
    ops = [
        op("Int8Quantize", ["x"], ["xq"], Y_scale=0.02, Y_zero_point=128),
        op("Int8Quantize", ["a"], ["aq"], Y_scale=0.02, Y_zero_point=128),
        op("Int8ConvTranspose", ["xq", "wt"], ["ct"], kernel=2, stride=2, Y_scale=0.05, Y_zero_point=128),
        op("Int8FCRelu", ["aq", "fw"], ["fc"], Y_scale=0.05, Y_zero_point=10),
        op("Int8AddRelu", ["aq", "aq"], ["add"], Y_scale=0.04, Y_zero_point=20),
        op("Int8SumRelu", ["aq", "aq", "aq"], ["sum"], Y_scale=0.05, Y_zero_point=5),
    ]
    init = [q_fill("wt", wt, W_SCALE, W_ZERO), q_fill("fw", fw, W_SCALE, W_ZERO)]
    got = run_net(tmp_path, ops, {}, {"x": x, "a": a}, list(s), init_ops=init)
    f = {k: ref.dequantize(got[k], *s[k]) for k in s}
    w_real = ref.dequantize(wt, W_SCALE, W_ZERO).transpose(0, 3, 1, 2)  # [C_in, C_out, kH, kW]
    within_one_step(got["ct"], ref.quantize(nhwc(ref.conv_transpose2d(nchw(f["xq"]), w_real, None, stride=(2, 2))), *s["ct"]))
    fc_real = ref.fc(f["aq"], ref.dequantize(fw, W_SCALE, W_ZERO), np.zeros(4))
    within_one_step(got["fc"], ref.quantize(np.maximum(fc_real, 0), *s["fc"]))
    within_one_step(got["add"], ref.quantize(np.maximum(2 * f["aq"], 0), *s["add"]))
    within_one_step(got["sum"], ref.quantize(np.maximum(3 * f["aq"], 0), *s["sum"]))
