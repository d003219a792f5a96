"""Eltwise, Concat, Slice, Split, Flatten, Reshape, Permute, Softmax, Dropout, Crop, Interp, ShuffleChannel, ArgMax."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.converters.caffe import caffe_numpy
from tests.converters.caffe.helpers import compare_with_opencv, converted_outputs, rand, write_net

HEAD = 'input: "data"\ninput_shape { dim: 2 dim: 6 dim: 4 dim: 5 }\n'
TWO = HEAD + 'input: "other"\ninput_shape { dim: 2 dim: 6 dim: 4 dim: 5 }\n'


def _feeds(*names: str, shape: tuple[int, ...] = (2, 6, 4, 5)) -> dict[str, np.ndarray]:
    return {name: rand(*shape, seed=i + 10) for i, name in enumerate(names)}


@pytest.mark.parametrize(
    "param",
    [
        "operation: SUM",
        "operation: SUM coeff: 0.5 coeff: -2",
        "operation: PROD",
        "operation: MAX",
    ],
)
def test_eltwise(param: str, tmp_path: Path) -> None:
    proto = TWO + f'layer {{ name: "e" type: "Eltwise" bottom: "data" bottom: "other" top: "e" eltwise_param {{ {param} }} }}\n'
    compare_with_opencv(write_net(tmp_path, proto), _feeds("data", "other"))


def test_eltwise_three_bottoms_sum_coeff(tmp_path: Path) -> None:
    proto = TWO + (
        'layer { name: "r" type: "ReLU" bottom: "data" top: "r" }\n'
        'layer { name: "e" type: "Eltwise" bottom: "data" bottom: "other" bottom: "r" top: "e" '
        "eltwise_param { coeff: 1 coeff: 0.3 coeff: -1 } }\n"
    )
    compare_with_opencv(write_net(tmp_path, proto), _feeds("data", "other"))


@pytest.mark.parametrize("param", ["", "axis: 2", "axis: -1", "concat_dim: 1"])
def test_concat(param: str, tmp_path: Path) -> None:
    proto = TWO + f'layer {{ name: "c" type: "Concat" bottom: "data" bottom: "other" top: "c" concat_param {{ {param} }} }}\n'
    compare_with_opencv(write_net(tmp_path, proto), _feeds("data", "other"))


@pytest.mark.parametrize(
    ("param", "tops"), [("slice_point: 2 slice_point: 5", 3), ("axis: 2", 2), ("axis: 3 slice_point: 1", 2), ("slice_dim: 1", 3)]
)
def test_slice(param: str, tops: int, tmp_path: Path) -> None:
    top_text = " ".join(f'top: "s{i}"' for i in range(tops))
    proto = HEAD + f'layer {{ name: "sl" type: "Slice" bottom: "data" {top_text} slice_param {{ {param} }} }}\n'
    for i in range(tops):
        proto += f'layer {{ name: "use{i}" type: "Power" bottom: "s{i}" top: "u{i}" power_param {{ scale: {i + 1} }} }}\n'
    errors = compare_with_opencv(write_net(tmp_path, proto), _feeds("data"))
    assert {f"s{i}" for i in range(tops)} <= set(errors)


def test_split_and_dropout(tmp_path: Path) -> None:
    proto = HEAD + (
        'layer { name: "split" type: "Split" bottom: "data" top: "a" top: "b" }\n'
        'layer { name: "drop" type: "Dropout" bottom: "a" top: "a" dropout_param { dropout_ratio: 0.5 } }\n'
        'layer { name: "drop2" type: "Dropout" bottom: "b" top: "c" }\n'
        'layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "c" top: "sum" }\n'
    )
    errors = compare_with_opencv(write_net(tmp_path, proto), _feeds("data"))
    assert {"a", "b", "drop", "c", "sum"} <= set(errors)


def test_flatten_to_one_axis(tmp_path: Path) -> None:
    # Caffe's Flatten from axis 0 gives a 1-D blob; OpenCV 4.14 reports it as Nx1, so the oracle is numpy.
    proto = HEAD + 'layer { name: "f" type: "Flatten" bottom: "data" top: "f" flatten_param { axis: 0 } }\n'
    x = rand(2, 6, 4, 5, seed=1)
    np.testing.assert_array_equal(converted_outputs(write_net(tmp_path, proto), {"data": x}, ["f"])["f"], x.reshape(-1))


@pytest.mark.parametrize("param", ["", "axis: 2", "axis: 1 end_axis: 2"])
def test_flatten(param: str, tmp_path: Path) -> None:
    proto = HEAD + f'layer {{ name: "f" type: "Flatten" bottom: "data" top: "f" flatten_param {{ {param} }} }}\n'
    compare_with_opencv(write_net(tmp_path, proto), _feeds("data"))


@pytest.mark.parametrize(
    "param",
    [
        "shape { dim: 0 dim: -1 }",
        "shape { dim: 2 dim: 3 dim: 2 dim: 20 }",
        "shape { dim: 0 dim: 2 dim: 3 dim: -1 }",
        "shape { dim: 3 dim: 2 } axis: 1 num_axes: 1",
        "shape { dim: -1 } axis: 2",
    ],
)
def test_reshape(param: str, tmp_path: Path) -> None:
    proto = HEAD + f'layer {{ name: "r" type: "Reshape" bottom: "data" top: "r" reshape_param {{ {param} }} }}\n'
    compare_with_opencv(write_net(tmp_path, proto), _feeds("data"))


def test_permute_partial_order(tmp_path: Path) -> None:
    # SSD's Permute completes a partial order with the remaining axes; OpenCV 4.14 rejects it, so numpy is the oracle.
    proto = HEAD + 'layer { name: "p" type: "Permute" bottom: "data" top: "p" permute_param { order: 0 order: 2 } }\n'
    x = rand(2, 6, 4, 5, seed=1)
    np.testing.assert_array_equal(converted_outputs(write_net(tmp_path, proto), {"data": x}, ["p"])["p"], x.transpose(0, 2, 1, 3))


@pytest.mark.parametrize(
    "order", ["order: 0 order: 2 order: 3 order: 1", "order: 0 order: 3 order: 1 order: 2", "order: 1 order: 0 order: 2 order: 3"]
)
def test_permute(order: str, tmp_path: Path) -> None:
    proto = HEAD + f'layer {{ name: "p" type: "Permute" bottom: "data" top: "p" permute_param {{ {order} }} }}\n'
    compare_with_opencv(write_net(tmp_path, proto), _feeds("data"))


@pytest.mark.parametrize("param", ["", "axis: 2", "axis: -1"])
def test_softmax(param: str, tmp_path: Path) -> None:
    proto = HEAD + f'layer {{ name: "sm" type: "Softmax" bottom: "data" top: "sm" softmax_param {{ {param} }} }}\n'
    compare_with_opencv(write_net(tmp_path, proto), _feeds("data"))


@pytest.mark.parametrize("param", ["axis: 2 offset: 1", "axis: 2 offset: 1 offset: 2", "axis: 1 offset: 1"])
def test_crop(param: str, tmp_path: Path) -> None:
    proto = HEAD + 'input: "ref"\ninput_shape { dim: 2 dim: 3 dim: 3 dim: 2 }\n'
    proto += f'layer {{ name: "crop" type: "Crop" bottom: "data" bottom: "ref" top: "crop" crop_param {{ {param} }} }}\n'
    feeds = _feeds("data")
    feeds["ref"] = rand(2, 3, 3, 2, seed=1)
    if "axis: 2" in param:
        proto = proto.replace("dim: 2 dim: 3 dim: 3 dim: 2", "dim: 2 dim: 6 dim: 3 dim: 2")
        feeds["ref"] = rand(2, 6, 3, 2, seed=1)
    compare_with_opencv(write_net(tmp_path, proto), feeds)


@pytest.mark.parametrize(("param", "size"), [("shrink_factor: 2", (2, 3)), ("zoom_factor: 3 shrink_factor: 2", (4, 7))])
def test_interp_shrink(param: str, size: tuple[int, int], tmp_path: Path) -> None:
    # OpenCV 4.14 ignores shrink_factor; the oracle is PSPNet's InterpLayer (size rules + caffe_cpu_interp2) in numpy.
    proto = HEAD + f'layer {{ name: "i" type: "Interp" bottom: "data" top: "i" interp_param {{ {param} }} }}\n'
    x = rand(2, 6, 4, 5, seed=1)
    got = converted_outputs(write_net(tmp_path, proto), {"data": x}, ["i"])["i"]
    np.testing.assert_allclose(got, caffe_numpy.interp_bilinear(x, *size), rtol=1e-5, atol=1e-6)


def test_interp_to_second_bottom(tmp_path: Path) -> None:
    proto = HEAD + 'input: "like"\ninput_shape { dim: 2 dim: 1 dim: 9 dim: 7 }\n'
    proto += 'layer { name: "i" type: "Interp" bottom: "data" bottom: "like" top: "i" }\n'
    x = rand(2, 6, 4, 5, seed=1)
    got = converted_outputs(write_net(tmp_path, proto), {"data": x, "like": rand(2, 1, 9, 7)}, ["i"])["i"]
    np.testing.assert_allclose(got, caffe_numpy.interp_bilinear(x, 9, 7), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("param", ["zoom_factor: 2", "height: 7 width: 9", "height: 1 width: 1"])
def test_interp(param: str, tmp_path: Path) -> None:
    proto = HEAD + f'layer {{ name: "i" type: "Interp" bottom: "data" top: "i" interp_param {{ {param} }} }}\n'
    compare_with_opencv(write_net(tmp_path, proto), _feeds("data"))


@pytest.mark.parametrize("group", [2, 3])
def test_shuffle_channel(group: int, tmp_path: Path) -> None:
    proto = (
        HEAD
        + f'layer {{ name: "sh" type: "ShuffleChannel" bottom: "data" top: "sh" shuffle_channel_param {{ group: {group} }} }}\n'
    )
    compare_with_opencv(write_net(tmp_path, proto), _feeds("data"))


@pytest.mark.parametrize(
    ("param", "kwargs"),
    [
        ("", {}),
        ("top_k: 3", {"top_k": 3}),
        ("out_max_val: true top_k: 2", {"top_k": 2, "out_max_val": True}),
        ("axis: 1", {"axis": 1}),
        ("axis: 1 top_k: 2 out_max_val: true", {"axis": 1, "top_k": 2, "out_max_val": True}),
    ],
)
def test_argmax(param: str, kwargs: dict, tmp_path: Path) -> None:
    # OpenCV 4.14's Caffe importer has no ArgMax layer; the oracle is ArgMaxLayer::Forward_cpu in numpy.
    proto = HEAD + f'layer {{ name: "am" type: "ArgMax" bottom: "data" top: "am" argmax_param {{ {param} }} }}\n'
    x = rand(2, 6, 4, 5, seed=1)
    got = converted_outputs(write_net(tmp_path, proto), {"data": x}, ["am"])["am"]
    np.testing.assert_array_equal(got, caffe_numpy.argmax(x, **kwargs))


def test_upsample_nearest(tmp_path: Path) -> None:
    proto = HEAD + 'layer { name: "up" type: "Upsample" bottom: "data" top: "up" upsample_param { scale: 2 } }\n'
    x = rand(2, 6, 4, 5, seed=1)
    got = converted_outputs(write_net(tmp_path, proto), {"data": x}, ["up"])["up"]
    np.testing.assert_array_equal(got, x.repeat(2, axis=2).repeat(2, axis=3))
