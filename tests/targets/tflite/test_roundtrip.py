"""Round trip: a TFLite file -> `edgecc convert` (QDQ ONNX keeping every scale) -> the writer gives back the same
operator sequence and the same scales / zero points (per tensor and per channel)."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgecc.targets.tflite import compare_with_onnx, emit_tflite
from tests.conftest import SAMPLES, run_edgecc


def signature(data: bytes) -> list[tuple[str, list]]:
    """(TFLite builtin name, [quantisation of each input/output tensor]) per operator, read with the tflite schema."""
    from tflite import BUILTIN_OPCODE2NAME

    model = importlib.import_module("tflite.Model").Model.GetRootAs(data, 0)
    graph = model.Subgraphs(0)
    ops = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        quants = []
        for t in [*op.InputsAsNumpy(), *op.OutputsAsNumpy()]:
            q = graph.Tensors(int(t)).Quantization() if t >= 0 else None
            if q is None or q.ScaleLength() == 0:
                quants.append(None)
            else:
                quants.append(
                    (tuple(np.float32(q.ScaleAsNumpy())), tuple(int(z) for z in q.ZeroPointAsNumpy()), q.QuantizedDimension())
                )
        ops.append((BUILTIN_OPCODE2NAME[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())], quants))
    return ops


def _round_trip(tflite: Path, tmp_path: Path, input_name: str, shape: tuple[int, ...]) -> None:
    onnx_path = tmp_path / "converted.onnx"
    result = run_edgecc("convert", tflite, "-o", onnx_path)
    assert result.returncode == 0, result.stderr
    model = onnx.load(onnx_path)
    artifact = emit_tflite(model, name=tflite.stem)
    original = signature(tflite.read_bytes())
    written = signature(artifact.data)
    # the same operators with the same scales; tf2onnx may list independent branches in another order
    assert sorted(written, key=repr) == sorted(original, key=repr)
    if tflite.stem.startswith("hello_world"):
        assert written == original
    rng = np.random.default_rng(0)
    report = compare_with_onnx(artifact, model, [{input_name: rng.uniform(-1, 1, shape).astype(np.float32)} for _ in range(3)])
    assert report["passed"], report


@pytest.mark.parametrize(
    "sample", ["tflite_hello_world_int8/hello_world_int8.tflite", "tflite_hello_world_float/hello_world_float.tflite"]
)
def test_hello_world_round_trip(sample: str, tmp_path: Path) -> None:
    _round_trip(SAMPLES / "models" / sample, tmp_path, "serving_default_dense_input:0", (1, 1))


def make_tensorflow_int8_cnn(path: Path) -> Path:
    """A tiny Keras CNN made full-int8 by TensorFlow's own converter (per-channel conv weights, float io with QUANTIZE)."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input((12, 12, 3), batch_size=1, name="image")
    a = tf.keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    b = tf.keras.layers.DepthwiseConv2D(3, padding="same", activation="relu6")(a)
    c = tf.keras.layers.Add()([a, b])
    d = tf.keras.layers.MaxPooling2D(2)(c)
    e = tf.keras.layers.Concatenate()([d, tf.keras.layers.AveragePooling2D(2)(c)])
    f = tf.keras.layers.Reshape((-1,))(e)
    out = tf.keras.layers.Dense(5, activation="softmax")(f)
    keras_model = tf.keras.Model(inp, out)
    rng = np.random.default_rng(1)
    samples = [rng.uniform(-1, 1, (1, 12, 12, 3)).astype(np.float32) for _ in range(8)]
    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([s] for s in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    path.write_bytes(converter.convert())
    return path


def test_tensorflow_int8_cnn_round_trip(tmp_path: Path) -> None:
    """A tiny Keras CNN made full-int8 by TensorFlow's own converter (per-channel conv weights, int8 io quantise)."""
    path = make_tensorflow_int8_cnn(tmp_path / "cnn_int8.tflite")
    ops = [op for op, _ in signature(path.read_bytes())]
    assert {
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "ADD",
        "MAX_POOL_2D",
        "CONCATENATION",
        "RESHAPE",
        "FULLY_CONNECTED",
        "SOFTMAX",
    } <= set(ops)
    _round_trip(path, tmp_path, "serving_default_image:0", (1, 12, 12, 3))
