"""Per-operator numeric tests: Caffe2 nets converted by edgecc and run by onnxruntime vs numpy references
written from the Caffe2 operator documentation (tests/converters/caffe2/reference.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.converters.caffe2 import reference as ref
from tests.converters.caffe2.netdefs import assert_close, op, run_net

RNG = np.random.default_rng(1234)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def nchw(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


# ----------------------------------------------------------------------------- convolution

CONV_CASES = [
    ("plain", dict(kernel=3), dict()),
    (
        "strides_pads_dilation",
        dict(kernels=[3, 3], strides=[2, 1], pads=[1, 0, 2, 1], dilations=[1, 2]),
        dict(stride=(2, 1), pads=(1, 0, 2, 1), dilation=(1, 2)),
    ),
    (
        "pad_tlbr_stride_hw",
        dict(kernel_h=3, kernel_w=2, stride_h=1, stride_w=2, pad_t=1, pad_l=0, pad_b=0, pad_r=1),
        dict(stride=(1, 2), pads=(1, 0, 0, 1)),
    ),
    (
        "single_stride_pad_dilation",
        dict(kernel=3, stride=2, pad=1, dilation=2),
        dict(stride=(2, 2), pads=(1, 1, 1, 1), dilation=(2, 2)),
    ),
]


@pytest.mark.parametrize(("case", "args", "ref_args"), CONV_CASES, ids=[c[0] for c in CONV_CASES])
def test_conv_nchw(case: str, args: dict, ref_args: dict, tmp_path: Path) -> None:
    x, w, b = (
        rand(2, 4, 9, 8),
        rand(6, 4, args.get("kernel_h", 3), args.get("kernel_w", 3 if "kernel_w" not in args else 2)),
        rand(6),
    )
    if "kernel_w" in args:
        w = rand(6, 4, 3, 2)
    got = run_net(tmp_path, [op("Conv", ["x", "w", "b"], ["y"], **args)], {"w": w, "b": b}, {"x": x}, ["y"])["y"]
    assert_close(got, ref.conv2d(x, w, b, **ref_args))


def test_conv_group_no_bias_and_legacy_same(tmp_path: Path) -> None:
    x, w = rand(1, 6, 7, 7), rand(6, 2, 3, 3)
    got = run_net(
        tmp_path, [op("Conv", ["x", "w"], ["y"], kernel=3, group=3, stride=2, legacy_pad=2)], {"w": w}, {"x": x}, ["y"]
    )["y"]
    # SAME: out = ceil(7/2) = 4, pad needed = (4-1)*2 + 3 - 7 = 2 -> 1 before, 1 after
    assert_close(got, ref.conv2d(x, w, None, stride=(2, 2), pads=(1, 1, 1, 1), group=3))


def test_conv_legacy_valid_ignores_pads(tmp_path: Path) -> None:
    x, w = rand(1, 2, 6, 6), rand(3, 2, 3, 3)
    got = run_net(tmp_path, [op("Conv", ["x", "w"], ["y"], kernel=3, pad=2, legacy_pad=1)], {"w": w}, {"x": x}, ["y"])["y"]
    assert_close(got, ref.conv2d(x, w, None))


def test_conv_nhwc(tmp_path: Path) -> None:
    x, w, b = rand(2, 4, 9, 8), rand(6, 4, 3, 3), rand(6)
    got = run_net(
        tmp_path,
        [op("Conv", ["x", "w", "b"], ["y"], kernel=3, pad=1, stride=2, order="NHWC")],
        {"w": np.ascontiguousarray(w.transpose(0, 2, 3, 1)), "b": b},
        {"x": nhwc(x)},
        ["y"],
    )["y"]
    assert_close(got, nhwc(ref.conv2d(x, w, b, stride=(2, 2), pads=(1, 1, 1, 1))))


def test_conv_transpose_with_adj(tmp_path: Path) -> None:
    x, w, b = rand(1, 3, 5, 4), rand(3, 2, 3, 3), rand(2)
    got = run_net(
        tmp_path,
        [op("ConvTranspose", ["x", "w", "b"], ["y"], kernel=3, stride=2, pad=1, adj=1)],
        {"w": w, "b": b},
        {"x": x},
        ["y"],
    )["y"]
    assert_close(got, ref.conv_transpose2d(x, w, b, stride=(2, 2), pads=(1, 1, 1, 1), adj=(1, 1)))


def test_conv_transpose_nhwc(tmp_path: Path) -> None:
    x, w = rand(1, 3, 4, 4), rand(3, 2, 2, 2)
    got = run_net(
        tmp_path,
        [op("ConvTranspose", ["x", "w"], ["y"], kernel=2, stride=2, order="NHWC")],
        {"w": np.ascontiguousarray(w.transpose(0, 2, 3, 1))},
        {"x": nhwc(x)},
        ["y"],
    )["y"]
    assert_close(got, nhwc(ref.conv_transpose2d(x, w, None, stride=(2, 2))))


# ----------------------------------------------------------------------------- fully connected


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "axis", "axis_w"),
    [
        ((4, 10), (3, 10), 1, 1),
        ((2, 3, 4, 5), (6, 60), 1, 1),
        ((2, 3, 4, 5), (6, 20), 2, 1),
        ((2, 3, 4), (6, 2, 2), 2, 1),
        ((2, 12), (2, 3, 12), 1, 2),
    ],
)
def test_fc(x_shape, w_shape, axis, axis_w, tmp_path: Path) -> None:
    x, w = rand(*x_shape), rand(*w_shape)
    n = int(np.prod(w_shape[:axis_w]))
    b = rand(n)
    args = {"axis": axis, "axis_w": axis_w} if (axis, axis_w) != (1, 1) else {}
    got = run_net(tmp_path, [op("FC", ["x", "w", "b"], ["y"], **args)], {"w": w, "b": b}, {"x": x}, ["y"])["y"]
    assert_close(got, ref.fc(x, w, b, axis, axis_w))


# ----------------------------------------------------------------------------- pooling

POOL_CASES = [
    ("max", "MaxPool", dict(kernel=3, stride=2), dict(kernel=(3, 3), stride=(2, 2))),
    (
        "max_pads",
        "MaxPool",
        dict(kernels=[2, 3], strides=[2, 1], pads=[1, 0, 1, 1]),
        dict(kernel=(2, 3), stride=(2, 1), pads=(1, 0, 1, 1)),
    ),
    ("avg_exclude_pad", "AveragePool", dict(kernel=3, stride=1, pad=1), dict(kernel=(3, 3), stride=(1, 1), pads=(1, 1, 1, 1))),
    (
        "avg_include_pad",
        "AveragePool",
        dict(kernel=3, stride=2, pad=1, count_include_pad=1),
        dict(kernel=(3, 3), stride=(2, 2), pads=(1, 1, 1, 1), count_include_pad=True),
    ),
    ("max_legacy_ceil", "MaxPool", dict(kernel=3, stride=2, legacy_pad=3), dict(kernel=(3, 3), stride=(2, 2), legacy=True)),
    (
        "max_legacy_pad",
        "MaxPool",
        dict(kernel=3, stride=2, pad=1, legacy_pad=3),
        dict(kernel=(3, 3), stride=(2, 2), pads=(1, 1, 1, 1), legacy=True),
    ),
    ("avg_legacy_ceil", "AveragePool", dict(kernel=2, stride=2, legacy_pad=3), dict(kernel=(2, 2), stride=(2, 2), legacy=True)),
    (
        "avg_legacy_pad_include",
        "AveragePool",
        dict(kernel=3, stride=2, pad=1, legacy_pad=3, count_include_pad=1),
        dict(kernel=(3, 3), stride=(2, 2), pads=(1, 1, 1, 1), legacy=True, count_include_pad=True),
    ),
]


@pytest.mark.parametrize(("case", "op_type", "args", "ref_args"), POOL_CASES, ids=[c[0] for c in POOL_CASES])
def test_pool(case, op_type, args, ref_args, tmp_path: Path) -> None:
    x = rand(2, 3, 10, 9)
    got = run_net(tmp_path, [op(op_type, ["x"], ["y"], **args)], {}, {"x": x}, ["y"])["y"]
    kind = "max" if op_type == "MaxPool" else "avg"
    assert_close(got, ref.pool2d(x, kind, **ref_args))


def test_pool_legacy_shape_matches_caffe(tmp_path: Path) -> None:
    """Caffe's ceil rounding: 10 -> ceil((10-3)/2)+1 = 5, where floor rounding gives 4."""
    x = rand(1, 1, 10, 10)
    got = run_net(tmp_path, [op("MaxPool", ["x"], ["y"], kernel=3, stride=2, legacy_pad=3)], {}, {"x": x}, ["y"])["y"]
    assert got.shape == (1, 1, 5, 5)


@pytest.mark.parametrize("op_type", ["MaxPool", "AveragePool"])
def test_pool_global_and_nhwc(op_type: str, tmp_path: Path) -> None:
    x = rand(2, 3, 5, 4)
    ops = [op(op_type, ["x"], ["g"], global_pooling=1), op(op_type, ["xh"], ["h"], kernel=2, stride=2, order="NHWC")]
    got = run_net(tmp_path, ops, {}, {"x": x, "xh": nhwc(x)}, ["g", "h"])
    reduce = np.max if op_type == "MaxPool" else np.mean
    assert_close(got["g"], reduce(x, axis=(2, 3), keepdims=True))
    assert_close(got["h"], nhwc(ref.pool2d(x, "max" if op_type == "MaxPool" else "avg", (2, 2), (2, 2))))


# ----------------------------------------------------------------------------- normalisation, activations


@pytest.mark.parametrize("order", ["NCHW", "NHWC"])
def test_spatial_bn(order: str, tmp_path: Path) -> None:
    x = rand(2, 4, 3, 3)
    scale, bias, mean = rand(4), rand(4), rand(4)
    var = np.abs(rand(4)) + 0.5
    feed = nhwc(x) if order == "NHWC" else x
    got = run_net(
        tmp_path,
        [op("SpatialBN", ["x", "s", "b", "m", "v"], ["y"], is_test=1, epsilon=1e-3, order=order)],
        {"s": scale, "b": bias, "m": mean, "v": var},
        {"x": feed},
        ["y"],
    )["y"]
    assert_close(got, ref.spatial_bn(feed, scale, bias, mean, var, 1e-3, nhwc=order == "NHWC"))


def test_lrn(tmp_path: Path) -> None:
    x = rand(2, 7, 3, 3)
    got = run_net(tmp_path, [op("LRN", ["x"], ["y", "scale"], size=5, alpha=1e-2, beta=0.75, bias=2.0)], {}, {"x": x}, ["y"])["y"]
    assert_close(got, ref.lrn(x, 5, 1e-2, 0.75, 2.0))


def test_lrn_nhwc(tmp_path: Path) -> None:
    x = rand(1, 5, 2, 3)
    got = run_net(tmp_path, [op("LRN", ["x"], ["y"], size=3, alpha=0.5, beta=0.5, order="NHWC")], {}, {"x": nhwc(x)}, ["y"])["y"]
    assert_close(got, nhwc(ref.lrn(x, 3, 0.5, 0.5, 1.0)))


UNARY = {
    "Relu": lambda x: np.maximum(x, 0),
    "Sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "Tanh": np.tanh,
    "Exp": np.exp,
    "Abs": np.abs,
    "Softsign": lambda x: x / (1 + np.abs(x)),
    "Log": lambda x: np.log(np.abs(x) + 0.1),
    "Sqrt": lambda x: np.sqrt(np.abs(x) + 0.1),
}


@pytest.mark.parametrize("op_type", sorted(UNARY))
def test_unary(op_type: str, tmp_path: Path) -> None:
    x = rand(2, 3, 4)
    feed = np.abs(x) + 0.1 if op_type in ("Log", "Sqrt") else x
    got = run_net(tmp_path, [op(op_type, ["x"], ["y"])], {}, {"x": feed}, ["y"])["y"]
    want = UNARY[op_type](x) if op_type in ("Log", "Sqrt") else UNARY[op_type](feed)
    assert_close(got, want.astype(np.float32))


def test_leaky_relu_default_and_alpha(tmp_path: Path) -> None:
    x = rand(3, 5)
    got = run_net(
        tmp_path,
        [op("LeakyRelu", ["x"], ["a"]), op("LeakyRelu", ["x"], ["b"], alpha=0.3), op("Elu", ["x"], ["c"], alpha=0.5)],
        {},
        {"x": x},
        ["a", "b", "c"],
    )
    assert_close(got["a"], np.where(x > 0, x, 0.01 * x))
    assert_close(got["b"], np.where(x > 0, x, 0.3 * x))
    assert_close(got["c"], np.where(x > 0, x, 0.5 * (np.exp(x) - 1)))


@pytest.mark.parametrize("order", ["NCHW", "NHWC"])
def test_prelu_per_channel_and_shared(order: str, tmp_path: Path) -> None:
    x, slope, shared = rand(2, 3, 4, 4), rand(3), rand(1)
    feed = nhwc(x) if order == "NHWC" else x
    got = run_net(
        tmp_path,
        [op("PRelu", ["x", "s"], ["y"], order=order), op("PRelu", ["x", "t"], ["z"], order=order)],
        {"s": slope, "t": shared},
        {"x": feed},
        ["y", "z"],
    )
    per_channel = np.where(x > 0, x, slope.reshape(1, 3, 1, 1) * x)
    assert_close(got["y"], nhwc(per_channel) if order == "NHWC" else per_channel)
    assert_close(got["z"], np.where(feed > 0, feed, shared[0] * feed))


@pytest.mark.parametrize(("shape", "axis"), [((4, 10), None), ((2, 3, 4), 1), ((2, 3, 4), 2), ((2, 3, 4, 5), 1), ((2, 3, 4), 0)])
def test_softmax_coerces_to_2d(shape, axis, tmp_path: Path) -> None:
    x = rand(*shape) * 3
    args = {} if axis is None else {"axis": axis}
    got = run_net(tmp_path, [op("Softmax", ["x"], ["y"], **args)], {}, {"x": x}, ["y"])["y"]
    assert_close(got, ref.softmax(x, 1 if axis is None else axis))


def test_dropout_is_identity_at_test_time(tmp_path: Path) -> None:
    x = rand(2, 5)
    got = run_net(tmp_path, [op("Dropout", ["x"], ["y", "mask"], ratio=0.5, is_test=1)], {}, {"x": x}, ["y", "mask"])
    assert_close(got["y"], x)
    assert got["mask"].dtype == np.bool_ and got["mask"].all()


@pytest.mark.parametrize("order", ["NCHW", "NHWC"])
def test_channel_shuffle(order: str, tmp_path: Path) -> None:
    x = rand(2, 6, 3, 2)
    feed = nhwc(x) if order == "NHWC" else x
    got = run_net(tmp_path, [op("ChannelShuffle", ["x"], ["y"], group=3, order=order)], {}, {"x": feed}, ["y"])["y"]
    want = ref.channel_shuffle(x, 3)
    np.testing.assert_array_equal(got, nhwc(want) if order == "NHWC" else want)


@pytest.mark.parametrize(("hs", "ws"), [(2.0, 2.0), (1.5, 3.0), (0.5, 1.0)])
def test_resize_nearest(hs: float, ws: float, tmp_path: Path) -> None:
    x = rand(1, 2, 4, 6)
    got = run_net(tmp_path, [op("ResizeNearest", ["x"], ["y"], height_scale=hs, width_scale=ws)], {}, {"x": x}, ["y"])["y"]
    np.testing.assert_array_equal(got, ref.resize_nearest(x, hs, ws))


def test_resize_nearest_nhwc(tmp_path: Path) -> None:
    x = rand(1, 2, 3, 3)
    got = run_net(
        tmp_path, [op("ResizeNearest", ["x"], ["y"], height_scale=2.0, width_scale=2.0, order="NHWC")], {}, {"x": nhwc(x)}, ["y"]
    )["y"]
    np.testing.assert_array_equal(got, nhwc(ref.resize_nearest(x, 2.0, 2.0)))


def test_nd_aliases(tmp_path: Path) -> None:
    """Conv2D / MaxPool2D / AveragePool2D are the 2-D ops; the 1D and 3D pools take kernels per dimension."""
    x, w = rand(1, 2, 6, 6), rand(3, 2, 3, 3)
    x1, x3 = rand(1, 2, 8), rand(1, 2, 4, 4, 4)
    ops = [
        op("Conv2D", ["x", "w"], ["c"], kernel=3),
        op("MaxPool2D", ["x"], ["m"], kernel=2, stride=2),
        op("AveragePool2D", ["x"], ["a"], kernel=3, stride=3),
        op("MaxPool1D", ["x1"], ["m1"], kernels=[2], strides=[2]),
        op("AveragePool1D", ["x1"], ["a1"], kernel=4, stride=4),
        op("MaxPool3D", ["x3"], ["m3"], kernel=2, stride=2),
        op("AveragePool3D", ["x3"], ["a3"], kernels=[2, 2, 2], strides=[2, 2, 2]),
    ]
    got = run_net(tmp_path, ops, {"w": w}, {"x": x, "x1": x1, "x3": x3}, ["c", "m", "a", "m1", "a1", "m3", "a3"])
    assert_close(got["c"], ref.conv2d(x, w, None))
    assert_close(got["m"], ref.pool2d(x, "max", (2, 2), (2, 2)))
    assert_close(got["a"], ref.pool2d(x, "avg", (3, 3), (3, 3)))
    assert_close(got["m1"], x1.reshape(1, 2, 4, 2).max(axis=3))
    assert_close(got["a1"], x1.reshape(1, 2, 2, 4).mean(axis=3))
    assert_close(got["m3"], x3.reshape(1, 2, 2, 2, 2, 2, 2, 2).max(axis=(3, 5, 7)))
    assert_close(got["a3"], x3.reshape(1, 2, 2, 2, 2, 2, 2, 2).mean(axis=(3, 5, 7)))
