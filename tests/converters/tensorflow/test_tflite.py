"""TFLite float, fp16-weight, dynamic-range and full-integer (int8/uint8) models against the TFLite interpreter."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from edgecc.converters import tensorflow as frontend
from edgecc.converters.tensorflow.reader import tflite_interpreter
from edgecc.errors import UsageError
from edgecc.verify import tolerance_for
from tests.converters.tensorflow.helpers import TFOptions, convert_and_verify, qdq_scales


@pytest.mark.parametrize("variant", ["float", "fp16", "dynamic"])
def test_float_io_variants(cnn_tflite, variant):
    converted = convert_and_verify(cnn_tflite[variant])
    assert converted.report.passed, converted.report.to_dict()
    assert converted.runner.inputs[0].dtype == "float32"


def test_fp16_and_dynamic_really_hold_reduced_weights(cnn_tflite):
    """The fixtures are what they claim: fp16 weights / int8 weights next to float activations."""
    fp16 = Counter(t["dtype"].__name__ for t in tflite_interpreter(str(cnn_tflite["fp16"]), delegates=False).get_tensor_details())
    dynamic = frontend.describe([str(cnn_tflite["dynamic"])], TFOptions())
    assert fp16["float16"] >= 1
    assert "int8" in dynamic["quantised tensors"]


@pytest.mark.parametrize("variant", ["int8", "uint8"])
def test_full_integer_is_qdq_with_tflite_scales(cnn_tflite, variant):
    path = str(cnn_tflite[variant])
    converted = convert_and_verify(path)
    report = converted.report
    assert report.passed, report.to_dict()
    assert report.tolerance == tolerance_for("int8", variant)  # compared in quantised steps
    assert all(o.step == 1.0 for o in report.outputs)
    assert all(o.max_abs <= 1.0 for o in report.outputs)
    assert converted.runner.inputs[0].dtype == variant
    ops = Counter(n.op_type for n in converted.model.graph.node)
    assert ops["QuantizeLinear"] >= 3 and ops["DequantizeLinear"] >= 3, ops
    # every scale TFLite stores for an activation or weight is kept (no dequantise-everything)
    onnx_scales = qdq_scales(converted.model)
    interpreter = tflite_interpreter(path, delegates=False)
    kept = 0
    per_channel = 0
    for tensor in interpreter.get_tensor_details():
        scales = tensor["quantization_parameters"]["scales"]
        if not len(scales) or tensor["dtype"] == np.int32:
            continue
        found = any(s.shape == scales.shape and np.allclose(s, scales, rtol=1e-6) for s in onnx_scales)
        kept += found
        per_channel += found and len(scales) > 1
    assert kept >= 8 and per_channel >= 3, (kept, per_channel)


def test_dequantize_gives_float_graph(cnn_tflite):
    converted = convert_and_verify(cnn_tflite["int8"], TFOptions(dequantize=True))
    ops = Counter(n.op_type for n in converted.model.graph.node)
    assert ops["DequantizeLinear"] == 0 and ops["QuantizeLinear"] <= 1, ops  # at most the int8 output boundary
    assert converted.report.passed, converted.report.to_dict()
    assert converted.report.outputs[0].cosine >= 0.99


def test_dequantize_rejected_for_keras(cnn_files):
    with pytest.raises(UsageError, match="--dequantize"):
        frontend.convert([str(cnn_files["h5"])], TFOptions(dequantize=True))


def test_describe_lists_quantisation_parameters(cnn_tflite):
    details = frontend.describe([str(cnn_tflite["int8"])], TFOptions())
    assert "scale" in details["inputs"][0] and "zero point" in details["inputs"][0]
    assert "DEPTHWISE_CONV_2D x1" in details["operators"]
    assert any("per-channel" in row for row in details["quantisation"])


def test_canonical_order_and_names(cnn_tflite):
    """tf2onnx's node order and invented names vary with Python's hash seed; canonicalize removes both."""
    import onnx

    from edgecc.converters.tensorflow.build import canonicalize

    first = frontend.convert([str(cnn_tflite["int8"])], TFOptions())
    second = onnx.ModelProto()
    second.CopyFrom(first)
    nodes = list(second.graph.node)[::-1]
    del second.graph.node[:]
    second.graph.node.extend(nodes)
    generated = next(n for n in second.graph.node if n.op_type == "DequantizeLinear")
    old, new = generated.output[0], "Dequant_seed_dependent__999:0"
    for node in second.graph.node:
        node.input[:] = [new if x == old else x for x in node.input]
        node.output[:] = [new if x == old else x for x in node.output]
    assert second.SerializeToString() != first.SerializeToString()
    assert canonicalize(second).SerializeToString() == first.SerializeToString()
