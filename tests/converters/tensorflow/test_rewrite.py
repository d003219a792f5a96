"""Flatbuffer rewrites before tf2onnx, each against the TFLite interpreter running the original file:
block-sparse weights (DENSIFY), MediaPipe's Convolution2DTransposeBias, one-scale per-axis quantisation."""

from __future__ import annotations

import numpy as np
import pytest

from edgecc.converters.tensorflow import flatbuffer, rewrite, sparse
from edgecc.converters.tensorflow.reader import interpreter_from_bytes
from tests.converters.tensorflow import tflite_models
from tests.converters.tensorflow.helpers import convert_and_verify


def _run(data: bytes, feed: np.ndarray, resolver: str = "AUTO") -> np.ndarray:
    interpreter = interpreter_from_bytes(data, delegates=resolver == "AUTO")
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], feed)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def _feed(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _op_names(data: bytes) -> list[str]:
    return [o.name for o in flatbuffer.read(data, "model").operators()]


@pytest.mark.parametrize("block", [None, (1, 4)])
def test_densify_inverts_the_sparse_encoding(block):
    dense = np.random.default_rng(1).normal(size=(6, 8)).astype(np.float32)
    dense[np.random.default_rng(2).random((6, 8)) < 0.6] = 0.0
    if block:
        dense.reshape(6, 2, 4)[np.random.default_rng(3).random((6, 2)) < 0.5] = 0.0
    values, params = sparse.sparsify(dense, block=block)
    assert len(values) < dense.size
    assert np.array_equal(sparse.densify(values, dense.shape, params), dense)


@pytest.mark.parametrize("maker", ["experimental_sparsity", "sparse_conv"])
def test_sparse_weights_convert_and_match_the_interpreter(tf_dir, maker):
    path = getattr(tflite_models, maker)(tf_dir / f"{maker}.tflite")
    data = path.read_bytes()
    model = flatbuffer.read(data, str(path))
    assert "DENSIFY" in _op_names(data) and any(t.sparsity is not None for t in model.main.tensors)
    notes = rewrite.prepare(model)
    assert any("densified" in n for n in notes)
    rewritten = model.serialize()
    assert "DENSIFY" not in _op_names(rewritten)
    shape = tuple(interpreter_from_bytes(data).get_input_details()[0]["shape"])
    feed = _feed(shape)
    # the rewrite keeps TFLite's numerics (TFLite's builtin kernels on both files)
    np.testing.assert_allclose(
        _run(rewritten, feed, "BUILTIN_WITHOUT_DEFAULT_DELEGATES"),
        _run(data, feed, "BUILTIN_WITHOUT_DEFAULT_DELEGATES"),
        rtol=1e-5,
        atol=1e-6,
    )
    converted = convert_and_verify(path)  # the ONNX model against the interpreter on the original file
    assert converted.report.passed, converted.report.to_dict()


def test_convolution2d_transpose_bias_is_transpose_conv_plus_bias(tf_dir):
    path, strides = tflite_models.transpose_conv_bias(tf_dir / "transpose_conv_bias.tflite")
    data = path.read_bytes()
    model = flatbuffer.read(data, str(path))
    assert model.custom_operators() == {"Convolution2DTransposeBias": [model.operators()[-1].node]}
    # MediaPipe's semantics, independently: the numpy transposed convolution (SAME, output = input x stride) + bias,
    # applied to the custom op's own input (read from the file's conv layer run by TFLite) -- compared with XNNPACK,
    # the only TFLite kernel for this custom op
    main = model.main
    custom = next(op for op in main.operators if model.opcode_name(op.opcodeIndex)[1])
    x, weights, bias = (int(t) for t in custom.inputs)
    feed = _feed((1, 6, 7, 4))
    interpreter = interpreter_from_bytes(data)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], feed)
    interpreter.invoke()
    expected = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    rewritten_model = flatbuffer.read(data, str(path))
    notes = rewrite.prepare(rewritten_model)
    assert any("TRANSPOSE_CONV + ADD" in n for n in notes)
    rewritten = rewritten_model.serialize()
    assert "Convolution2DTransposeBias" not in _op_names(rewritten) and "TRANSPOSE_CONV" in _op_names(rewritten)
    # the custom op's input, from the rewritten model run by TFLite's builtin kernels with that tensor as an output
    head = flatbuffer.read(rewritten, "head")
    head.main.outputs = np.asarray([x], dtype=np.int32)
    conv_out = _run(head.serialize(), feed, "BUILTIN_WITHOUT_DEFAULT_DELEGATES")
    reference = tflite_models.transpose_conv_numpy(conv_out, model.constant(main, weights), model.constant(main, bias), strides)
    assert expected.shape == reference.shape == (1, 12, 14, 3)
    np.testing.assert_allclose(expected, reference, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(_run(rewritten, feed, "BUILTIN_WITHOUT_DEFAULT_DELEGATES"), reference, rtol=1e-4, atol=1e-4)
    converted = convert_and_verify(path)  # ONNX against the interpreter (XNNPACK) on the custom-op file
    assert converted.report.passed, converted.report.to_dict()
    assert "ConvTranspose" in {n.op_type for n in converted.model.graph.node}


def test_one_scale_per_axis_is_per_tensor(cnn_tflite, tmp_path):
    path, name = tflite_models.one_scale_per_axis(cnn_tflite["int8"], tmp_path / "one_scale.tflite")
    with pytest.raises(Exception, match="quantized_dimension"):  # the full interpreter refuses the file
        interpreter_from_bytes(path.read_bytes())
    model = flatbuffer.read(path.read_bytes(), str(path))
    notes = rewrite.prepare(model)
    assert any(name in n and "per-tensor" in n for n in notes)
    rewritten = model.serialize()
    original = flatbuffer.read(cnn_tflite["int8"].read_bytes(), "int8")
    assert rewritten == original.serialize()  # exactly the per-tensor model it was made from
    converted = convert_and_verify(path)  # the reference runs the rewritten flatbuffer, and says so
    assert converted.report.passed, converted.report.to_dict()
    assert "rewritten flatbuffer" in converted.report.reference
