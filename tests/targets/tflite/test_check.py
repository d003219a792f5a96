"""compare_with_onnx's criteria in each way onnxruntime runs int8 (edgecc.ortint8): the TFLite interpreter is the
candidate, onnxruntime on the same QDQ partition the reference; a TFLite file with wrong weights fails in every mode."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

from edgecc.targets.tflite import compare_with_onnx, emit_tflite
from tests.targets.tflite.models import build, feeds_for, quantized

MODES = ("fused", "unsigned", "reference")


def _int8_model(case: str) -> tuple[onnx.ModelProto, list[dict[str, np.ndarray]]]:
    model = build(case)
    return quantized(model, feeds_for(model, 8, seed=3)), feeds_for(model, 3, seed=5)


def _with_one_channel_negated(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose int8 weights of rank 4 have their first output channel negated (a writer bug's typical result)."""
    wrong = onnx.ModelProto()
    wrong.CopyFrom(model)
    for index, tensor in enumerate(wrong.graph.initializer):
        if tensor.data_type == TensorProto.INT8 and len(tensor.dims) == 4:
            values = numpy_helper.to_array(tensor).copy()
            values[0] = -np.clip(values[0], -127, 127)
            wrong.graph.initializer[index].CopyFrom(numpy_helper.from_array(values, tensor.name))
            return wrong
    raise AssertionError("no int8 weights to perturb")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", ["conv", "prelu_rank4_slope", "depthwise"])
def test_the_writers_int8_file_passes_in_every_int8_mode(monkeypatch, mode: str, case: str) -> None:
    monkeypatch.setenv("EDGECC_ORT_INT8", mode)
    qdq, feeds = _int8_model(case)
    report = compare_with_onnx(emit_tflite(qdq, name=case), qdq, feeds)
    assert report["passed"], report
    if mode == "reference":  # a float emulation: no bound on the largest step difference, 99 % within one step
        assert report["reference_int8_kernels"] == "reference"
        assert all(o["within_one_step"] >= 0.99 if o["kind"] == "int8" else o["cosine"] >= 0.9999 for o in report["outputs"])


@pytest.mark.parametrize("mode", MODES)
def test_a_tflite_file_with_wrong_weights_fails_in_every_int8_mode(monkeypatch, mode: str) -> None:
    monkeypatch.setenv("EDGECC_ORT_INT8", mode)
    qdq, feeds = _int8_model("conv")
    report = compare_with_onnx(emit_tflite(_with_one_channel_negated(qdq), name="wrong"), qdq, feeds)
    assert not report["passed"], report


def _deep_hardswish_network(blocks: int = 16) -> onnx.ModelProto:
    """MobileNetV3-style residual blocks (depthwise 3x3, HardSwish, pointwise, Add) on 16 channels: deep enough for
    TFLite's and onnxruntime's int8 kernels to drift apart (TFLite's int8 HARD_SWISH rounds its own way)."""
    from onnx import helper

    rng = np.random.default_rng(11)
    nodes, inits, src = [], [], "x"
    for i in range(blocks):
        inits += [
            numpy_helper.from_array((rng.standard_normal((16, 1, 3, 3)) * 0.4).astype(np.float32), f"d{i}"),
            numpy_helper.from_array((rng.standard_normal((16, 16, 1, 1)) * 0.25).astype(np.float32), f"p{i}"),
            numpy_helper.from_array((rng.standard_normal(16) * 0.05).astype(np.float32), f"b{i}"),
        ]
        nodes += [
            helper.make_node("Conv", [src, f"d{i}"], [f"dw{i}"], pads=[1, 1, 1, 1], group=16),
            helper.make_node("HardSwish", [f"dw{i}"], [f"a{i}"]),
            helper.make_node("Conv", [f"a{i}", f"p{i}", f"b{i}"], [f"pw{i}"]),
            helper.make_node("Add", [src, f"pw{i}"], [f"s{i}"]),
        ]
        src = f"s{i}"
    nodes.append(helper.make_node("Conv", [src, "wy", "by"], ["y"]))
    inits += [
        numpy_helper.from_array((rng.standard_normal((4, 16, 1, 1)) * 0.2).astype(np.float32), "wy"),
        numpy_helper.from_array(np.zeros(4, np.float32), "by"),
    ]
    graph = helper.make_graph(
        nodes,
        "deep",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16, 16])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("mode", MODES)
def test_a_deep_partition_is_judged_against_the_float_partition_and_a_wrong_channel_still_fails(monkeypatch, mode: str) -> None:
    """Through many layers the two integer implementations drift apart by several steps (rounding; on this host's
    fused kernels 12 steps, 57 % within one step), which the steps rule would call a writer bug; against the float
    partition both are equally accurate (SQNR 28.5 dB each). A negated weight channel loses 7 dB and fails."""
    from edgecc.targets.tflite.check import integer_layers

    monkeypatch.setenv("EDGECC_ORT_INT8", mode)
    model = _deep_hardswish_network()
    qdq = quantized(model, feeds_for(model, 8, seed=3))
    feeds = feeds_for(model, 3, seed=5)
    assert integer_layers(qdq) > 8
    report = compare_with_onnx(emit_tflite(qdq, name="deep"), qdq, feeds, float_model=model)
    assert report["passed"], report
    wrong = compare_with_onnx(emit_tflite(_with_one_channel_negated(qdq), name="wrong"), qdq, feeds, float_model=model)
    assert not wrong["passed"], wrong


def test_the_float_anchor_passes_equally_accurate_drift_and_fails_a_less_accurate_candidate() -> None:
    """agreement_report on made-up runs: two int8 results with independent rounding noise (many steps apart, equally far
    from float) pass with the float anchor and fail without it; a result 4x noisier fails with it."""
    from edgecc.targets.tflite.check import agreement_report

    rng = np.random.default_rng(0)
    step = 0.05
    exact = [{"y": rng.uniform(-4, 4, 4096)} for _ in range(2)]

    def noisy(scale: float) -> list[dict[str, np.ndarray]]:
        return [{"y": np.round((e["y"] + rng.normal(0, scale * step, e["y"].shape)) / step) * step} for e in exact]

    reference, candidate, worse = noisy(3.0), noisy(3.0), noisy(12.0)
    kwargs = {"reference_kernels": "fused", "quantized": True, "integer_layers": 20}
    assert not agreement_report(candidate, reference, {"y": step}, **kwargs)["passed"]
    anchored = agreement_report(candidate, reference, {"y": step}, float_outputs=exact, **kwargs)
    assert anchored["passed"], anchored
    assert abs(anchored["outputs"][0]["float_sqnr_db"]["candidate"] - anchored["outputs"][0]["float_sqnr_db"]["reference"]) < 1
    assert not agreement_report(worse, reference, {"y": step}, float_outputs=exact, **kwargs)["passed"]
