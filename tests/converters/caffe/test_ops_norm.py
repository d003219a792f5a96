"""BatchNorm, Scale, Bias, LRN, Normalize, MVN against OpenCV's Caffe importer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.converters.caffe import caffe_numpy
from tests.converters.caffe.helpers import compare_with_opencv, converted_outputs, rand, write_net

HEAD = 'input: "data"\ninput_shape { dim: 2 dim: 3 dim: 4 dim: 5 }\n'


@pytest.mark.parametrize("factor", [1.0, 0.5, 0.0])
def test_batch_norm_with_scale_factor(factor: float, tmp_path: Path) -> None:
    proto = HEAD + 'layer { name: "bn" type: "BatchNorm" bottom: "data" top: "data" batch_norm_param { eps: 0.001 } }\n'
    mean, var = rand(3, seed=1), rand(3, seed=2, low=0.5, high=2.0)
    paths = write_net(tmp_path, proto, {"bn": ("BatchNorm", [mean, var, np.array([factor], np.float32)])})
    compare_with_opencv(paths, {"data": rand(2, 3, 4, 5, seed=3)})


def test_batch_norm_then_scale_in_place(tmp_path: Path) -> None:
    proto = HEAD + (
        'layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" '
        "convolution_param { num_output: 3 kernel_size: 1 } }\n"
        'layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }\n'
        'layer { name: "sc" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true } }\n'
        'layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }\n'
    )
    blobs = {
        "conv": ("Convolution", [rand(3, 3, 1, 1, seed=1), rand(3, seed=2)]),
        "bn": ("BatchNorm", [rand(3, seed=3), rand(3, seed=4, low=0.5, high=2), np.array([2.0], np.float32)]),
        "sc": ("Scale", [rand(3, seed=5), rand(3, seed=6)]),
    }
    errors = compare_with_opencv(write_net(tmp_path, proto, blobs), {"data": rand(2, 3, 4, 5, seed=7)})
    assert set(errors) == {"conv", "bn", "sc", "relu"}


SCALE_CASES = {
    "channel": ("", (3,)),
    "channel_bias": ("bias_term: true", (3,)),
    "axis2_two_axes": ("axis: 2 num_axes: 2", (4, 5)),
    "all_axes": ("axis: 1 num_axes: -1", (3, 4, 5)),
}


@pytest.mark.parametrize("case", sorted(SCALE_CASES))
def test_scale_learned(case: str, tmp_path: Path) -> None:
    param, shape = SCALE_CASES[case]
    proto = HEAD + f'layer {{ name: "sc" type: "Scale" bottom: "data" top: "sc" scale_param {{ {param} }} }}\n'
    blobs = [rand(*shape, seed=1) if shape else np.array(1.7, np.float32)]
    if "bias_term" in param:
        blobs.append(rand(*shape, seed=2))
    compare_with_opencv(write_net(tmp_path, proto, {"sc": ("Scale", blobs)}), {"data": rand(2, 3, 4, 5, seed=3)})


def test_scale_scalar_blob(tmp_path: Path) -> None:
    # OpenCV 4.14 cannot load a 0-axis blob (num_axes: 0); the oracle is ScaleLayer's broadcast in numpy.
    proto = HEAD + 'layer { name: "sc" type: "Scale" bottom: "data" top: "sc" scale_param { num_axes: 0 } }\n'
    x, factor = rand(2, 3, 4, 5, seed=3), np.array(1.7, np.float32)
    got = converted_outputs(write_net(tmp_path, proto, {"sc": ("Scale", [factor])}), {"data": x}, ["sc"])["sc"]
    np.testing.assert_allclose(got, caffe_numpy.scale_bias(x, factor, None, 1), rtol=1e-6)


def test_scale_two_bottoms(tmp_path: Path) -> None:
    proto = 'input: "data"\ninput_shape { dim: 2 dim: 3 dim: 4 dim: 5 }\ninput: "s"\ninput_shape { dim: 2 dim: 3 }\n'
    proto += 'layer { name: "sc" type: "Scale" bottom: "data" bottom: "s" top: "sc" scale_param { axis: 0 } }\n'
    compare_with_opencv(write_net(tmp_path, proto), {"data": rand(2, 3, 4, 5, seed=3), "s": rand(2, 3, seed=5)})


def test_scale_two_bottoms_with_bias(tmp_path: Path) -> None:
    # OpenCV 4.14 gets the learned bias of a two-bottom Scale wrong; the oracle is ScaleLayer (bias = blobs[0]).
    proto = 'input: "data"\ninput_shape { dim: 2 dim: 3 dim: 4 dim: 5 }\ninput: "s"\ninput_shape { dim: 2 dim: 3 }\n'
    proto += 'layer { name: "sc" type: "Scale" bottom: "data" bottom: "s" top: "sc" scale_param { axis: 0 bias_term: true } }\n'
    x, factor, bias = rand(2, 3, 4, 5, seed=3), rand(2, 3, seed=5), rand(2, 3, seed=4)
    got = converted_outputs(write_net(tmp_path, proto, {"sc": ("Scale", [bias])}), {"data": x, "s": factor}, ["sc"])["sc"]
    np.testing.assert_allclose(got, caffe_numpy.scale_bias(x, factor, bias, 0), rtol=1e-5, atol=1e-6)


def test_bias_learned(tmp_path: Path) -> None:
    # OpenCV 4.14 has no Bias layer; the oracle is BiasLayer's broadcast in numpy.
    proto = HEAD + 'layer { name: "b" type: "Bias" bottom: "data" top: "b" bias_param { axis: 1 num_axes: 2 } }\n'
    x, bias = rand(2, 3, 4, 5, seed=3), rand(3, 4, seed=1)
    got = converted_outputs(write_net(tmp_path, proto, {"b": ("Bias", [bias])}), {"data": x}, ["b"])["b"]
    np.testing.assert_allclose(got, caffe_numpy.scale_bias(x, None, bias, 1), rtol=1e-6)


def test_bias_two_bottoms(tmp_path: Path) -> None:
    proto = 'input: "data"\ninput_shape { dim: 2 dim: 3 dim: 4 dim: 5 }\ninput: "b"\ninput_shape { dim: 4 dim: 5 }\n'
    proto += 'layer { name: "add" type: "Bias" bottom: "data" bottom: "b" top: "add" bias_param { axis: 2 } }\n'
    x, bias = rand(2, 3, 4, 5, seed=3), rand(4, 5, seed=5)
    got = converted_outputs(write_net(tmp_path, proto), {"data": x, "b": bias}, ["add"])["add"]
    np.testing.assert_allclose(got, caffe_numpy.scale_bias(x, None, bias, 2), rtol=1e-6)


@pytest.mark.parametrize(
    "param",
    [
        "local_size: 5 alpha: 0.0001 beta: 0.75",
        "local_size: 3 alpha: 0.5 beta: 0.6",
        "local_size: 3 alpha: 0.3 beta: 0.75 norm_region: WITHIN_CHANNEL",
        "local_size: 5 alpha: 1.0 beta: 0.5 norm_region: WITHIN_CHANNEL",
    ],
)
def test_lrn(param: str, tmp_path: Path) -> None:
    proto = 'input: "data"\ninput_shape { dim: 2 dim: 7 dim: 6 dim: 5 }\n'
    proto += f'layer {{ name: "lrn" type: "LRN" bottom: "data" top: "lrn" lrn_param {{ {param} }} }}\n'
    compare_with_opencv(write_net(tmp_path, proto), {"data": rand(2, 7, 6, 5, seed=3, low=-2, high=2)})


def test_lrn_k(tmp_path: Path) -> None:
    # OpenCV 4.14 ignores LRN's k (uses 1); the oracle is LRNLayer's cross-channel formula in numpy.
    proto = 'input: "data"\ninput_shape { dim: 2 dim: 7 dim: 6 dim: 5 }\n'
    proto += 'layer { name: "lrn" type: "LRN" bottom: "data" top: "lrn" lrn_param { local_size: 3 alpha: 0.5 beta: 0.6 k: 2 } }\n'
    x = rand(2, 7, 6, 5, seed=3, low=-2, high=2)
    got = converted_outputs(write_net(tmp_path, proto), {"data": x}, ["lrn"])["lrn"]
    np.testing.assert_allclose(got, caffe_numpy.lrn_across(x, 3, 0.5, 0.6, 2.0), rtol=1e-5, atol=1e-6)


def test_normalize_across_spatial_per_channel_scale(tmp_path: Path) -> None:
    # OpenCV 4.14 asserts on across_spatial with a per-channel scale; the oracle is SSD's NormalizeLayer in numpy.
    proto = HEAD + (
        'layer { name: "norm" type: "Normalize" bottom: "data" top: "norm" '
        "norm_param { across_spatial: true channel_shared: false } }\n"
    )
    x, scale = rand(2, 3, 4, 5, seed=3), rand(3, seed=1, low=1, high=20)
    got = converted_outputs(write_net(tmp_path, proto, {"norm": ("Normalize", [scale])}), {"data": x}, ["norm"])["norm"]
    np.testing.assert_allclose(got, caffe_numpy.normalize(x, scale, True, False), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("across", "shared"), [(False, False), (True, True), (False, True)])
def test_normalize(across: bool, shared: bool, tmp_path: Path) -> None:
    proto = HEAD + (
        f'layer {{ name: "norm" type: "Normalize" bottom: "data" top: "norm" '
        f"norm_param {{ across_spatial: {str(across).lower()} channel_shared: {str(shared).lower()} }} }}\n"
    )
    scale = rand(1 if shared else 3, seed=1, low=1, high=20)
    compare_with_opencv(write_net(tmp_path, proto, {"norm": ("Normalize", [scale])}), {"data": rand(2, 3, 4, 5, seed=3)})


@pytest.mark.parametrize("param", ["", "normalize_variance: false", "across_channels: true"])
def test_mvn(param: str, tmp_path: Path) -> None:
    proto = HEAD + f'layer {{ name: "mvn" type: "MVN" bottom: "data" top: "mvn" mvn_param {{ {param} }} }}\n'
    compare_with_opencv(write_net(tmp_path, proto), {"data": rand(2, 3, 4, 5, seed=3)})
