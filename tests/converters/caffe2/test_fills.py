"""init_net fill operators become initializers with the documented values and types."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tests.conftest import run_edgecc
from tests.converters.caffe2.netdefs import net, op, run_net, write_pair

RNG = np.random.default_rng(5)


def _copy_all(names: list[str]) -> list:
    return [op("Copy", [n], [f"{n}_out"]) for n in names]


def test_given_tensor_fill_variants(tmp_path: Path) -> None:
    floats = RNG.standard_normal((2, 3)).astype(np.float32)
    init_ops = [
        op("GivenTensorFill", [], ["f"], shape=[2, 3], values=[float(v) for v in floats.reshape(-1)]),
        op("GivenTensorDoubleFill", [], ["d"], shape=[2], values=[0.5, -1.25]),
        op("GivenTensorIntFill", [], ["i"], shape=[3], values=[1, -2, 2**31 - 1]),
        op("GivenTensorInt64Fill", [], ["l"], shape=[2], values=[2**40, -5]),
        op("GivenTensorBoolFill", [], ["b"], shape=[2, 2], values=[1, 0, 0, 1]),
        op("GivenTensorByteStringToUInt8Fill", [], ["u"], shape=[4], values=b"\x00\x7f\x80\xff"),
        op("GivenTensorFp16Fill", [], ["h"], shape=[2], values=[0.5, 65504.0]),
        op("GivenTensorInt16Fill", [], ["s16"], shape=[2], values=[-32768, 123]),
        op("ConstantFill", [], ["c"], shape=[2, 2], value=1.5),
        op("ConstantFill", [], ["ci"], shape=[3], value=7, dtype=10),
        op("ConstantFill", [], ["cb"], shape=[1], value=1, dtype=5),
    ]
    names = ["f", "d", "i", "l", "b", "u", "h", "s16", "c", "ci", "cb"]
    got = run_net(
        tmp_path,
        _copy_all(names) + [op("Relu", ["x"], ["y"])],
        {},
        {"x": np.zeros((1,), np.float32)},
        [f"{n}_out" for n in names],
        init_ops=init_ops,
    )
    np.testing.assert_array_equal(got["f_out"], floats)
    assert got["d_out"].dtype == np.float64 and list(got["d_out"]) == [0.5, -1.25]
    assert got["i_out"].dtype == np.int32 and list(got["i_out"]) == [1, -2, 2**31 - 1]
    assert got["l_out"].dtype == np.int64 and list(got["l_out"]) == [2**40, -5]
    np.testing.assert_array_equal(got["b_out"], [[True, False], [False, True]])
    assert got["u_out"].dtype == np.uint8 and list(got["u_out"]) == [0, 127, 128, 255]
    assert got["h_out"].dtype == np.float16 and list(got["h_out"]) == [0.5, 65504.0]
    assert got["s16_out"].dtype == np.int16 and list(got["s16_out"]) == [-32768, 123]
    np.testing.assert_array_equal(got["c_out"], np.full((2, 2), 1.5, np.float32))
    assert got["ci_out"].dtype == np.int64 and list(got["ci_out"]) == [7, 7, 7]
    assert got["cb_out"].dtype == np.bool_ and bool(got["cb_out"][0])


def test_string_fill() -> None:
    """GivenTensorStringFill gives an object array of str (checked below the pipeline: see the report on string initializers)."""
    from edgecc.converters.caffe2.graph import Op
    from edgecc.converters.caffe2.ops_fill import run_fill

    proto = op("GivenTensorStringFill", [], ["s"], shape=[2])
    proto.arg.add(name="values").strings.extend([b"cat", b"dog"])
    blob = run_fill(Op(0, proto), False)
    assert blob.value.dtype == object and list(blob.value) == ["cat", "dog"]


def test_int8_fills_keep_scale_and_zero_point(tmp_path: Path) -> None:
    q = np.array([0, 10, 128, 255], np.uint8)
    init_ops = [
        op("Int8GivenTensorFill", [], ["w"], shape=[4], values=q.tobytes(), Y_scale=0.5, Y_zero_point=128),
        op("Int8GivenIntTensorFill", [], ["bias"], shape=[2], values=[-300, 40], Y_scale=0.25, Y_zero_point=0),
    ]
    ops = [op("Int8Dequantize", ["w"], ["w_f"]), op("Int8Dequantize", ["bias"], ["b_f"]), op("Copy", ["w"], ["w_q"])]
    got = run_net(
        tmp_path,
        ops + [op("Relu", ["x"], ["y"])],
        {},
        {"x": np.zeros((1,), np.float32)},
        ["w_f", "b_f", "w_q"],
        init_ops=init_ops,
    )
    np.testing.assert_array_equal(got["w_q"], q)
    np.testing.assert_allclose(got["w_f"], (q.astype(np.float32) - 128) * 0.5)
    np.testing.assert_allclose(got["b_f"], [-75.0, 10.0])


@pytest.mark.parametrize("kind", ["XavierFill", "GaussianFill", "UniformFill", "MSRAFill"])
def test_random_fills_need_random_weights(kind: str, tmp_path: Path) -> None:
    init = net([op(kind, [], ["w"], shape=[4, 3], min=-1.0, max=1.0, mean=0.0, std=2.0)], outputs=["w"])
    predict = net([op("FC", ["x", "w", "b"], ["y"])], ["x", "w", "b"], ["y"])
    init.op.append(op("ConstantFill", [], ["b"], shape=[4], value=0.0))
    (tmp_path / "predict.pb").write_bytes(predict.SerializeToString())
    (tmp_path / "init.pb").write_bytes(init.SerializeToString())
    out = tmp_path / "m.onnx"
    refused = run_edgecc("convert", tmp_path / "predict.pb", tmp_path / "init.pb", "--input", "x:2x3", "-o", out)
    assert refused.returncode == 2, refused.stderr
    assert "randomly" in refused.stderr and "--random-weights" in refused.stderr and f"w ({kind})" in refused.stderr
    assert not out.exists()
    accepted = run_edgecc(
        "convert", tmp_path / "predict.pb", tmp_path / "init.pb", "--input", "x:2x3", "--random-weights", "-o", out
    )
    assert accepted.returncode == 0, accepted.stderr
    weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(out)).graph.initializer}
    w = weights["w"]
    assert w.shape == (4, 3) and w.dtype == np.float32 and np.unique(w).size == 12
    if kind == "UniformFill":
        assert w.min() >= -1.0 and w.max() <= 1.0
    if kind == "XavierFill":
        assert np.abs(w).max() <= np.sqrt(3.0 / 3)


def test_fill_with_wrong_value_count_is_invalid(tmp_path: Path) -> None:
    predict, init = write_pair(
        tmp_path,
        [op("FC", ["x", "w", "b"], ["y"])],
        {},
        ["x"],
        ["y"],
        init_ops=[
            op("GivenTensorFill", [], ["w"], shape=[4, 3], values=[1.0] * 11),
            op("GivenTensorFill", [], ["b"], shape=[4], values=[0.0] * 4),
        ],
    )
    predict_net = net([op("FC", ["x", "w", "b"], ["y"])], ["x", "w", "b"], ["y"])
    predict.write_bytes(predict_net.SerializeToString())
    result = run_edgecc("convert", predict, init, "--input", "x:1x3", "-o", tmp_path / "m.onnx")
    assert result.returncode == 3, result.stderr
    assert (
        "has 11 values for shape 4x3 (12 elements)" in result.stderr and "'w'" in result.stderr and "init_net.pb" in result.stderr
    )
