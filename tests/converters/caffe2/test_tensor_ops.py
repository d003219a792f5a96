"""Element-wise and tensor-manipulation operators against numpy written from the Caffe2 operator docs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.converters.caffe2.netdefs import assert_close, op, run_net

RNG = np.random.default_rng(99)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


NUMPY_BINARY = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Pow": np.power}


@pytest.mark.parametrize("op_type", sorted(NUMPY_BINARY))
def test_binary_legacy_broadcast_with_axis(op_type: str, tmp_path: Path) -> None:
    """broadcast=1, axis=1: B (shape [C]) lines up with A's dim 1, as a conv bias."""
    a, b = np.abs(rand(2, 3, 4, 5)) + 0.5, np.abs(rand(3)) + 0.5
    got = run_net(tmp_path, [op(op_type, ["a", "b"], ["y"], broadcast=1, axis=1)], {"b": b}, {"a": a}, ["y"])["y"]
    assert_close(got, NUMPY_BINARY[op_type](a, b.reshape(1, 3, 1, 1)))


def test_binary_broadcast_axis_runtime_operand_and_suffix(tmp_path: Path) -> None:
    a, b, c = rand(2, 3, 4, 5), rand(3, 4), rand(4, 5)
    ops = [
        op("Mul", ["a", "b"], ["y"], broadcast=1, axis=1),  # B is an input, not a constant: Unsqueeze
        op("Add", ["a", "c"], ["z"], broadcast=1),  # axis -1: suffix matching
        op("Sub", ["a", "a"], ["w"]),  # same shape, no broadcast
    ]
    got = run_net(tmp_path, ops, {}, {"a": a, "b": b, "c": c}, ["y", "z", "w"])
    assert_close(got["y"], a * b.reshape(1, 3, 4, 1))
    assert_close(got["z"], a + c)
    assert_close(got["w"], np.zeros_like(a))


def test_binary_axis_str_with_order(tmp_path: Path) -> None:
    a, b = rand(2, 4, 4, 3), rand(3)
    got = run_net(tmp_path, [op("Add", ["a", "b"], ["y"], broadcast=1, axis_str="C", order="NHWC")], {"b": b}, {"a": a}, ["y"])[
        "y"
    ]
    assert_close(got, a + b)


def test_sum_max_scale_clip(tmp_path: Path) -> None:
    a, b, c = rand(3, 4), rand(3, 4), rand(3, 4)
    ops = [
        op("Sum", ["a", "b", "c"], ["s"]),
        op("Max", ["a", "b"], ["m"]),
        op("Scale", ["a"], ["k"], scale=2.5),
        op("Clip", ["a"], ["l"], min=-0.5, max=0.25),
        op("Clip", ["a"], ["u"], min=0.0),
    ]
    got = run_net(tmp_path, ops, {}, {"a": a, "b": b, "c": c}, ["s", "m", "k", "l", "u"])
    assert_close(got["s"], a + b + c)
    assert_close(got["m"], np.maximum(a, b))
    assert_close(got["k"], a * 2.5)
    assert_close(got["l"], np.clip(a, -0.5, 0.25))
    assert_close(got["u"], np.maximum(a, 0))


@pytest.mark.parametrize(
    ("args", "axis", "op_type"),
    [({}, 1, "Concat"), ({"axis": 2}, 2, "Concat"), ({"order": "NHWC"}, 3, "Concat"), ({"axis": -1}, 3, "DepthConcat")],
)
def test_concat_and_split_info(args: dict, axis: int, op_type: str, tmp_path: Path) -> None:
    shapes = [[2, 3, 4, 5], [2, 3, 4, 5]]
    shapes[1][axis] = 2
    a, b = rand(*shapes[0]), rand(*shapes[1])
    got = run_net(tmp_path, [op(op_type, ["a", "b"], ["y", "info"], **args)], {}, {"a": a, "b": b}, ["y", "info"])
    np.testing.assert_array_equal(got["y"], np.concatenate([a, b], axis=axis))
    assert got["info"].dtype == np.int32
    np.testing.assert_array_equal(got["info"], [a.shape[axis], b.shape[axis]])


def test_concat_add_axis_stacks(tmp_path: Path) -> None:
    a, b = rand(2, 3), rand(2, 3)
    got = run_net(tmp_path, [op("Concat", ["a", "b"], ["y", "info"], axis=1, add_axis=1)], {}, {"a": a, "b": b}, ["y", "info"])
    np.testing.assert_array_equal(got["y"], np.stack([a, b], axis=1))
    np.testing.assert_array_equal(got["info"], [1, 1])


def test_split_by_argument_input_and_equally(tmp_path: Path) -> None:
    x = rand(2, 6, 3)
    ops = [
        op("Split", ["x"], ["p", "q"], axis=1, split=[2, 4]),
        op("Split", ["x", "sizes"], ["r", "s", "t"], axis=1),
        op("Split", ["x"], ["u", "v", "w"]),  # no axis: channel dim of NCHW = 1, equal parts
        op("Split", ["x"], ["e", "f", "g"], axis=2, add_axis=1),
    ]
    got = run_net(
        tmp_path, ops, {"sizes": np.array([1, 2, 3], np.int32)}, {"x": x}, ["p", "q", "r", "s", "t", "u", "v", "w", "e", "f", "g"]
    )
    for names, cuts in ((("p", "q"), [2]), (("r", "s", "t"), [1, 3]), (("u", "v", "w"), [2, 4])):
        for name, part in zip(names, np.split(x, cuts, axis=1)):
            np.testing.assert_array_equal(got[name], part)
    for name, index in (("e", 0), ("f", 1), ("g", 2)):
        np.testing.assert_array_equal(got[name], x[:, :, index])


def test_reshape_with_old_shape_and_shape_input(tmp_path: Path) -> None:
    x = rand(2, 3, 4)
    ops = [
        op("Reshape", ["x"], ["y", "old"], shape=[0, -1]),
        op("Reshape", ["x", "shape"], ["z", "old2"]),
    ]
    got = run_net(tmp_path, ops, {"shape": np.array([4, 6], np.int64)}, {"x": x}, ["y", "old", "z"])
    np.testing.assert_array_equal(got["y"], x.reshape(2, 12))
    np.testing.assert_array_equal(got["old"], [2, 3, 4])
    assert got["old"].dtype == np.int64
    np.testing.assert_array_equal(got["z"], x.reshape(4, 6))


def test_flatten_transpose_squeeze_expand(tmp_path: Path) -> None:
    x = rand(2, 3, 1, 4)
    ops = [
        op("Flatten", ["x"], ["f"]),
        op("Flatten", ["x"], ["f2"], axis=2),
        op("FlattenToVec", ["x"], ["v"]),
        op("Transpose", ["x"], ["t"], axes=[0, 3, 1, 2]),
        op("Transpose", ["x"], ["r"]),
        op("Squeeze", ["x"], ["s"], dims=[2]),
        op("ExpandDims", ["x"], ["e"], dims=[0, 5]),
        op("NCHW2NHWC", ["x"], ["nhwc"]),
        op("NHWC2NCHW", ["x"], ["nchw"]),
    ]
    got = run_net(tmp_path, ops, {}, {"x": x}, ["f", "f2", "v", "t", "r", "s", "e", "nhwc", "nchw"])
    np.testing.assert_array_equal(got["f"], x.reshape(2, 12))
    np.testing.assert_array_equal(got["f2"], x.reshape(6, 4))
    np.testing.assert_array_equal(got["v"], x.reshape(-1))
    np.testing.assert_array_equal(got["t"], x.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(got["r"], x.transpose())
    np.testing.assert_array_equal(got["s"], x.reshape(2, 3, 4))
    np.testing.assert_array_equal(got["e"], x.reshape(1, 2, 3, 1, 4, 1))
    np.testing.assert_array_equal(got["nhwc"], x.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(got["nchw"], x.transpose(0, 3, 1, 2))


@pytest.mark.parametrize("op_type", ["Copy", "Alias", "StopGradient", "EnsureDense", "CopyCPUToGPU", "CopyGPUToCPU"])
def test_identity_like(op_type: str, tmp_path: Path) -> None:
    x = rand(3, 2)
    got = run_net(tmp_path, [op(op_type, ["x"], ["y"])], {}, {"x": x}, ["y"])["y"]
    np.testing.assert_array_equal(got, x)


def test_in_place_ops_get_unique_onnx_names(tmp_path: Path) -> None:
    """Caffe2 reuses blob names (in-place Relu); ONNX is SSA: the last write keeps the blob's name."""
    x, b = rand(2, 3), rand(3)
    ops = [op("Add", ["x", "b"], ["h"], broadcast=1), op("Relu", ["h"], ["h"]), op("Scale", ["h"], ["h"], scale=3.0)]
    got = run_net(tmp_path, ops, {"b": b}, {"x": x}, ["h"])
    assert_close(got["h"], np.maximum(x + b, 0) * 3.0)
