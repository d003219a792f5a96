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
