"""Each operator alone, float and int8: the TFLite interpreter vs onnxruntime on the same ONNX (compare_with_onnx)."""

from __future__ import annotations

import pytest

from edgecc.targets.tflite import compare_with_onnx, emit_tflite
from tests.targets.tflite.models import CASES, NCHW_ORDER, build, feeds_for, quantized


@pytest.mark.parametrize("case", sorted(CASES))
def test_float_operator_matches_onnxruntime(case: str) -> None:
    model = build(case)
    artifact = emit_tflite(model, name=case)
    assert CASES[case][1] in artifact.operators
    assert artifact.report["internal_transposes"] == (1 if case in NCHW_ORDER else 0)
    report = compare_with_onnx(artifact, model, feeds_for(model, 2))
    assert report["passed"], report


@pytest.mark.parametrize("case", sorted(CASES))
def test_int8_operator_matches_onnxruntime(case: str) -> None:
    model = build(case)
    qdq = quantized(model, feeds_for(model, 8, seed=3))
    artifact = emit_tflite(qdq, name=case)
    op_type = next(n.op_type for n in model.graph.node if n.name.startswith("the_"))
    if any(n.op_type == op_type for n in qdq.graph.node):  # the quantiser folds some activations into Q ranges
        assert CASES[case][1] in artifact.operators
    report = compare_with_onnx(artifact, qdq, feeds_for(model, 2))
    assert report["passed"], report
    assert artifact.report["quantized"]
