"""Convolution, Deconvolution, InnerProduct and Pooling against OpenCV's Caffe importer, layer by layer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgecc.converters.caffe import convert
from edgecc.converters.options import ConvertOptions
from tests.converters.caffe import caffe_numpy
from tests.converters.caffe.helpers import compare_with_opencv, rand, run_onnx, write_net


def _input(shape: tuple[int, ...]) -> str:
    dims = " ".join(f"dim: {d}" for d in shape)
    return f'input: "data"\ninput_shape {{ {dims} }}\n'


CONV_CASES = {
    "plain": ("num_output: 4 kernel_size: 3", (1, 3, 8, 8), 1),
    "pad_stride": ("num_output: 5 kernel_size: 3 pad: 1 stride: 2", (2, 3, 9, 7), 1),
    "per_axis": ("num_output: 4 kernel_h: 3 kernel_w: 1 pad_h: 1 pad_w: 0 stride_h: 2 stride_w: 1", (1, 2, 9, 6), 1),
    "repeated_fields": ("num_output: 4 kernel_size: 3 kernel_size: 2 pad: 0 pad: 1 stride: 1 stride: 2", (1, 2, 7, 7), 1),
    "group": ("num_output: 6 kernel_size: 3 group: 3 pad: 1", (1, 6, 6, 6), 3),
    "depthwise": ("num_output: 4 kernel_size: 3 group: 4", (1, 4, 7, 7), 4),
    "dilation": ("num_output: 3 kernel_size: 3 dilation: 2 pad: 2", (1, 2, 9, 9), 1),
    "no_bias": ("num_output: 4 kernel_size: 2 bias_term: false", (1, 3, 5, 5), 1),
}


@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_convolution(case: str, tmp_path: Path) -> None:
    param, shape, group = CONV_CASES[case]
    proto = (
        _input(shape)
        + f'layer {{ name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param {{ {param} }} }}\n'
    )
    kh, kw = (
        (3, 1) if case == "per_axis" else ((3, 2) if case == "repeated_fields" else ((2, 2) if case == "no_bias" else (3, 3)))
    )
    out = int(param.split("num_output: ")[1].split()[0])
    blobs = [rand(out, shape[1] // group, kh, kw, seed=1)]
    if "bias_term: false" not in param:
        blobs.append(rand(out, seed=2))
    paths = write_net(tmp_path, proto, {"conv": ("Convolution", blobs)})
    compare_with_opencv(paths, {"data": rand(*shape, seed=3)})


DECONV_CASES = {
    "stride2": ("num_output: 3 kernel_size: 4 stride: 2 pad: 1", (1, 2, 5, 5), 1),
    "group": ("num_output: 4 kernel_size: 3 stride: 1 group: 2", (1, 4, 4, 6), 2),
    "no_bias": ("num_output: 2 kernel_size: 2 stride: 2 bias_term: false", (1, 3, 3, 3), 1),
}


@pytest.mark.parametrize("case", sorted(DECONV_CASES))
def test_deconvolution(case: str, tmp_path: Path) -> None:
    param, shape, group = DECONV_CASES[case]
    proto = (
        _input(shape) + f'layer {{ name: "up" type: "Deconvolution" bottom: "data" top: "up" convolution_param {{ {param} }} }}\n'
    )
    out = int(param.split("num_output: ")[1].split()[0])
    k = int(param.split("kernel_size: ")[1].split()[0])
    blobs = [rand(shape[1], out // group, k, k, seed=1)]
    if "bias_term: false" not in param:
        blobs.append(rand(out, seed=2))
    paths = write_net(tmp_path, proto, {"up": ("Deconvolution", blobs)})
    compare_with_opencv(paths, {"data": rand(*shape, seed=3)})


@pytest.mark.parametrize(
    ("param", "shape", "weight_shape"),
    [
        ("num_output: 5", (2, 3, 4, 4), (5, 48)),
        ("num_output: 5 bias_term: false", (3, 7), (5, 7)),
        ("num_output: 3 axis: 2", (2, 3, 4), (3, 4)),
    ],
)
def test_inner_product(param: str, shape: tuple[int, ...], weight_shape: tuple[int, ...], tmp_path: Path) -> None:
    proto = (
        _input(shape)
        + f'layer {{ name: "fc" type: "InnerProduct" bottom: "data" top: "fc" inner_product_param {{ {param} }} }}\n'
    )
    blobs = [rand(*weight_shape, seed=1)]
    if "bias_term: false" not in param:
        blobs.append(rand(int(param.split()[1]), seed=2))
    paths = write_net(tmp_path, proto, {"fc": ("InnerProduct", blobs)})
    compare_with_opencv(paths, {"data": rand(*shape, seed=3)})


def test_inner_product_transpose_matches_caffe_semantics(tmp_path: Path) -> None:
    # OpenCV 4.14 ignores `transpose` (it reads the KxN blob as NxK), so the oracle is Caffe's forward in numpy.
    proto = _input((2, 6)) + (
        'layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" '
        "inner_product_param { num_output: 4 transpose: true } }\n"
    )
    weight, bias, x = rand(6, 4, seed=1), rand(4, seed=2), rand(2, 6, seed=3)
    paths = write_net(tmp_path, proto, {"fc": ("InnerProduct", [weight, bias])})
    model = convert([str(p) for p in paths], ConvertOptions(framework="caffe"))
    got = run_onnx(model, {"data": x}, ["fc"])["fc"]
    np.testing.assert_allclose(got, caffe_numpy.inner_product(x, weight, bias, transpose=True), rtol=1e-5, atol=1e-5)


def test_inner_product_legacy_4d_blobs(tmp_path: Path) -> None:
    proto = (
        _input((2, 6))
        + 'layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" inner_product_param { num_output: 3 } }\n'
    )
    paths = write_net(tmp_path, proto, {"fc": ("InnerProduct", [rand(1, 1, 3, 6, seed=1), rand(1, 1, 1, 3, seed=2)])})
    compare_with_opencv(paths, {"data": rand(2, 6, seed=3)})


POOL_CASES = {
    "max_2x2": ("pool: MAX kernel_size: 2 stride: 2", (1, 2, 8, 8)),
    "max_ceil_odd": ("pool: MAX kernel_size: 2 stride: 2", (1, 2, 7, 9)),
    "max_3x3_s2_odd": ("pool: MAX kernel_size: 3 stride: 2", (1, 3, 10, 11)),
    "max_pad": ("pool: MAX kernel_size: 3 stride: 2 pad: 1", (1, 2, 9, 8)),
    "max_pad_hw": ("pool: MAX kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 1", (1, 2, 7, 6)),
    "max_stride_gt_kernel": ("pool: MAX kernel_size: 2 stride: 3", (1, 2, 8, 10)),
    "ave_2x2": ("pool: AVE kernel_size: 2 stride: 2", (1, 2, 8, 8)),
    "ave_ceil_odd": ("pool: AVE kernel_size: 3 stride: 2", (1, 3, 10, 11)),
    "ave_pad": ("pool: AVE kernel_size: 3 stride: 2 pad: 1", (1, 2, 9, 8)),
    "ave_pad_s1": ("pool: AVE kernel_size: 3 stride: 1 pad: 1", (1, 2, 5, 6)),
    "ave_pad_hw": ("pool: AVE kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 1", (1, 2, 7, 6)),
    "ave_stride_gt_kernel": ("pool: AVE kernel_size: 2 stride: 3", (1, 2, 8, 10)),
    "ave_stride_gt_kernel_pad": ("pool: AVE kernel_size: 3 stride: 4 pad: 1", (1, 2, 9, 10)),
    "global_max": ("pool: MAX global_pooling: true", (2, 3, 5, 7)),
    "global_ave": ("pool: AVE global_pooling: true", (2, 3, 5, 7)),
}


@pytest.mark.parametrize("case", sorted(POOL_CASES))
def test_pooling(case: str, tmp_path: Path) -> None:
    param, shape = POOL_CASES[case]
    proto = _input(shape) + f'layer {{ name: "pool" type: "Pooling" bottom: "data" top: "pool" pooling_param {{ {param} }} }}\n'
    paths = write_net(tmp_path, proto)
    compare_with_opencv(paths, {"data": rand(*shape, seed=4)})


def _pool_args(param: str) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], str]:
    words = param.split()
    values = {words[i].rstrip(":"): words[i + 1] for i in range(0, len(words) - 1, 2)}

    def pair(name: str, default: int) -> tuple[int, int]:
        if f"{name}_h" in values:
            return int(values[f"{name}_h"]), int(values[f"{name}_w"])
        return (int(values.get(name, default)),) * 2  # type: ignore[return-value]

    return (
        pair("kernel", 0) if "kernel_h" in values else (int(values["kernel_size"]),) * 2,
        pair("pad", 0),
        pair("stride", 1),
        values["pool"],
    )


@pytest.mark.parametrize("case", sorted(c for c in POOL_CASES if not c.startswith("global")))
def test_pooling_matches_caffe_loops(case: str, tmp_path: Path) -> None:
    """The same border cases against Caffe's pooling loops in numpy (a second oracle)."""
    param, shape = POOL_CASES[case]
    kernel, pad, stride, method = _pool_args(param)
    proto = _input(shape) + f'layer {{ name: "pool" type: "Pooling" bottom: "data" top: "pool" pooling_param {{ {param} }} }}\n'
    paths = write_net(tmp_path, proto)
    x = rand(*shape, seed=4)
    got = run_onnx(convert([str(p) for p in paths], ConvertOptions(framework="caffe")), {"data": x}, ["pool"])["pool"]
    np.testing.assert_allclose(got, caffe_numpy.pool(x, kernel, pad, stride, method), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("method", "shape"), [("MAX", (1, 2, 7, 7)), ("AVE", (1, 2, 9, 8))])
def test_pooling_floor_round_mode(method: str, shape: tuple[int, ...], tmp_path: Path) -> None:
    # OpenCV 4.14 rejects round_mode: FLOOR ("kernel[i] > 0"), so the oracle is Caffe's loops in numpy.
    proto = _input(shape) + (
        f'layer {{ name: "pool" type: "Pooling" bottom: "data" top: "pool" '
        f"pooling_param {{ pool: {method} kernel_size: 3 stride: 2 pad: 1 round_mode: FLOOR }} }}\n"
    )
    paths = write_net(tmp_path, proto)
    x = rand(*shape, seed=5)
    got = run_onnx(convert([str(p) for p in paths], ConvertOptions(framework="caffe")), {"data": x}, ["pool"])["pool"]
    expected = caffe_numpy.pool(x, (3, 3), (1, 1), (2, 2), method, ceil=False)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
