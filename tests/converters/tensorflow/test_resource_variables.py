"""A streaming TFLite model with resource variables becomes a stateless ONNX step function: state inputs (defaulting
to the initial values) and next-state outputs, compared over several steps with the stateful TFLite interpreter."""

from __future__ import annotations

import numpy as np

from edgecc.converters.tensorflow import flatbuffer
from edgecc.converters.tensorflow.reader import interpreter_from_bytes
from edgecc.ortrun import OrtRunner
from tests.converters.tensorflow import tflite_models
from tests.converters.tensorflow.helpers import convert_and_verify


def test_streaming_model_is_a_step_function(tf_dir):
    path = tflite_models.streaming_state(tf_dir / "streaming.tflite")
    ops = {o.name for o in flatbuffer.read(path.read_bytes(), str(path)).operators()}
    assert {"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE"} <= ops
    converted = convert_and_verify(path)  # first step from the initial state against a fresh interpreter
    assert converted.report.passed, converted.report.to_dict()
    graph = converted.model.graph
    state_in = sorted(i.name for i in graph.input if i.name.endswith("_state_in"))
    state_out = sorted(o.name for o in graph.output if o.name.endswith("_state_out"))
    assert state_in == ["count_state_in", "running_state_in"] and state_out == ["count_state_out", "running_state_out"]
    assert {t.name for t in graph.initializer} >= set(state_in)  # the initial values are the inputs' defaults
    props = {p.key: p.value for p in converted.model.metadata_props}
    assert "running_state_in" in props["edgecc.tflite_state"]

    # several steps: the stateful interpreter against the ONNX model fed its own previous state
    interpreter = interpreter_from_bytes(path.read_bytes())
    frame_in = interpreter.get_input_details()[0]
    runner = OrtRunner(converted.model, name="streaming model")
    assert {i.name for i in runner.optional_inputs} == set(state_in)  # state inputs default to the initial values
    frames = np.random.default_rng(0).normal(size=(4, 1, 4)).astype(np.float32)
    state: dict[str, np.ndarray] = {}
    for frame in frames:
        interpreter.set_tensor(frame_in["index"], frame)
        interpreter.invoke()
        expected = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        outputs = runner.run({frame_in["name"]: frame, **state})
        np.testing.assert_allclose(outputs[graph.output[0].name], expected, rtol=1e-5, atol=1e-6)
        state = {name.replace("_state_out", "_state_in"): outputs[name] for name in state_out}
    assert state["count_state_in"].item() == len(frames)
