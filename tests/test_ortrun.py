"""onnxruntime sessions: int8 QDQ models give their QDQ semantics on every CPU (fused kernels only where they are exact)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import numpy_helper

from edgecc.ortint8 import _saturation_probe, host_int8_mode, to_unsigned
from edgecc.ortrun import OrtRunner


def _qdq_semantics(model, x: np.ndarray) -> np.ndarray:
    """numpy oracle of the probe: Q(x) -> Conv -> Q -> Reshape -> Q -> MatMul -> Q -> DQ, in float64, round half to even."""
    t = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in model.graph.initializer}

    def q(v: np.ndarray, scale: float) -> np.ndarray:
        return np.clip(np.round(v / scale), -128, 127)

    x_q = q(x.astype(np.float64), float(t["x_scale"]))
    conv = np.einsum("oc,ncw->now", t["w_q"][:, :, 0, 0], x_q[:, :, 0, :])[:, :, None, :] + t["b_q"][None, :, None, None]
    c_dq = q(conv, float(t["c_scale"])) * float(t["c_scale"])
    flat = q(c_dq.reshape(8, -1), float(t["c_scale"])) * float(t["c_scale"])
    mm = flat @ t["m_q"]
    return q(mm, float(t["y_scale"])) * float(t["y_scale"])


@pytest.mark.parametrize("mode", ["auto", "unsigned", "reference"])
def test_int8_results_are_the_qdq_semantics_on_this_cpu(monkeypatch, mode: str) -> None:
    """On x86 without VNNI onnxruntime's fused kernels saturate on this model; `auto` must still give the exact result."""
    monkeypatch.setenv("EDGECC_ORT_INT8", mode)
    model, feeds, (step,) = _saturation_probe()
    runner = OrtRunner(model, name="probe")
    got = runner.run(feeds)["y"]
    expected = _qdq_semantics(model, feeds["x"])
    assert np.abs(got - expected).max() <= 1.01 * step, (runner.int8_kernels, got.ravel()[:8], expected.ravel()[:8])
    assert runner.int8_kernels == (mode if mode != "auto" else host_int8_mode())


def test_mode_is_taken_from_the_environment(monkeypatch) -> None:
    for mode in ("fused", "unsigned", "reference"):
        monkeypatch.setenv("EDGECC_ORT_INT8", mode)
        assert host_int8_mode() == mode
    monkeypatch.delenv("EDGECC_ORT_INT8")
    assert host_int8_mode() in ("fused", "unsigned", "reference")


def test_float_models_and_unoptimised_sessions_are_not_probed(monkeypatch) -> None:
    monkeypatch.setenv("EDGECC_ORT_INT8", "fused")
    model, feeds, _ = _saturation_probe()
    assert OrtRunner(model, name="probe", optimize=False).int8_kernels == "reference"
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "float",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    float_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    monkeypatch.setenv("EDGECC_ORT_INT8", "unsigned")
    assert OrtRunner(float_model, name="float").int8_kernels == "fused"  # nothing signed to rewrite


def test_unsigned_rewrite_keeps_int8_inputs_and_outputs(monkeypatch) -> None:
    """A full-integer partition (int8 in, int8 out) rewritten to uint8 inside the session: callers still see int8, and
    the values are those of the QDQ semantics."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(1)
    w = rng.integers(-127, 128, size=(16, 32, 1, 1)).astype(np.int8)
    tensors = {
        "s": np.array(0.05, np.float32),
        "z": np.array(-3, np.int8),
        "w_q": w,
        "w_s": np.full(16, 0.01, np.float32),
        "w_z": np.zeros(16, np.int8),
        "o_s": np.array(0.4, np.float32),
        "o_z": np.array(5, np.int8),
        "perm_shape": np.array([1, 16, 4, 4], np.int64),
    }
    nodes = [
        helper.make_node("DequantizeLinear", ["x", "s", "z"], ["x_dq"]),
        helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w"], axis=0),
        helper.make_node("Conv", ["x_dq", "w"], ["c"]),
        helper.make_node("QuantizeLinear", ["c", "o_s", "o_z"], ["c_q"]),
        helper.make_node("MaxPool", ["c_q"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Reshape", ["p", "perm_shape"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "int8_io",
        [helper.make_tensor_value_info("x", TensorProto.INT8, [1, 32, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.INT8, [1, 16, 4, 4])],
        [numpy_helper.from_array(v, k) for k, v in tensors.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    assert to_unsigned(model) is not None
    x = rng.integers(-128, 128, size=(1, 32, 8, 8)).astype(np.int8)
    monkeypatch.setenv("EDGECC_ORT_INT8", "reference")
    expected = OrtRunner(model, name="reference").run({"x": x})["y"]
    monkeypatch.setenv("EDGECC_ORT_INT8", "unsigned")
    runner = OrtRunner(model, name="unsigned")
    assert runner.int8_kernels == "unsigned"
    assert [i.dtype for i in runner.inputs] == ["int8"] and [o.dtype for o in runner.outputs] == ["int8"]
    got = runner.run({"x": x})["y"]
    assert got.dtype == np.int8
    assert np.abs(got.astype(np.int16) - expected.astype(np.int16)).max() <= 1


def test_unsigned_rewrite_refuses_int8_it_cannot_follow() -> None:
    """An int8 tensor computed on (here Relu on int8) would change meaning under the shift: no rewrite."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "int8_relu",
        [helper.make_tensor_value_info("x", TensorProto.INT8, [4])],
        [helper.make_tensor_value_info("y", TensorProto.INT8, [4])],
    )
    assert to_unsigned(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)) is None
