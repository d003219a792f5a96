"""TFLite's fused UNIDIRECTIONAL_SEQUENCE_LSTM (tf2onnx cannot convert it): unrolled by edgecc, compared with the
TFLite interpreter running the fused kernel and with the Keras LSTM whose weights the file holds."""

from __future__ import annotations

import numpy as np
import pytest

from edgecc.converters.tensorflow import flatbuffer
from edgecc.converters.tensorflow.reader import interpreter_from_bytes
from tests.converters.tensorflow import tflite_models
from tests.converters.tensorflow.helpers import convert_and_verify


def _run(data: bytes, feed: np.ndarray) -> np.ndarray:
    interpreter = interpreter_from_bytes(data, delegates=False)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], feed)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


@pytest.mark.parametrize("time_major", [False, True])
def test_fused_lstm_matches_the_interpreter_and_keras(tf_dir, time_major):
    path, keras_model = tflite_models.sequence_lstm(tf_dir / f"lstm_tm{int(time_major)}.tflite", time_major=time_major)
    data = path.read_bytes()
    assert [o.name for o in flatbuffer.read(data, str(path)).operators()] == ["UNIDIRECTIONAL_SEQUENCE_LSTM"]
    sequence = np.random.default_rng(0).normal(size=(1, 5, 3)).astype(np.float32)
    feed = np.transpose(sequence, (1, 0, 2)) if time_major else sequence
    tflite_out = _run(data, feed)
    keras_out = np.asarray(keras_model(sequence))
    np.testing.assert_allclose(np.transpose(tflite_out, (1, 0, 2)) if time_major else tflite_out, keras_out, atol=1e-5)
    converted = convert_and_verify(path)
    assert converted.report.passed, converted.report.to_dict()
    ops = {n.op_type for n in converted.model.graph.node}
    assert "Sigmoid" in ops and "Tanh" in ops and "Loop" not in ops


def test_cifg_lstm_matches_the_interpreter(tf_dir):
    path, _ = tflite_models.sequence_lstm(tf_dir / "lstm_cifg.tflite", cifg=True)
    converted = convert_and_verify(path)
    assert converted.report.passed, converted.report.to_dict()
